"""Security questions for identity verification by Client Services (R8.2).

Each user answers three questions, one from each pool. Pools are split by the kind of
memory they ask for, so that one leaked fact (a mother's maiden name, say) answers at most
one of a user's questions. Answers must match exactly (R8.2); they are stored hashed.
"""

from __future__ import annotations

from dataclasses import dataclass

from securelogin.domain.errors import InvalidRequestError

QUESTION_POOLS: tuple[tuple[str, ...], ...] = (
    (  # pool 1: childhood
        "What was the name of your first pet?",
        "In what city or town did your parents meet?",
        "What was the first name of your childhood best friend?",
        "What was the name of the street you grew up on?",
    ),
    (  # pool 2: education and work
        "What was the name of your primary school?",
        "What was the name of the company of your first job?",
        "What was the surname of your favourite teacher?",
        "In what city was your first full-time job?",
    ),
    (  # pool 3: personal preferences and history
        "What was the make and model of your first car?",
        "What is the title of the first book you loved?",
        "In what city did you spend your first holiday abroad?",
        "What was the name of the first concert you attended?",
    ),
)
QUESTIONS_PER_USER = 3  # R8.2: each user has 3 security questions, each from a different pool
MAX_ANSWER_LENGTH = 200


@dataclass(frozen=True)
class QuestionAnswer:
    """One question and its answer, as the operator gives them."""

    question: str
    answer: str


def check_question_set(items: list[QuestionAnswer]) -> None:
    """R8.2: exactly three questions, one from each pool, each with a usable answer."""
    if len(items) != QUESTIONS_PER_USER:
        raise InvalidRequestError(
            "Give exactly 3 security questions, one from each pool.", field="security_questions"
        )
    pools = sorted(_pool_of(item.question) for item in items)
    if pools != list(range(len(QUESTION_POOLS))):
        raise InvalidRequestError(
            "The security questions must come one from each pool (GET /api/v1/security-questions).",
            field="security_questions",
        )
    for item in items:
        check_answer_form(item.answer)


def check_answer_form(answer: str) -> None:
    """An answer is 1 to 200 printable characters."""
    if not 1 <= len(answer) <= MAX_ANSWER_LENGTH or not answer.isprintable():
        raise InvalidRequestError(
            f"An answer is 1 to {MAX_ANSWER_LENGTH} printable characters.", field="answer"
        )


def _pool_of(question: str) -> int:
    for number, pool in enumerate(QUESTION_POOLS):
        if question in pool:
            return number
    raise InvalidRequestError(
        "Unknown security question (see GET /api/v1/security-questions).",
        field="security_questions",
    )
