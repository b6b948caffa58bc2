"""The judge's replies read as the decision they state: a table of realistic phrasings (the
paper's options, MT-bench's [[A]]/[[B]]/[[C]], AlpacaEval's "Output (a)", JSON, prose with
hedges, negations and conclusions), one line per case; ratings and labels in the paper's
rubric format (reasoning, then the choice on its own line, twice)."""

from __future__ import annotations

import pytest

from lima.evaluate.parsing import parse_label, parse_rating, parse_verdict

# (reply, verdict); None: the reply does not decide, so it is asked again.
VERDICTS = [
    # one word, a letter, a mark
    ("A", "a"), ("b", "b"), (" B.", "b"), ("**A**", "a"), ("(B)", "b"), ("Neither", "tie"),
    ("tie", "tie"), ("[[A]]", "a"), ("[[B]]", "b"), ("[[C]]", "tie"), ("Output (a)", "a"),
    ("Output (b)", "b"), ("Option B.", "b"), ("Verdict: A", "a"), ("Final answer: **B**", "b"),
    ("My choice: Neither.", "tie"), ("Final verdict: [[B]]", "b"),
    ("After comparing both responses, Assistant A provides a more accurate explanation.\n\n"
     "Final verdict: [[A]]", "a"),
    ("Both assistants give correct steps, but Assistant B explains each one. [[B]]", "b"),
    ("Assistant B's answer is slightly better, so my verdict is [[B]].", "b"),
    # the paper's three options
    ("Answer A is significantly better.", "a"), ("Neither is significantly better.", "tie"),
    ("◼ Answer A is significantly better.", "a"),
    ("Answer B is significantly better.\n\nAnswer B covers the three causes the question asks "
     "about; Answer A names only one.", "b"),
    ("Comparing these two answers, Answer B is better: it actually answers the question.", "b"),
    # JSON
    ('{"verdict": "B", "reason": "more detail"}', "b"), ('```json\n{"winner": "A"}\n```', "a"),
    ('{"preference": "neither"}', "tie"),
    # preferences
    ("After weighing both, I prefer Response B.", "b"), ("I prefer Response A.", "a"),
    ("I would prefer B over A, since it cites the documentation.", "b"),
    ("I slightly prefer the second response.", "b"), ("I'd go with the first one.", "a"),
    ("I would choose Answer B, because Answer A misreads the question.", "b"),
    ("Response B, because it addresses the user's actual question.", "b"),
    ("A. It lists the steps in order.", "a"),
    # comparisons, a decision after a hedge
    ("Response A is better because it answers the question.", "a"),
    ("Both are fine, but I prefer Response A.", "a"),
    ("Both are good, but A is slightly better.", "a"),
    ("Both responses are helpful; however, Response B is more thorough and better organised.",
     "b"),
    ("I think both are decent, but the first response is clearer and more accurate.", "a"),
    ("Response A is more concise, but Response B is more helpful overall.", "b"),
    ("While Response A is well written, Response B is more accurate.", "b"),
    ("Response A is better, though Response B is shorter.", "a"),
    ("Both are equally good, but A is slightly better.", "a"),
    ("Neither is significantly better, though A is slightly more detailed.", "tie"),
    ("Response A is better in style, whereas Response B is better in accuracy. Overall, B is "
     "the better response.", "b"),
    ("Answer B is better than Answer A.", "b"), ("A is better than B in every respect.", "a"),
    ("Response A is superior.", "a"), ("Response B clearly wins.", "b"), ("B wins.", "b"),
    ("The winner is Response B.", "b"), ("Assistant 1 is better.", "a"),
    ("The former is more accurate.", "a"), ("The second answer is better.", "b"),
    ("Model A's answer is more accurate.", "a"), ("Overall, Response B is better.", "b"),
    ("Considering accuracy and clarity, I'd say the better response is B.", "b"),
    ("A good answer would cover both methods; B does, so B is better.", "b"),
    ("Response A gives a good answer a user would want, but B is better.", "b"),
    ("It is not a tie: Response A is better.", "a"),
    # worse, negations
    ("Response B is worse than Response A.", "a"), ("A is less accurate than B.", "b"),
    ("Output (a) is not as helpful as Output (b).", "b"),
    ("Response A is not better than Response B; B is more thorough.", "b"),
    ("Response A is no better than Response B.", "tie"),
    ("Response A is not better than Response B.", None),
    ("Answer A is not better than B.", None),
    ("I can't choose between A and B.", None),
    # ties
    ("Both are equally good.", "tie"), ("Both responses are equally good.", "tie"),
    ("Neither response is better than the other.", "tie"), ("It's a tie.", "tie"),
    ("There is no clear winner here; both answers are accurate and complete.", "tie"),
    ("I have no preference between the two.", "tie"),
    ("Both responses are similar in quality.", "tie"), ("They are about the same.", "tie"),
    # headings, a last line with the choice
    ("Response A: accurate but terse.\nResponse B: accurate and explains why.\nB", "b"),
    ("**Response A**\nGives the right command.\n\n**Response B**\nGives the right command and "
     "explains the flags.\n\nOverall, Response B is better.", "b"),
    # no decision
    ("I cannot decide between these.", None), ("", None), ("AB", None),
    ("lorem ipsum dolor", None), ("Response A is better. Response B is better.", None),
    ("Response A is better, but Response B is better too.", None),
    ("Both are wrong.", None),
    ("[[A]] if A is better, [[B]] if B is better, [[C]] for a tie.", None),
]  # fmt: skip


# A second set, written after the parser and first run against it as it stood: it read 29 of
# these 35; the six it missed (four undecided, one read as A, one tie missed) led to the
# patterns for "better satisfies", "making it the better choice", "and vice versa", "but
# not significantly", "more appropriate" and "no significant difference".
LATER = [
    (
        "Answer A is significantly better. It directly addresses the question with accurate "
        "details, whereas Answer B is vague.",
        "a",
    ),
    (
        "Answer B is significantly better, because Answer A contains factual errors about the "
        "dates.",
        "b",
    ),
    ("Neither is significantly better. Both answers cover the main points.", "tie"),
    ("After careful consideration, I believe Response A better satisfies the user's needs.", "a"),
    ("In my opinion, Answer B is the better answer.", "b"),
    (
        "Both answers are good, but Answer B provides more detail, so Answer B is significantly"
        " better.",
        "b",
    ),
    ("The two answers are of similar quality, so neither is significantly better.", "tie"),
    ("Answer A is better.", "a"),
    ("I'd pick Answer B.", "b"),
    ("Answer B. It is more complete and better organized.", "b"),
    ("Answer A is more helpful and accurate than Answer B.", "a"),
    ("Answer A is the clear winner.", "a"),
    ("Answer B is preferable.", "b"),
    (
        "Both answers are correct, but Answer A is more concise and to the point, making it the"
        " better choice.",
        "a",
    ),
    ("Answer A wins on accuracy, Answer B wins on style; overall, Answer A is better.", "a"),
    ("Neither answer is significantly better than the other.", "tie"),
    ("I would say neither is significantly better.", "tie"),
    ("The better answer is B.", "b"),
    ("B is significantly better.", "b"),
    ("Answer B is significantly better.\nReason: it explains the concept step by step.", "b"),
    ("Comparing these two answers, neither is significantly better; both are accurate.", "tie"),
    ("[[A]]\n\nExplanation: Assistant A answers the question directly.", "a"),
    ("My final verdict is tie: [[C]]", "tie"),
    ("Assistant A is better. [[A]]", "a"),
    ("Output (b) is better.", "b"),
    ("I prefer Output (a).", "a"),
    (
        "Answer A does not answer the question, while Answer B does. Answer B is significantly "
        "better.",
        "b",
    ),
    ("Answer B is not significantly better than Answer A, and vice versa.", "tie"),
    ("Both responses are equally helpful and accurate.", "tie"),
    ("Answer A is slightly better than Answer B, but not significantly.", "tie"),
    ("Response B is much better than Response A.", "b"),
    ("Response A is better overall, though Response B has a nicer format.", "a"),
    ("I think Response B is more appropriate.", "b"),
    ("Response A answers the question; Response B doesn't. A is better.", "a"),
    ("There's no significant difference between the two answers.", "tie"),
]  # fmt: skip


@pytest.mark.parametrize(("reply", "verdict"), VERDICTS + LATER)
def test_a_reply_reads_as_the_decision_it_states(reply: str, verdict: str | None) -> None:
    assert parse_verdict(reply) == verdict


def test_the_table_is_large_and_covers_every_outcome() -> None:
    assert len(VERDICTS) + len(LATER) >= 50
    assert {v for _, v in VERDICTS} == {"a", "b", "tie", None}


RUBRIC = (
    "Step 1: the task asks for three causes of the French Revolution.\n"
    "Step 2: the submission names three and explains each, with a short summary.\n"
    "Step 3: it uses a numbered list, so it is easy to follow; 4 points would be too few.\n"
)


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        (RUBRIC + "5\n5", 5), (RUBRIC + "6\n6\n", 6), (RUBRIC + "**3**\n**3**", 3),
        (RUBRIC + "Rating: 4", 4), (RUBRIC + "5\n4", None), (RUBRIC + "7\n7", None),
        (RUBRIC + "So the rating is 2.", 2), (RUBRIC, None),
    ],
)  # fmt: skip
def test_the_papers_rubric_output_is_read_from_its_last_lines(
    reply: str, rating: int | None
) -> None:
    assert parse_rating(reply) == rating


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ("The task asks for a haiku; the submission has 5-7-5 syllables and fails nothing.\n"
         "Pass\nPass", "pass"),
        ("It is wrong about the date, so it cannot pass.\nFail\nFail", "fail"),
        ("Reasoning ...\nExcellent\nPass", None),
    ],
)  # fmt: skip
def test_labels_in_the_rubric_format(reply: str, label: str | None) -> None:
    assert parse_label(reply) == label
