"""The printable online security code card as a one-page PDF (R7.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from securelogin.services.online_cards import PrintableCard

if TYPE_CHECKING:
    from fpdf import FPDF

COLUMNS = 5  # 5 columns of 20 rows: 100 cells on one A4 page
ROWS = 20


def card_pdf(card: PrintableCard) -> bytes:
    # fpdf2 brings Pillow and fontTools (about 30 MiB): loaded by the first printed card,
    # not by every worker at start.
    from fpdf import FPDF

    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=False)
    pdf.set_title("Online security code card")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, "Online security code card", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    issued = card.card.issued_at.strftime("%Y-%m-%d")
    for line in (
        f"Username: {card.username}",
        f"Card id: {card.card.card_id}",
        f"Issued: {issued} (UTC)",
        "Valid for 21 days from activation, or until a security device is activated.",
        "Keep it private. Client Services will never ask you for these values.",
    ):
        pdf.cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    _grid(pdf, card.values)
    return bytes(pdf.output())


def _grid(pdf: FPDF, values: dict[int, str]) -> None:
    width = (pdf.w - pdf.l_margin - pdf.r_margin) / COLUMNS
    for row in range(ROWS):
        for column in range(COLUMNS):
            index = column * ROWS + row + 1
            pdf.set_font("Helvetica", "", 10)
            pdf.cell(width * 0.35, 10, f"{index:>3}", border=1, align="R")
            pdf.set_font("Courier", "B", 13)
            pdf.cell(width * 0.65, 10, values[index], border=1, align="C")
        pdf.ln(10)
