"""Help: "Which best describes your situation?" (the brokerage's troubleshooting tree)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from securelogin.web.portal.pages import render

router = APIRouter()

SITUATIONS: list[tuple[str, str, str]] = [
    (
        "forgotten",
        "I forgot my user name or password",
        "Call Client Services. After checking who you are with one of your security questions, "
        "the agent can tell you your user name or give you a one-time reset code, valid for 24 "
        "hours, with which you set a new password.",
    ),
    (
        "no-device",
        "I do not have my security device with me for now",
        "Call Client Services. After checking who you are, the agent can give you a temporary "
        "passcode. It gives full access to the Client Portal and the trading platform for 2 days. "
        "Your devices are suspended until you activate one again.",
    ),
    (
        "lost",
        "My security device is lost or damaged",
        "Call Client Services at once: the agent marks the device lost or damaged (it never works "
        "again), gives you a temporary passcode and can order a replacement. Until it arrives, "
        "print an online security code card from the Client Portal.",
    ),
    (
        "passcode-expired",
        "My temporary passcode expired",
        "A temporary passcode gives full access for 2 days, then only the Client Portal's online "
        "card page for 10 more days. Log in to the Client Portal and get an online security code "
        "card. After 12 days it works nowhere; Client Services cannot give a second passcode in a "
        "row: they will order a replacement device.",
    ),
    (
        "card-expired",
        "My online security code card expired",
        "An online card lasts 21 days from activation. Activate the device you ordered (it "
        "activates by itself 14 days after mailing), or call Client Services.",
    ),
    (
        "trading-only",
        "The Client Portal works but the trading platform does not",
        "If you logged in with a temporary passcode that is more than 2 days old, the trading "
        "platform refuses it: get an online security code card in the Client Portal, then log in "
        "to the trading platform with it. Also check that ports 4000 and 4001 are open.",
    ),
    (
        "activate",
        "I received a device to activate",
        "Log in to the Client Portal, open Secure Login System, choose Activate beside the device, "
        "and type its serial number and one response. Until you do, it activates by itself 14 "
        "days after mailing.",
    ),
    (
        "bad-character",
        "I see BAD CHARACTER",
        "Your user name holds a character other than letters and digits, for example a space. "
        "Type it again without spaces or punctuation. Nothing was counted.",
    ),
    (
        "invalid",
        "I see Invalid user name password combination",
        "The user name or the password is wrong. User names are lower case: check that Caps Lock "
        "is off. After 10 wrong attempts within 24 hours, logins are locked for 24 hours after "
        "the last one, and nobody can lift the lock early.",
    ),
    (
        "login-failed",
        "I see Login failed",
        "The response from your security device was wrong, or typed in the wrong form (the hint "
        "below the message says what to change). Start again from the user name; each wrong "
        "response counts towards the lock.",
    ),
    (
        "ports",
        "My network blocks ports 4000 and 4001",
        "The trading platform connects over TCP ports 4000 and 4001. Ask your network "
        "administrator to allow outgoing connections to them, or use another network.",
    ),
]


@router.get("/help")
def help_page(request: Request) -> Response:
    return render(request, "help.html", situations=SITUATIONS)
