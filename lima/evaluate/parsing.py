"""Reading a judge's reply: the pairwise verdict (``a``, ``b`` or ``tie``), a 1..6 rating, a
Fail / Pass / Excellent label. ``None`` whenever the reply does not decide, so the caller asks
again rather than guess.

A verdict is read from the decision, not from the first word. In order:

1. a JSON object (``{"verdict": "B"}``, fenced or not);
2. explicit marks: ``[[A]]`` / ``[[B]]`` / ``[[C]]`` (C: a tie, as in MT-bench), "Final verdict:
   B", "Winner: Output (b)", a line that is nothing but the choice ("B", "**Answer A**",
   "Neither."); the last one counts;
3. statements, sentence by sentence: "A is (slightly) better", "I prefer B", "I'd go with the
   first one", "B wins", "A is worse than B", "Neither is significantly better", "equally good",
   "a tie". A negated statement ("A is not better than B", "I don't prefer A") decides
   nothing. A conclusion ("Overall, ...", "In conclusion, ...", "..., so B") outranks the rest;
   a clause before "but" / "however" and one after "though" / "although" / "while" count
   less than the rest of their sentence ("Both are fine, but I prefer A" is A). Statements of
   the same rank that disagree decide nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["parse_label", "parse_rating", "parse_verdict", "unfence"]


def unfence(reply: str) -> tuple[str, dict[str, Any] | None]:
    """A reply stripped of whitespace and a Markdown code fence, and the JSON object it holds,
    if it is one."""
    text = reply.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            return text, None
        if isinstance(obj, dict):
            return text, obj
    return text, None


# --- verdicts -----------------------------------------------------------------------------

_JSON_KEYS = ("verdict", "winner", "preference", "better", "answer", "choice", "decision")
_A, _B, _TIE = "«a»", "«b»", "«tie»"
_DIGIT = {"1": "a", "2": "b"}
_SIDE = r"«([ab])»"

# Words that may follow a bare A or B when it names a side ("A is better", "B, because");
# any other lowercase word makes it an article ("A good answer ...").
_VERBS = (
    r"is|was|seems|appears|looks|wins|won|would|clearly|definitely|slightly|provides|gives|"
    r"has|does|offers|answers|and|or|over|because|since|as|for|than|vs|versus|edges|comes|"
    r"beats|outperforms|should|remains|gets|takes|better|overall|by|in|here|nor|instead|rather"
)
_NOT_ARTICLE = rf"(?!\s+(?!(?:{_VERBS})\b)[a-z])"
# "Response A", "Answer (b)", "Output (a)", "Assistant 1", "model_a", "[A]"
_LABELLED = re.compile(
    r"\b(?i:response|answer|output|assistant|model|option|candidate|completion|reply|"
    rf"submission)\s*[\(\[]?\s*([AB12]\b|(?<=[\(\[])[ab]|[ab](?=[\)\]])|[ab]\b{_NOT_ARTICLE})"
    r"(?:\s*[\)\]])?"
)
_ORDINAL = re.compile(
    r"\b(?:the\s+)?(first|second)\s+(?:response|answer|output|one|reply|option|completion|"
    r"assistant)\b|\bthe\s+(former|latter)\b",
    re.IGNORECASE,
)
_PAREN = re.compile(r"\(([ab])\)", re.IGNORECASE)
_BARE = re.compile(rf"(?<![\w'\-\[«])([AB])(?![\w'\-\]»])(?!\.\w){_NOT_ARTICLE}")
_MARK = re.compile(r"\[\[\s*(a|b|c|tie|neither|equal)\s*\]\]", re.IGNORECASE)

_NEG = re.compile(r"(?:^|\s)(?:not|no|never|hardly|barely|cannot|neither|nor)(?:\s|$)|n't\b")
_GAP = r"((?:[\w',-]+\s+){0,4}?)"  # a few words between a side and what is said of it
_BE = r"(?:is|was|'s|seems|appears|looks|would\s+be|remains|feels|comes\s+across\s+as)"
_QUALITY = (
    r"(?:helpful|useful|accurate|complete|informative|relevant|thorough|comprehensive|"
    r"correct|satisfying|clear|appropriate|suitable|effective|convincing|persuasive)"
)
_BETTER = (
    rf"(?:better|superior|preferable|preferred|stronger|more\s+{_QUALITY}|the\s+(?:clear\s+)?"
    r"winner|the\s+best|my\s+(?:pick|choice|preference)|the\s+(?:better|stronger|superior|"
    r"preferred|best)\s+(?:one|response|answer|choice|option|of\s+the\s+two))\b"
)
_WORSE = rf"(?:worse|inferior|weaker|less\s+{_QUALITY})\b"
_WIN = r"(?:wins?|won|prevails|edges\s+out|outperforms|beats|outshines|comes\s+out\s+ahead)\b"
_CHOOSE = (
    r"\b(?:prefer|favou?r|choose|chose|pick|select|go\s+with|opt\s+for|recommend|vote\s+for|"
    r"side\s+with|lean\s+towards?|give\s+(?:it|the\s+edge|the\s+win)\s+to)"
)
_FOR_GAP = [  # (side, gap): the gap must not negate
    re.compile(rf"{_SIDE}\s+{_BE}\s+{_GAP}{_BETTER}"),
    re.compile(rf"{_SIDE}\s+{_GAP}{_WIN}"),
    re.compile(rf"{_SIDE}\s+{_GAP}better\s+(?:satisf|answer|address|meet|fulfil|serve|handle|"
               r"explain|respond|cover|match)"),
    re.compile(rf"{_SIDE}\s+([^«.;]{{0,120}}?,\s+)(?:making|which\s+makes)\s+it\s+the\s+"
               r"(?:better|best|stronger|preferred|superior)\b"),
]  # fmt: skip
_FOR_AFTER = [  # (side): the words before the match must not negate
    re.compile(rf"{_CHOOSE}\s+(?:[\w',-]+\s+){{0,3}}?{_SIDE}"),
    re.compile(r"\b(?:winner|(?:better|best|preferred|stronger)\s+(?:one|response|answer))\s+"
               rf"(?:is|would\s+be|here\s+is)\s+(?:clearly\s+|probably\s+)?{_SIDE}"),
    re.compile(rf"\b(?:goes|go)\s+to\s+{_SIDE}"),
    re.compile(rf"\bin\s+favou?r\s+of\s+{_SIDE}"),
    re.compile(rf"^\W*{_SIDE}\s*(?:,|:|-|\u2014|\u2013)\s*(?:because|since|as|for|which|it)\b"),
]  # fmt: skip
_AGAINST_GAP = [re.compile(rf"{_SIDE}\s+{_BE}\s+{_GAP}{_WORSE}")]
_AGAINST = [
    re.compile(rf"{_SIDE}\s+{_BE}\s+not\s+(?:quite\s+|nearly\s+)?as\s+(?:good|{_QUALITY})\s+as"),
]
_TIES = [
    re.compile(r"\bneither\b(?:\s+(?:response|answer|output|one|of\s+them|of\s+the\s+two|"
               rf"«a»\s+nor\s+«b»))?\s+(?:is|was|seems|stands\s+out\s+as)\s+{_GAP}(?:better|"
               r"superior|preferable|the\s+winner|worse|stronger)"),
    re.compile(rf"\bno\s+(?:response|answer|output|one)\s+is\s+{_GAP}better"),
    re.compile(rf"{_SIDE}\s+{_BE}\s+no\s+(?:better|worse)\s+than"),
    re.compile(r"\bprefer\s+neither\b|\bneither\s+is\s+preferred\b"),
    re.compile(r"\bnot\s+(?:significantly\s+)?better\s+than\s+«[ab]»,?\s+(?:and|or)\s+vice\s+versa"),
    re.compile(r"^\W*(?:but\s+)?not\s+(?:significantly|substantially|meaningfully|by\s+much)\b"),
    re.compile(r"\bno\s+(?:significant|meaningful|real|notable|substantial|noticeable)\s+"
               r"difference\b"),
    re.compile(r"\bno\s+(?:clear\s+|significant\s+|meaningful\s+|real\s+|obvious\s+|strong\s+)?"
               r"(?:winner|preference|difference\s+in\s+quality|better\s+(?:one|response|answer))\b"),
]  # fmt: skip
_TIES_UNLESS_NEGATED = [
    re.compile(r"\b(?:a|it's\s+a|is\s+a|call\s+it\s+a)\s+(?:tie|draw|toss-?up|wash|stalemate)\b"),
    re.compile(rf"\b(?:equally|just\s+as)\s+(?:good|bad|strong|valid|well|poor|weak|{_QUALITY})\b"),
    re.compile(rf"\bas\s+(?:good|{_QUALITY})\s+as\s+(?:each\s+other|one\s+another|«[ab]»)"),
    re.compile(r"\b(?:are|is|be|seem|look)\s+(?:about\s+|roughly\s+|essentially\s+|basically\s+|"
               r"pretty\s+much\s+)?(?:equal|equivalent|comparable|on\s+par|indistinguishable|"
               r"evenly\s+matched|neck\s+and\s+neck|about\s+the\s+same|of\s+(?:the\s+same|similar|"
               r"equal|comparable)\s+quality|similar\s+in\s+quality)\b"),
    re.compile(r"\bequal\s+in\s+quality\b"),
]  # fmt: skip
_CONCLUSION = re.compile(
    r"^(?:overall|in\s+conclusion|in\s+summary|to\s+summari[sz]e|to\s+sum\s+up|to\s+conclude|"
    r"therefore|thus|hence|so|ultimately|in\s+the\s+end|all\s+in\s+all|on\s+balance|"
    r"all\s+things\s+considered|taking\s+everything\s+into\s+account|considering\s+everything|"
    r"final(?:ly)?|in\s+short|bottom\s+line|as\s+a\s+result|for\s+(?:these|this)\s+reasons?|"
    r"given\s+(?:this|these|the\s+above)|my\s+(?:final\s+)?(?:verdict|judge?ment|decision|"
    r"choice|answer|conclusion)|conclusion|verdict)\b|\boverall\b|,\s*so\s"
)  # fmt: skip
_STARTS_BUT = re.compile(
    r"^(?:but|however|still|yet|that\s+said|nevertheless|nonetheless|even\s+so)\b"
)
_LEADING_THOUGH = re.compile(r"^(?:though|although|even\s+though|while|whereas|even\s+if)\s+"
                             r"(.*?),\s*(.*)$")  # fmt: skip
_JOIN = re.compile(
    r",?\s*\b(?:(but|however|nevertheless|nonetheless)|(though|although|even\s+though|whereas|"
    r"while|even\s+if|except\s+that))\b,?|,\s*(yet|that\s+said|even\s+so|still)\b,?"
)
_ADDS = re.compile(r"\b(?:too|also|as\s+well)\b")
_EXPLICIT = re.compile(
    r"\b(?:final\s+|overall\s+|my\s+)?(?:verdict|decision|judge?ment|answer|choice|winner|"
    r"preference|conclusion|result|selection|pick|evaluation)\s*(?:is|:|=|-|would\s+be)\s*"
    r"(?:that\s+)?(?:the\s+)?(«a»|«b»|«tie»|neither|tie|a\s+tie|none|c|equal|both)(?![\w«])"
)


def _sides(text: str) -> str:
    """Lowercase text with each mention of a side as «a» or «b» and each [[C]] as «tie»."""
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"[*`]+", "", text).replace("_", " ")
    text = _MARK.sub(lambda m: f"«{m.group(1).lower()}»" if m.group(1).lower() in ("a", "b")
                     else _TIE, text)  # fmt: skip
    text = _LABELLED.sub(lambda m: f"«{_DIGIT.get(m.group(1), m.group(1).lower())}»", text)
    text = _ORDINAL.sub(lambda m: _A if (m.group(1) or m.group(2)).lower() in ("first", "former")
                        else _B, text)  # fmt: skip
    text = _PAREN.sub(lambda m: f"«{m.group(1).lower()}»", text)
    text = _BARE.sub(lambda m: f"«{m.group(1).lower()}»", text)
    text = text.lower()
    return re.sub(r"(«[ab]»)'s\s+(?:answer|response|output|reply|one)\b", r"\1", text)


def _choice(word: str) -> str | None:
    if word in (_A, _B):
        return word[1]
    if word in (_TIE, "neither", "neither one", "tie", "a tie", "none", "c", "equal", "both"):
        return "tie"
    return None


def _bare(line: str) -> str | None:
    """The choice a line is made of and nothing else ("B", "Answer A.", "Neither")."""
    core = re.sub(r"^[^\w«]+", "", line)
    core = re.sub(r"[^\w»]+$", "", core)
    core = re.sub(r"\s+is\s+(?:significantly\s+|slightly\s+|clearly\s+|much\s+)?better$", "", core)
    return _choice(core) if core != "c" else None


def _negated(text: str) -> bool:
    return _NEG.search(text) is not None


def _claims(clause: str) -> set[str]:
    """What a clause decides: a, b, tie (several when it says several things)."""
    out: set[str] = set()
    for pat in _FOR_GAP:
        out |= {m.group(1) for m in pat.finditer(clause) if not _negated(m.group(2) or "")}
    for pat in _FOR_AFTER:
        for m in pat.finditer(clause):
            before = clause[max(0, m.start() - 24) : m.start()].split(",")[-1]
            if not _negated(before) and not _negated(m.group(0).split("«")[0]):
                out.add(m.group(1))
    other = {"a": "b", "b": "a"}
    for pat in _AGAINST_GAP:
        out |= {other[m.group(1)] for m in pat.finditer(clause) if not _negated(m.group(2) or "")}
    for pat in _AGAINST:
        out |= {other[m.group(1)] for m in pat.finditer(clause)}
    if any(pat.search(clause) for pat in _TIES):
        out.add("tie")
    for pat in _TIES_UNLESS_NEGATED:
        if any(
            not _negated(clause[max(0, m.start() - 16) : m.start()]) for m in pat.finditer(clause)
        ):
            out.add("tie")
    return out


def _clauses(sentence: str, base: float) -> list[tuple[str, float]]:
    """A sentence's clauses with their weight: a clause before "but" and one after "though"
    (or a leading "Although ..., ") weigh half a rank less than the rest."""
    lead = _LEADING_THOUGH.match(sentence)
    if lead:
        return [(lead.group(1), base - 0.5), (lead.group(2), base)]
    parts: list[tuple[str, str | None]] = []
    start, joiner = 0, None
    for m in _JOIN.finditer(sentence):
        parts.append((sentence[start : m.start()], joiner))
        start, joiner = m.end(), ("but" if m.group(1) or m.group(3) else "though")
    parts.append((sentence[start:], joiner))
    out = []
    for i, (clause, how) in enumerate(parts):
        # "A is better, but B is good too" adds to what came before rather than outweighing it
        before_but = (i + 1 < len(parts) and parts[i + 1][1] == "but"
                      and not _ADDS.search(parts[i + 1][0]))  # fmt: skip
        out.append((clause, base - 0.5 if how == "though" or before_but else base))
    return out


def parse_verdict(reply: str) -> str | None:
    """``a``, ``b`` or ``tie`` from a judge's reply (a letter, prose, or JSON); ``None`` when
    it does not decide."""
    text, obj = unfence(reply)
    if obj is not None:
        for k in _JSON_KEYS:
            if isinstance(obj.get(k), str):
                return parse_verdict(obj[k])
        return None
    one = re.fullmatch(r"[\W_]*\(?([ab])\)?[\W_]*", text, flags=re.IGNORECASE)
    if one:
        return one.group(1).lower()
    marks = [m.group(1).lower() for m in _MARK.finditer(text)]
    if marks and len(set(marks)) < 3:  # all three at once is the format echoed back
        return marks[-1] if marks[-1] in ("a", "b") else "tie"
    low = _sides(text)
    stated = [v for m in _EXPLICIT.finditer(low) if (v := _choice(m.group(1)))]
    if stated:
        return stated[-1]
    lines = [ln for ln in low.split("\n") if ln.strip() and not ln.rstrip().endswith(":")]
    bare = [v for ln in lines if (v := _bare(ln))]
    if bare and not {"a", "b"} <= set(bare):  # lines naming both sides are headings
        return bare[-1]
    ranked: list[tuple[float, str]] = []
    sentences = [s.strip() for s in re.split(r"(?<=[.!?;])\s+|\n+", low) if s.strip()]
    for i, sentence in enumerate(sentences):
        base = 3.0 if _CONCLUSION.search(sentence) else 2.0
        if i + 1 < len(sentences) and _STARTS_BUT.match(sentences[i + 1]):
            base -= 0.5
        alone = _bare(sentence)
        if alone:
            ranked.append((base, alone))
        ranked += [(w, v) for clause, w in _clauses(sentence, base) for v in _claims(clause)]
    if not ranked:
        return None
    top = max(w for w, _ in ranked)
    decided = {v for w, v in ranked if w == top}
    return decided.pop() if len(decided) == 1 else None


# --- ratings and labels -------------------------------------------------------------------

_RATING_KEYS = ("rating", "score", "helpfulness", "grade")


def _last_lines(text: str, word: str) -> str | None:
    """The value of a rubric-style ending: the choice alone on the last line (the paper's
    rubric asks for it twice; the two must then agree)."""
    lines = [ln.strip().strip("*`#_ ").rstrip(".") for ln in text.strip().splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        return None
    found = re.fullmatch(word, lines[-1], flags=re.IGNORECASE)
    if not found:
        return None
    if len(lines) >= 2:
        before = re.fullmatch(word, lines[-2], flags=re.IGNORECASE)
        if before and before.group(1).lower() != found.group(1).lower():
            return ""
    return found.group(1).lower()


def parse_rating(reply: str) -> int | None:
    """An integer 1..6 from a judge's reply; ``None`` if it names none, several, or one out of
    range. The paper's rubric ends with the rating alone on a line, given twice."""
    text, obj = unfence(reply)
    if obj is not None:
        for k in _RATING_KEYS:
            v = obj.get(k)
            if isinstance(v, int) and not isinstance(v, bool):
                return v if 1 <= v <= 6 else None
            if isinstance(v, str):
                return parse_rating(v)
        return None
    low = text.lower()
    bare = re.fullmatch(r"[\W_]*(\d+)(?:\s*(?:/|out of)\s*6)?[\W_]*", low)
    if bare:
        v = int(bare.group(1))
        return v if 1 <= v <= 6 else None
    last = _last_lines(text, r"(?:rating|score)?\s*:?\s*(\d+)(?:\s*(?:/|out of)\s*6)?")
    if last is not None:
        v = int(last) if last else 0
        return v if 1 <= v <= 6 else None
    patterns = [
        r"(?:rating|score|grade|helpfulness)\s*(?:is|of)?\s*[:=]?\s*\**(\d+)\b(?![.,]\d)",
        r"\b(\d+)\s*(?:/|out of)\s*6\b",
        r"\b(?:rate|give|grade)\s+(?:it|this|the reply|the response|this reply|this response)?"
        r"\s*(?:a|an|as)?\s*\**(\d+)\b(?![.,]\d)",
    ]
    for pat in patterns:
        found = {int(m.group(1)) for m in re.finditer(pat, low)}
        if found:
            v = found.pop() if len(found) == 1 else 0
            return v if 1 <= v <= 6 else None
    return None


_LABEL = r"(fail(?:s|ed|ure)?|pass(?:es|ed)?|excellent)"
_LABEL_KEYS = ("label", "verdict", "rating", "grade", "answer")


def _label(word: str) -> str:
    return "fail" if word.startswith("fail") else "pass" if word.startswith("pass") else word


def parse_label(reply: str) -> str | None:
    """``fail``, ``pass`` or ``excellent`` from a judge's or a person's reply."""
    text, obj = unfence(reply)
    if obj is not None:
        for k in _LABEL_KEYS:
            if isinstance(obj.get(k), str):
                return parse_label(obj[k])
        return None
    low = text.lower()
    bare = re.fullmatch(rf"[\W_]*{_LABEL}[\W_]*", low)
    if bare:
        return _label(bare.group(1))
    last = _last_lines(text, rf"(?:label|verdict)?\s*:?\s*{_LABEL}")
    if last is not None:
        return _label(last) if last else None
    patterns = [
        rf"(?:label|verdict|rating|grade|answer)\s*(?:is)?\s*[:=]?\s*\**{_LABEL}\b",
        rf"(?:reply|response|answer|it)\s+(?:is|was)\s+(?:an?\s+)?\**{_LABEL}\b",
        rf"^\W*{_LABEL}\**\s*(?:[.:,;!)\-]|$)",
    ]
    for pat in patterns:
        found = {_label(m.group(1)) for m in re.finditer(pat, low, flags=re.MULTILINE)}
        if found:
            return found.pop() if len(found) == 1 else None
    return None
