"""wikiHow: article dumps to (question, article) candidates.

Three layouts are read, told apart by their header:

- ``wikihowAll.csv`` (Koupaee & Wang 2018): ``headline, title, text``, one row per article; the
  step summaries are in ``headline`` (one per line) and the step bodies in ``text``.
- ``wikihowSep.csv``: ``overview, headline, text, sectionLabel, title``, one row per step.
- step tables: ``title, heading, paragraph`` (optionally ``category``, ``url``), one row per step.

Every article is mapped to one of wikiHow's 19 top-level categories: from a ``category``
column when the file has one, else from a title table (``Category, Title``), else by a linear
classifier over title words and their character n-grams trained on that table. The category map
(``lima/data/wikihow_categories.csv``) folds finer categories into the 19.

The prompt is the title as a question ("How to cook an omelette?"); the response is the body
as numbered steps, with citations, links and images removed, "This article" turned into "The
following answer", and the sections named in ``drop_sections`` dropped. The work is done in
polars expressions (the regexes run in Rust), never a Python loop per row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import math
import random
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy import optimize

from lima import schema
from lima.errors import LimaError

LICENSE = "CC BY-NC-SA 3.0"
TOP_LEVEL = (
    "Arts and Entertainment", "Cars & Other Vehicles", "Computers and Electronics",
    "Education and Communications", "Family Life", "Finance and Business",
    "Food and Entertaining", "Health", "Hobbies and Crafts", "Holidays and Traditions",
    "Home and Garden", "Personal Care and Style", "Pets and Animals", "Philosophy and Religion",
    "Relationships", "Sports and Fitness", "Travel", "Work World", "Youth",
)  # fmt: skip

_STOPWORDS = frozenset(
    {
        "a", "an", "and", "the", "to", "of", "for", "in", "on", "with", "your", "you", "how",
        "do", "be", "is", "at", "or", "from", "by", "as", "it", "up",
    }
)  # fmt: skip


@dataclass
class WikiHowSettings:
    """How articles become examples; every value is a config key."""

    drop_sections: list[str] = field(
        default_factory=lambda: ["Tips", "Warnings", "Things You'll Need", "References", "Video"]
    )
    rename_article: bool = True  # "This article..." -> "The following answer..."
    min_chars: int = 1  # responses shorter than this (after cleaning) are dropped
    max_chars: int = 0  # 0: no limit
    category_map: str | None = None  # replaces lima/data/wikihow_categories.csv
    title_tables: list[str] = field(default_factory=list)  # Category,Title[,Link] tables


class WikiHowError(LimaError):
    pass


def norm_name(name: pl.Expr) -> pl.Expr:
    """A category or section name as compared: lowercase, '-' as space, '&' as 'and'."""
    return (
        name.str.to_lowercase()
        .str.replace_all("-", " ", literal=True)
        .str.replace_all("&", "and", literal=True)
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


def _norm_names(names: list[str]) -> list[str]:
    return (
        pl.Series(names, dtype=pl.String)
        .to_frame("n")
        .select(norm_name(pl.col("n")))["n"]
        .to_list()
    )


def _norm_category(name: str) -> str:
    return _norm_names([name])[0]


def load_category_map(path: Path | None = None) -> dict[str, str]:
    """Normalised category name -> one of the 19 top-level categories."""
    if path is None:
        text = resources.files("lima").joinpath("data/wikihow_categories.csv").read_text("utf-8")
        origin = "lima/data/wikihow_categories.csv"
    else:
        text, origin = path.read_text(encoding="utf-8"), str(path)
    names, tops = [], []
    for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        top = (row.get("top_level") or "").strip()
        if top not in TOP_LEVEL:
            raise WikiHowError(f"{origin}: line {line}: {top!r} is not a top-level category")
        names.append(row.get("category") or "")
        tops.append(top)
    return dict(zip(_norm_names(names), tops, strict=True))


def _title_key() -> pl.Expr:
    """A title reduced to what identifies the article, for lookups and dedup."""
    return (
        _prompt_core(pl.col("title"))
        .str.to_lowercase()
        .str.replace(r"^how to\s+", "")
        .str.replace_all(r"[^a-z0-9 ]", "")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


# "3 Ways to", "11 Easy Ways to", "Simple Ways to", "14+ Methods to", "Ways to": the title of
# a how-to article whatever its count or adjective.
_LISTICLE = (
    r"(?i)^(?:\d+\+?\s+)?(?:(?:simple|easy|quick|best|great|good|proven|fun|smart|effective"
    r"|natural|creative|cheap|clever|practical|helpful|useful|amazing|surefire|fast"
    r"|different|top|ultimate)\s+){0,2}(?:ways|methods|steps|tips|tricks)\s+to\s+"
)


def _prompt_core(title: pl.Expr) -> pl.Expr:
    """ "3 Ways to Take Evening Primrose Oil - wikiHow" -> "How to Take Evening Primrose Oil"."""
    t = (
        title.str.strip_chars()
        .str.replace(r"\s*-\s*wikiHow$", "")
        .str.replace_all(r"\s*\(with Pictures\)", "")
        .str.replace(r"\s*:.*$", "")  # ": 14 Steps", ": A Quick & Easy Guide"
        .str.replace(r"(\p{Ll})\d{1,2}$", "$1")  # Koupaee de-duplication suffix: "...Artist1"
        .str.replace(_LISTICLE, "How to ")
        .str.replace(r"(?i)^how\s+to\s+", "How to ")
        .str.strip_chars()
    )
    return t


_CITATIONS = [
    r"\[\d+\]\s*X\s+Trustworthy Source.*?Go to source",
    r"\[\d+\]\s*X\s+Expert Source.*?Expert Interview\.(?:\s*\d{1,2} \w+ \d{4}\.)?",
    r"\[\d+\]\s*X\s+Research source",
    r"\[\d+\]",
]


def _clean(text: pl.Expr) -> pl.Expr:
    """Citations, links and images out; spacing tidied; line breaks kept (they separate a
    step's paragraph from its bullets)."""
    # an image's metadata as the scraper left it: {"smallUrl": ..., "licensing": "<div ...>"}
    t = text.fill_null("").str.replace_all(r'\{"smallUrl":[^}]*\}', "")
    for pattern in _CITATIONS:
        t = t.str.replace_all(pattern, "")
    return (
        t.str.replace_all(r"!\[[^\]]*\]\([^)]*\)", "")  # Markdown images
        .str.replace_all(r"\[([^\]]+)\]\((?:https?://|/)[^)]*\)", "$1")  # Markdown links
        .str.replace_all(r"(?i)\[Image:[^\]]*\]|<img[^>]*>", "")
        .str.replace_all(r"(?i)</?(?:i|b|u|em|strong|span|small)>", "")  # "<i>Title.</i>"
        .str.replace_all(r"h?https?://\S+|www\.\S+", "")
        .str.replace_all(r"[ \t]+([.,;:!?])", "$1")
        .str.replace_all(r"[ \t]{2,}", " ")
        .str.replace_all(r"(?m)\.?;[ \t]*$", ".")
        .str.replace_all(r"\n{3,}", "\n\n")
        .str.strip_chars()
    )


def detect_layout(columns: list[str]) -> str:
    cols = {c.strip() for c in columns}
    if {"title", "heading", "paragraph"} <= cols:
        return "steps"
    if {"overview", "headline", "text", "sectionLabel", "title"} <= cols:
        return "koupaee_sep"
    if {"headline", "title", "text"} <= cols:
        return "koupaee_all"
    if {"Category", "Title"} <= cols or {"category", "title"} <= cols:
        return "titles"
    return "unknown"


def _read_csv(path: Path) -> pl.DataFrame:
    try:
        return pl.read_csv(path, infer_schema=False, truncate_ragged_lines=False)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WikiHowError(f"{path}: not a readable CSV: {first}") from e


# a heading that ends a sentence: a stop, perhaps inside quotes or brackets
# ('Click "System Preferences."')
_SENTENCE_END = r"""[.!?:;]["'\x{201D}\x{2019})\]]*$"""


def _steps(df: pl.DataFrame, layout: str) -> pl.DataFrame:
    """Any layout as one row per step: title, section, heading, paragraph, intro, category,
    url. ``intro`` is the article's introduction where the layout has one (``overview`` in
    ``wikihowSep.csv``, repeated on every step row)."""
    cat = pl.col("category") if "category" in df.columns else pl.lit(None, pl.String)
    url = pl.col("url") if "url" in df.columns else pl.lit(None, pl.String)
    if layout == "steps":
        # The paragraph repeats its heading as its first sentence; keep it once. Where the
        # heading is only the first words of that sentence ("Shave" before "Shave his legs,
        # armpits, and face."), the paragraph alone is the step; where it lacks the
        # sentence's full stop ("Send for help" before "Send for help. The more ..."), the
        # stop moves to the heading.
        para = pl.col("paragraph").fill_null("")
        head = pl.col("heading").fill_null("").str.strip_chars()
        repeats = para.str.starts_with(head) & (head != "")
        rest = para.str.slice(head.str.len_chars())
        stop = rest.str.extract(r"^([.!?:;])", 1)
        cut_short = ~head.str.contains(_SENTENCE_END) & rest.str.contains(r"^\s*[^\s\p{Lu}.!?:;]")
        head, para = (
            pl.when(repeats & cut_short).then(pl.lit("")).when(repeats & stop.is_not_null())
            .then(head + stop).otherwise(head),
            pl.when(repeats & cut_short).then(para).when(repeats & stop.is_not_null())
            .then(rest.str.slice(1)).when(repeats).then(rest).otherwise(para),
        )  # fmt: skip
        return df.select(
            "title", section=pl.lit(None, pl.String), heading=head, paragraph=para,
            intro=pl.lit(None, pl.String), category=cat, url=url,
        )  # fmt: skip
    if layout == "koupaee_sep":
        return df.select(
            "title", section=pl.col("sectionLabel").str.strip_chars(),
            heading=pl.col("headline").str.strip_chars().str.strip_chars_end(","),
            paragraph=pl.col("text"), intro=pl.col("overview"), category=cat, url=url,
        )  # fmt: skip
    # koupaee_all: pair the headline lines with the step bodies when their counts agree.
    heads = (
        pl.col("headline")
        .fill_null("")
        .str.strip_chars()
        .str.split("\n")
        .list.eval(pl.element().str.strip_chars().str.strip_chars_end(","))
        .list.eval(pl.element().filter(pl.element() != ""))
    )
    bodies = (
        pl.col("text")
        .fill_null("")
        .str.replace_all(r"\.?;\s*\n,\s*|\.,\s+", ".\x00")
        .str.replace_all(r"\s*\n,\s*", "\x00")
        .str.split("\x00")
        .list.eval(pl.element().str.strip_chars())
        .list.eval(pl.element().filter(pl.element() != ""))
    )
    art = df.with_row_index("_a").with_columns(_h=heads, _b=bodies, _category=cat, _url=url)
    art = art.with_columns(
        _h=pl.when(pl.col("_h").list.len() == pl.col("_b").list.len()).then("_h")
    )
    rows = art.select("_a", "title", "_h", "_b", "_category", "_url").explode("_b")
    rows = rows.with_columns(_i=pl.int_range(pl.len()).over("_a"))
    return rows.select(
        "title",
        section=pl.lit(None, pl.String),
        heading=pl.col("_h").list.get(pl.col("_i"), null_on_oob=True),
        paragraph=pl.col("_b"),
        intro=pl.lit(None, pl.String),
        category=pl.col("_category"),
        url=pl.col("_url"),
    )


def _rename_article(text: pl.Expr) -> pl.Expr:
    """ "This article ..." / "This wikiHow ..." at the start of a sentence -> "The following
    answer ..."."""
    return text.str.replace_all(
        r"(^|[.!?]\s+)This (?:article|wikiHow)\b", "${1}The following answer"
    )


def _step_text() -> pl.Expr:
    """ "N. Headline. First paragraph" and every further line of the step as a ``\t* ``
    sub-list item (wikiHow's bullets under a step)."""
    lines = (
        pl.col("paragraph")
        .str.split("\n")
        .list.eval(pl.element().str.strip_chars())
        .list.eval(pl.element().filter(pl.element() != ""))
    )
    head = pl.col("heading").fill_null("").str.strip_chars()
    head = pl.when(head.str.contains(_SENTENCE_END) | (head == "")).then(head).otherwise(head + ".")
    first = pl.concat_str([head, lines.list.first().fill_null("")], separator=" ").str.strip_chars()
    rest = lines.list.slice(1).list.eval(pl.concat_str([pl.lit("\t* "), pl.element()]))
    return pl.concat_str(
        [
            pl.format("{}. {}", pl.col("_n"), first),
            pl.when(rest.list.len() > 0)
            .then(pl.lit("\n") + rest.list.join("\n"))
            .otherwise(pl.lit("")),
        ]
    )


# A title word wikiHow capitalised only because titles are Title Case: its first letter is the
# only capital (words such as "iPhone", "DIY" or "I" are kept as written).
_TITLE_CASED = r"^\p{Lu}[^\p{Lu}-]*(?:-\p{Lu}[^\p{Lu}-]*)*$"
_HONORIFICS = frozenset({"Dr.", "Mr.", "Mrs.", "Ms.", "St.", "Prof."})
_WORD = r"\p{L}[\p{L}\p{N}]*"
# a run of capitalised words in mid-sentence: after a lower-case letter, a digit, a comma, a
# semicolon or a closing bracket on the same line ("use Chrome Remote Desktop instead")
_MID_RUN = r"[\p{Ll}\p{N},;)] +\p{Lu}[\p{L}\p{N}]*(?: +\p{Lu}[\p{L}\p{N}]*)*"


def _mid_sentence_capitals(a: pl.DataFrame, text: str) -> pl.DataFrame:
    """Per article, each word written capitalised in mid-sentence and the capitalised word
    after it in the same run (null at the run's end), with how often: ``Chrome Remote
    Desktop`` gives (Chrome, Remote), (Remote, Desktop), (Desktop, null). Headings (``## ``
    lines) are left out: they are Title Case, like the titles."""
    body = pl.col(text).fill_null("").str.replace_all(r"(?m)^#+ .*$", "")
    return (
        a.select("_a", _r=body.str.extract_all(_MID_RUN))
        .explode("_r")
        .drop_nulls("_r")
        .with_row_index("_run")
        .select(
            "_a",
            "_run",
            _base=pl.col("_r")
            .str.slice(1)
            .str.strip_chars()
            .str.split(" ")
            .list.eval(pl.element().filter(pl.element() != "")),
        )
        .explode("_base")
        .with_columns(_next=pl.col("_base").shift(-1).over("_run"))
        .group_by("_a", "_base", "_next")
        .agg(_n=pl.len())
    )


def _lower_count(text: pl.Expr, word: pl.Expr) -> pl.Expr:
    """How often ``word`` (a pattern of letters and digits) stands as a word in ``text``."""
    return text.fill_null("").str.count_matches(pl.lit(r"\b") + word + pl.lit(r"\b"))


def cased_prompts(articles: pl.DataFrame, title: str = "core", text: str = "text") -> pl.Series:
    """ "How to Brush a Dog's Teeth" -> "How to brush a dog's teeth?": every title-cased word
    after "How to" lowered unless the article's own text marks it as a name, by writing it
    capitalised in mid-sentence (after a lower-case letter, a digit or a comma) more often
    than in lower case, singular or plural ("How to use Bitcoin?", "How to dress for
    Oktoberfest?"; "poll" counts against "Polls"). Every word of a run of capitals counts
    ("In a South Indian birth chart"), and a name of several words is read as one: the
    title's next word must follow the word in the text's run, or the run must end there.
    "Remote Desktop" and "Chrome Remote Desktop" count for "Remote Desktop" in the title
    ("How to use Remote Desktop on Windows 8?"); "Virtual Router" is no evidence for "Virtual
    Wifi". The first word is the verb and always lowered; words with other capitals
    ("iPhone", "CPR") and honorifics ("Dr.") stay as written. Done for all articles at once in
    polars (no Python loop per article)."""
    a = articles.select(title, text).with_row_index("_a")
    words = (
        a.select("_a", _w=pl.col(title).str.strip_prefix("How to ").str.split(" "))
        .explode("_w")
        .with_columns(_i=pl.int_range(pl.len()).over("_a"))
        .with_columns(_base=pl.col("_w").str.extract(f"({_WORD})", 1))
        .with_columns(
            # the next title word, where it is capitalised: the name may go on
            _tnext=pl.when(pl.col("_w").str.contains(r"^\p{Lu}").shift(-1).over("_a")).then(
                pl.col("_base").shift(-1).over("_a")
            )
        )
    )
    runs = _mid_sentence_capitals(a, text)
    caps = (
        words.select("_a", "_i", "_base", "_tnext")
        .join(runs, on=["_a", "_base"], how="inner")
        .filter(pl.col("_next").is_null() | (pl.col("_next") == pl.col("_tnext")))
        .group_by("_a", "_i")
        .agg(_caps=pl.col("_n").sum())
    )
    # counter-evidence: the word written in lower case in the text, in the singular or the
    # plural ("Seller" in a button's label, "seller" everywhere else; "the Facebook Polls page"
    # once, "poll" fifteen times)
    single = (
        caps.join(words.select("_a", "_i", "_base"), on=["_a", "_i"], how="left")
        .join(a.select("_a", text), on="_a", how="left")
        .select(
            "_a",
            "_i",
            _name=pl.col("_caps")
            > _lower_count(
                pl.col(text),
                pl.col("_base").str.to_lowercase().str.replace(r"(\p{L}{3})s$", "$1") + "s?",
            ),
        )
    )
    words = words.join(single, on=["_a", "_i"], how="left", maintain_order="left").with_columns(
        _w=pl.when(
            pl.col("_w").str.contains(_TITLE_CASED)
            # the first word is the verb ("How to Use ..."), never a name
            & (~pl.col("_name").fill_null(False) | (pl.col("_i") == 0))
            & ~pl.col("_w").is_in(list(_HONORIFICS))
        )
        .then(pl.col("_w").str.to_lowercase())
        .otherwise("_w")
    )
    joined = (
        words.sort("_a", "_i")
        .group_by("_a", maintain_order=True)
        .agg(_p=pl.col("_w").str.join(" "))
    )
    return (
        a.select("_a")
        .join(joined, on="_a", how="left", maintain_order="left")
        .select(pl.format("How to {}?", pl.col("_p").str.strip_chars_end("?.!")))
        .to_series()
        .alias("prompt")
    )


def article_url(title: pl.Expr) -> pl.Expr:
    """wikiHow's address of an article from its title: "How to Be an Organized Artist" ->
    https://www.wikihow.com/Be-an-Organized-Artist (the site's own naming rule)."""
    path = (
        _prompt_core(title)
        .str.strip_prefix("How to ")
        .str.replace_all(r"[?#%]", "")
        .str.strip_chars()
        .str.replace_all(r"\s+", "-")
    )
    return pl.concat_str([pl.lit("https://www.wikihow.com/"), path])


@dataclass
class WikiHowScan:
    path: str
    layout: str
    funnel: dict[str, Any]
    frame: pl.DataFrame  # one row per article: title, prompt, response, category, url, key

    def report(self) -> dict[str, Any]:
        return {"path": self.path, "layout": self.layout, "funnel": self.funnel}


def read_articles(path: Path, settings: WikiHowSettings) -> WikiHowScan:
    """One article per row with its prompt and cleaned response; rejects counted by reason."""
    df = _read_csv(path)
    layout = detect_layout(df.columns)
    if layout in ("unknown", "titles"):
        raise WikiHowError(
            f"{path}: line 1: header {df.columns} is not a wikiHow article layout "
            "(want headline,title,text or overview,headline,text,sectionLabel,title "
            "or title,heading,paragraph)"
        )
    df = df.rename({c: c.strip() for c in df.columns}).rename(
        {c: c.lower() for c in ("Category", "URL", "Link") if c in df.columns}
    )
    if "link" in df.columns and "url" not in df.columns:
        df = df.rename({"link": "url"})
    steps = _steps(df, layout).with_row_index("_order")
    dropped = _norm_names(settings.drop_sections)
    is_dropped = norm_name(pl.col("section")).is_in(dropped).fill_null(False) | norm_name(
        pl.col("heading").str.strip_chars_end(":")
    ).is_in(dropped).fill_null(False)
    steps = steps.with_columns(_dropped=is_dropped)
    steps_dropped = int(steps["_dropped"].sum())
    kept = steps.filter(~pl.col("_dropped")).with_columns(
        paragraph=_clean(pl.col("paragraph")),
        heading=_clean(pl.col("heading")),
    )
    kept = kept.filter(pl.col("paragraph").str.len_chars() + pl.col("heading").str.len_chars() > 0)
    # Number the steps within each section; a new section starts the count again.
    kept = kept.with_columns(
        _n=pl.int_range(1, pl.len() + 1).over("title", "section", order_by="_order")
    )
    sections = (
        kept.with_columns(_step=_step_text())
        .group_by("title", "section", maintain_order=True)
        .agg(
            _body=pl.col("_step").str.join("\n"),
            _first=pl.col("_order").min(),
            category=pl.col("category").drop_nulls().first(),
            url=pl.col("url").drop_nulls().first(),
        )
    )
    n_sections = sections.group_by("title").len().rename({"len": "_k"})
    sections = sections.join(n_sections, on="title", how="left").with_columns(
        _body=pl.when((pl.col("_k") > 1) & pl.col("section").is_not_null())
        .then(pl.format("## {}\n\n{}", "section", "_body"))
        .otherwise("_body")
    )
    intros = steps.group_by("title", maintain_order=True).agg(
        _intro=pl.col("intro").drop_nulls().first()
    )
    intros = intros.with_columns(_intro=_clean(pl.col("_intro")).str.replace_all(r"\s*\n\s*", " "))
    if settings.rename_article:
        intros = intros.with_columns(_intro=_rename_article(pl.col("_intro")))
    articles = (
        sections.sort("_first")
        .group_by("title", maintain_order=True)
        .agg(
            _steps=pl.col("_body").str.join("\n\n"),
            category=pl.col("category").drop_nulls().first(),
            url=pl.col("url").drop_nulls().first(),
        )
    )
    all_titles = steps.select(pl.col("title").unique(maintain_order=True))
    articles = (
        all_titles.join(articles, on="title", how="left", maintain_order="left")
        .join(intros, on="title", how="left", maintain_order="left")
        .with_columns(
            response=pl.when(pl.col("_intro").fill_null("") != "")
            .then(
                pl.concat_str([pl.col("_intro"), pl.col("_steps").fill_null("")], separator="\n\n")
            )
            .otherwise("_steps")
            .str.strip_chars(),
            core=_prompt_core(pl.col("title")),
        )
        .drop("_intro", "_steps")
    )
    articles = articles.with_columns(
        prompt=cased_prompts(articles, "core", "response"),
        key=_title_key(),
    )
    n = pl.col("response").fill_null("").str.len_chars()
    reason = (
        pl.when(~pl.col("core").str.starts_with("How to "))
        .then(pl.lit("title_not_how_to"))
        .when(n == 0)
        .then(pl.lit("empty_body"))
        .when(n < settings.min_chars)
        .then(pl.lit("too_short"))
        .when((settings.max_chars > 0) & (n > settings.max_chars))
        .then(pl.lit("too_long"))
        .when(pl.col("key").is_duplicated() & (pl.int_range(pl.len()).over("key") > 0))
        .then(pl.lit("duplicate_title"))
    )
    articles = articles.with_columns(_reason=reason).drop("core")
    rejected = dict(
        articles.filter(pl.col("_reason").is_not_null())
        .group_by("_reason")
        .len()
        .sort("_reason")
        .rows()
    )
    good = articles.filter(pl.col("_reason").is_null()).drop("_reason")
    funnel: dict[str, Any] = {
        "rows_read": df.height,
        "steps": steps.height,
        "steps_in_dropped_sections": steps_dropped,
        "articles": articles.height,
        "with_introduction": int(intros["_intro"].fill_null("").str.len_chars().gt(0).sum()),
        "rejected": rejected,
        "kept": good.height,
    }
    return WikiHowScan(str(path), layout, funnel, good)


def load_title_table(paths: list[Path]) -> pl.DataFrame:
    """``Category, Title`` tables (any case) as key -> category rows."""
    frames = []
    for p in paths:
        df = _read_csv(p)
        cols = {c.lower(): c for c in df.columns}
        if "category" not in cols or "title" not in cols:
            raise WikiHowError(f"{p}: line 1: a title table needs Category and Title columns")
        link = pl.col(cols["link"]) if "link" in cols else pl.lit(None, pl.String)
        frames.append(
            df.select(title=pl.col(cols["title"]), category=pl.col(cols["category"]), link=link)
        )
    if not frames:
        return pl.DataFrame(schema={"key": pl.String, "category": pl.String, "link": pl.String})
    t = pl.concat(frames).with_columns(
        title=pl.when(pl.col("title").str.to_lowercase().str.starts_with("how to"))
        .then("title")
        .otherwise(pl.format("How to {}", "title"))
    )
    return t.select(key=_title_key(), category="category", link="link").unique(
        "key", keep="first", maintain_order=True
    )


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "s", "ed", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


# Character n-grams of each word, with a space at either end (" cat", "cat "): they match the
# words a title table never had through their stems and spellings ("crochet" in "crocheted",
# "minecraft" in "minecrafting").
CHAR_NGRAMS = (3, 5)
# Each kind of feature is L2-normalised on its own, then weighted: words 1, word bigrams 0.5,
# character n-grams 1. These, the n-gram lengths and the penalty were chosen by 5-fold
# cross-validation on the training part of the title table only (benches/
# eval_wikihow_classifier.py --cv 5).
BLOCK_WEIGHTS = {"w": 1.0, "b": 0.5, "c": 1.0}


def title_features(text: str) -> list[str]:
    """A title's features: its words (stop words out, a light suffix stem), its word bigrams
    (stop words in: "get rid", "rid of") and the character 3- to 5-grams of every word."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    out = ["w:" + _stem(w) for w in words if w not in _STOPWORDS]
    out += [f"b:{a}_{b}" for a, b in itertools.pairwise(words)]
    lo, hi = CHAR_NGRAMS
    for w in words:
        padded = f" {w} "
        out += [
            "c:" + padded[i : i + n] for n in range(lo, hi + 1) for i in range(len(padded) - n + 1)
        ]
    return out


@dataclass
class TitleClassifier:
    """A linear SVM (one against the rest per class, squared hinge loss, L2 penalty, trained
    with L-BFGS) over TF-IDF title features, each kind of feature normalised on its own
    (``BLOCK_WEIGHTS``); deterministic for the same training rows."""

    classes: list[str]
    vocab: dict[str, int]
    idf: np.ndarray
    weights: np.ndarray  # vocabulary x classes
    bias: np.ndarray

    def matrix(self, texts: list[str]) -> sp.csr_matrix:
        rows, cols, vals = [], [], []
        for i, text in enumerate(texts):
            counts: dict[int, int] = {}
            kinds: dict[str, list[int]] = {}
            for f in title_features(text):
                j = self.vocab.get(f)
                if j is not None:
                    if j not in counts:
                        kinds.setdefault(f[0], []).append(j)
                    counts[j] = counts.get(j, 0) + 1
            total = math.sqrt(sum(BLOCK_WEIGHTS[kind] ** 2 for kind in kinds)) or 1.0
            for kind, js in kinds.items():
                norm = math.sqrt(sum((counts[j] * self.idf[j]) ** 2 for j in js)) or 1.0
                for j in js:
                    rows.append(i)
                    cols.append(j)
                    vals.append(BLOCK_WEIGHTS[kind] * counts[j] * self.idf[j] / norm / total)
        return sp.csr_matrix((vals, (rows, cols)), shape=(len(texts), len(self.vocab)))


def train_classifier(
    titles: pl.DataFrame, names: dict[str, str] | None = None, c: float = 1.0
) -> TitleClassifier:
    """Trains on ``titles`` (``key``, ``top``, and ``link`` where the table has one: the
    article's address names it in other words, a second training text) and on the category
    names themselves (``names``: normalised name -> top-level, the category map). ``c`` is
    the inverse of the L2 penalty's strength."""
    docs = list(titles.select("key", "top").iter_rows())
    if "link" in titles.columns:
        slug = titles.select(
            pl.col("link").str.extract(r"/([^/?#]+)$", 1).str.replace_all("-", " "), "top"
        ).drop_nulls()
        docs += list(slug.iter_rows())
    if names is None:
        names = load_category_map()
    docs += sorted(names.items())
    setup = (docs, c, MAX_ITER, CHAR_NGRAMS, sorted(BLOCK_WEIGHTS.items()))
    digest = hashlib.sha256(repr(setup).encode("utf-8")).hexdigest()
    if digest in _TRAINED:  # the same table in the same process (every build of a test run)
        return _TRAINED[digest]
    classes = sorted({top for _, top in docs})
    vocab: dict[str, int] = {}
    df: dict[str, int] = {}
    for text, _ in docs:
        for f in sorted(set(title_features(text))):
            vocab.setdefault(f, len(vocab))
            df[f] = df.get(f, 0) + 1
    idf = np.array([math.log((1 + len(docs)) / (1 + df[f])) + 1 for f in vocab])
    k = len(classes)
    model = TitleClassifier(classes, vocab, idf, np.zeros((len(vocab), k)), np.zeros(k))
    x = model.matrix([t for t, _ in docs])
    # +1 for the title's class, -1 for every other: one binary problem per class
    signs = -np.ones((len(docs), k))
    signs[np.arange(len(docs)), [classes.index(top) for _, top in docs]] = 1.0

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        weights, bias = w[:-k].reshape(len(vocab), k), w[-k:]
        margin = np.maximum(0.0, 1.0 - signs * (x @ weights + bias))
        value = (margin**2).sum() + 0.5 / c * (weights**2).sum()
        g = -2.0 * signs * margin
        return float(value), np.concatenate([(x.T @ g + weights / c).ravel(), g.sum(axis=0)])

    res = optimize.minimize(
        loss, np.zeros(len(vocab) * k + k), jac=True, method="L-BFGS-B",
        options={"maxiter": MAX_ITER},
    )  # fmt: skip
    model.weights, model.bias = res.x[:-k].reshape(len(vocab), k), res.x[-k:]
    _TRAINED[digest] = model
    return model


_TRAINED: dict[str, TitleClassifier] = {}
MAX_ITER = 100  # L-BFGS steps: 500 give the same accuracy (benches/eval_wikihow_classifier.py)


def classify(articles: pl.DataFrame, model: TitleClassifier) -> pl.DataFrame:
    """The most likely class per ``key``; null where no feature of the title is known."""
    keys = articles.select("key").unique(maintain_order=True)["key"].to_list()
    x = model.matrix(keys)
    scores = x @ model.weights + model.bias
    best = scores.argmax(axis=1) if len(keys) else np.zeros(0, dtype=int)
    known = np.asarray(x.getnnz(axis=1)) > 0
    predicted = [model.classes[b] if ok else None for b, ok in zip(best, known, strict=True)]
    return pl.DataFrame(
        {"key": keys, "predicted": predicted}, schema={"key": pl.String, "predicted": pl.String}
    )


def categorize(
    articles: pl.DataFrame, settings: WikiHowSettings, title_paths: list[Path]
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Add ``top`` (one of the 19) and ``category_source`` (input / title_table / classifier);
    articles left without a category are returned with ``top`` null."""
    cmap = load_category_map(Path(settings.category_map) if settings.category_map else None)
    cmap_frame = pl.DataFrame(
        {"_norm": list(cmap), "top": list(cmap.values())},
        schema={"_norm": pl.String, "top": pl.String},
    )

    def to_top(frame: pl.DataFrame, col: str) -> pl.DataFrame:
        return (
            frame.with_columns(_norm=norm_name(pl.col(col)))
            .join(cmap_frame, on="_norm", how="left")
            .drop("_norm")
        )

    titles = to_top(load_title_table(title_paths), "category").drop_nulls("top")
    a = to_top(articles, "category").with_columns(
        category_source=pl.when(pl.col("top").is_not_null()).then(pl.lit("input"))
    )
    a = a.join(titles.select("key", _t="top", _link="link"), on="key", how="left").with_columns(
        # the article's address: the input's own, else the title table's, else wikiHow's rule
        url=pl.coalesce("url", "_link", article_url(pl.col("title"))),
        category_source=pl.coalesce(
            "category_source", pl.when(pl.col("_t").is_not_null()).then(pl.lit("title_table"))
        ),
        top=pl.coalesce("top", "_t"),
    )
    if titles.height:
        model = train_classifier(titles, cmap)
        pred = classify(a.filter(pl.col("top").is_null()), model)
        a = a.join(pred, on="key", how="left").with_columns(
            category_source=pl.coalesce(
                "category_source",
                pl.when(pl.col("predicted").is_not_null()).then(pl.lit("classifier")),
            ),
            top=pl.coalesce("top", "predicted"),
        )
        a = a.drop("predicted")
    a = a.drop("_t", "_link")
    sources = dict(a.group_by("category_source").len().drop_nulls().sort("category_source").rows())
    return a, sources


def to_examples(articles: pl.DataFrame) -> pl.DataFrame:
    """Categorised articles as rows of the shared schema."""
    out = articles.select(
        id=pl.format("wikihow/{}", pl.col("key").str.replace_all(" ", "-")),
        source=pl.lit("wikihow"),
        domain="top",
        group=pl.lit(None, pl.String),
        conversations=pl.concat_list("prompt", "response"),
        meta=pl.struct(
            title="title",
            url="url",
            category=pl.col("category"),
            category_source="category_source",
        ),
        license=pl.lit(LICENSE),
    )
    return schema.conform(out)


def sample(candidates: pl.DataFrame, quota: int, seed: int) -> pl.DataFrame:
    """The paper's draw: a category uniformly at random, then an article in it, until the
    quota is met or the candidates run out. Deterministic for a seed."""
    rng = random.Random(f"wikihow:{seed}")
    pools: dict[str, list[int]] = {}
    for i, d in enumerate(candidates.sort("id")["domain"].to_list()):
        pools.setdefault(d, []).append(i)
    chosen: list[int] = []
    cats = sorted(pools)
    while len(chosen) < quota and cats:
        c = rng.choice(cats)
        pool = pools[c]
        chosen.append(pool.pop(rng.randrange(len(pool))))
        if not pool:
            cats.remove(c)
    return candidates.sort("id")[chosen]
