"""Typed build configuration, read from TOML and validated before any dump
is opened. Every default is the paper's number; every field can be set in
``lima.toml``. Unknown keys and wrong types are errors naming the file and key.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, Union

from lima.curate.dedup import DedupSettings
from lima.curate.limits import LimitSettings
from lima.curate.select import DEICTIC_WORDS, PRONOUN_WORDS, QUESTION_WORDS
from lima.curate.sources.natural_instructions import NaturalInstructionsSettings
from lima.curate.sources.reddit import AskRedditSettings, WritingPromptsSettings
from lima.curate.sources.stackexchange import FilterSettings, MarkdownStyle
from lima.curate.sources.wikihow import WikiHowSettings
from lima.errors import ConfigError


@dataclass
class Quota:
    stem: int = 200
    other: int = 200


@dataclass
class SitePath:
    """A dump whose file or folder name does not say its site."""

    path: str
    site: str | None = None


@dataclass
class StackExchangeConfig:
    """Stack Exchange: 200 STEM + 200 other, sites drawn with temperature 3."""

    # Each entry a path, or {path = "...", site = "beer.stackexchange.com"}.
    paths: list[str | SitePath] = field(default_factory=list)
    quota: Quota = field(default_factory=Quota)
    temperature: float = 3.0
    include_meta: bool = False
    sites_file: str | None = None
    site_groups: dict[str, str] = field(default_factory=dict)
    filters: FilterSettings = field(default_factory=FilterSettings)
    markdown: MarkdownStyle = field(default_factory=MarkdownStyle)
    # Self-contained titles first (select.self_contained): no deictic word, no unresolved
    # pronoun, a question (ends with '?' or opens with a question word), min_title_words.
    not_self_contained_words: list[str] = field(default_factory=lambda: list(DEICTIC_WORDS))
    pronoun_words: list[str] = field(default_factory=lambda: list(PRONOUN_WORDS))
    question_words: list[str] = field(default_factory=lambda: list(QUESTION_WORDS))
    min_title_words: int = 4
    # Name authors and askers from the dump's Users.xml (else "user N").
    users: bool = True

    def entries(self) -> list[SitePath]:
        return [p if isinstance(p, SitePath) else SitePath(p) for p in self.paths]


@dataclass
class WritingPromptsConfig(WritingPromptsSettings):
    """r/WritingPrompts: 150 prompt + story pairs for training."""

    paths: list[str] = field(default_factory=list)
    quota: int = 150


@dataclass
class AskRedditConfig(AskRedditSettings):
    """r/AskReddit: 70 title-only prompts for the test set."""

    paths: list[str] = field(default_factory=list)
    quota: int = 70


@dataclass
class RedditConfig:
    writingprompts: WritingPromptsConfig = field(default_factory=WritingPromptsConfig)
    askreddit: AskRedditConfig = field(default_factory=AskRedditConfig)


@dataclass
class WikiHowConfig(WikiHowSettings):
    """wikiHow: 200 articles, a category first (of 19), then an article in it."""

    paths: list[str] = field(default_factory=list)
    quota: int = 200
    title_tables: list[str] = field(
        default_factory=lambda: ["package:lima/data/wikihow_titles.csv"]
    )


@dataclass
class NaturalInstructionsConfig(NaturalInstructionsSettings):
    """Super-Natural Instructions: 50 generation tasks, one random instance each."""

    paths: list[str] = field(default_factory=list)
    quota: int = 50


@dataclass
class AuthoredConfig:
    """Hand-written examples: 200 train, 50 dev, 230 test prompts."""

    paths: list[str] = field(default_factory=list)
    train_quota: int = 200
    dev_quota: int = 50
    test_quota: int = 230
    license: str = "CC BY 4.0"
    style_max_words: int = 30


@dataclass
class DialogueConfig:
    """The 1,030-example variant: 10 authored chains + 20 edited from Stack Exchange comments."""

    enabled: bool = False
    paths: list[str] = field(default_factory=list)  # empty: the Stack Exchange paths
    authored_quota: int = 10
    mined_quota: int = 20
    min_turns: int = 4
    # Mined chains enter only once a person has accepted (and edited) them in review.
    require_review: bool = True


#: just-eval's example_data.json ships with lima; its ``dataset == "lima"`` rows are the paper's
#: own 300 test prompts.
LIMA_TEST_PROMPTS = "package:lima/samples/eval/just_eval_example_data.json"


@dataclass
class TestConfig:
    # The paper's own 300 test prompts, written as test_lima.jsonl; "" writes none.
    lima_prompts: str = LIMA_TEST_PROMPTS


@dataclass
class AblationConfig:
    """Sizes of the section 5 ablation sets."""

    diversity_size: int = 2000
    quality_size: int = 2000
    quantity_sizes: list[int] = field(default_factory=lambda: [2000, 4000, 8000, 16000, 32000])


@dataclass
class BuildConfig:
    seed: int = 0
    on_error: str = "fail"
    preset: str = "lima"
    stackexchange: StackExchangeConfig = field(default_factory=StackExchangeConfig)
    reddit: RedditConfig = field(default_factory=RedditConfig)
    wikihow: WikiHowConfig = field(default_factory=WikiHowConfig)
    natural_instructions: NaturalInstructionsConfig = field(
        default_factory=NaturalInstructionsConfig
    )
    authored: AuthoredConfig = field(default_factory=AuthoredConfig)
    dialogues: DialogueConfig = field(default_factory=DialogueConfig)
    test: TestConfig = field(default_factory=TestConfig)
    dedup: DedupSettings = field(default_factory=DedupSettings)
    ablation: AblationConfig = field(default_factory=AblationConfig)
    limits: LimitSettings = field(default_factory=LimitSettings)
    tokenizer: str | None = None  # a tokenizer.json: Table 1 gains token lengths
    # Memory the scans of a build (`--jobs N`) may hold at once, in MiB; 0: half of RAM.
    memory_budget_mb: int = 0
    # Set when the config came from a file: relative paths are resolved against it.
    base_dir: str = field(default=".", metadata={"internal": True})

    def resolve(self, p: str) -> Path:
        if p.startswith("package:"):
            return Path(str(resources.files("lima").joinpath(p.removeprefix("package:lima/"))))
        path = Path(p)
        return path if path.is_absolute() else Path(self.base_dir) / path

    def validate(self, origin: str) -> None:
        if not 0 <= self.seed < 2**64:
            raise ConfigError(f"{origin}: seed must be in 0..2^64-1, got {self.seed}")
        if self.on_error not in ("fail", "skip"):
            raise ConfigError(f"{origin}: on_error must be 'fail' or 'skip'")
        if not 0 <= self.memory_budget_mb < 2**40:
            raise ConfigError(f"{origin}: memory_budget_mb must be in 0..2^40-1 (0: half of RAM)")
        se = self.stackexchange
        if se.temperature <= 0:
            raise ConfigError(f"{origin}: stackexchange.temperature must be > 0")
        if se.quota.stem < 0 or se.quota.other < 0:
            raise ConfigError(f"{origin}: stackexchange.quota values must be >= 0")
        if self.preset not in PRESETS:
            raise ConfigError(f"{origin}: preset must be one of {', '.join(PRESETS)}")
        if not 0 < self.dedup.threshold <= 1:
            raise ConfigError(f"{origin}: dedup.threshold must be in (0, 1]")
        for name, quota in (
            ("reddit.writingprompts.quota", self.reddit.writingprompts.quota),
            ("reddit.askreddit.quota", self.reddit.askreddit.quota),
            ("wikihow.quota", self.wikihow.quota),
            ("natural_instructions.quota", self.natural_instructions.quota),
            ("authored.train_quota", self.authored.train_quota),
            ("authored.dev_quota", self.authored.dev_quota),
            ("authored.test_quota", self.authored.test_quota),
            ("dialogues.authored_quota", self.dialogues.authored_quota),
            ("dialogues.mined_quota", self.dialogues.mined_quota),
        ):
            if quota < 0:
                raise ConfigError(f"{origin}: {name} must be >= 0")
        f = se.filters
        if f.min_chars > f.max_chars:
            raise ConfigError(f"{origin}: stackexchange.filters.min_chars exceeds max_chars")
        if not 0 <= f.max_link_list_share <= 1:
            raise ConfigError(
                f"{origin}: stackexchange.filters.max_link_list_share must be in [0, 1]"
            )
        if self.limits.max_turn_tokens < 0 or self.limits.chars_per_token <= 0:
            raise ConfigError(
                f"{origin}: limits.max_turn_tokens must be >= 0 and limits.chars_per_token > 0"
            )
        wp = self.reddit.writingprompts
        if wp.max_story_chars and wp.min_story_chars > wp.max_story_chars:
            raise ConfigError(
                f"{origin}: reddit.writingprompts.min_story_chars exceeds max_story_chars"
            )
        if se.markdown.max_depth < 1:
            raise ConfigError(f"{origin}: stackexchange.markdown.max_depth must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("base_dir")
        return d

    def to_toml(self) -> str:
        """The effective config as TOML that ``from_dict`` reads back to the same config: every
        key, defaults included. Paths are written as given (relative ones resolve against the
        config's folder, ``base_dir``). Unset keys (``None``) are left out: TOML has no null,
        and a missing key means the same."""
        import tomli_w

        def clean(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items() if v is not None}
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value

        return str(tomli_w.dumps(clean(self.to_dict())))


# The paper's ablations (section 5): what each preset changes. Every other value stays.
PRESETS = {
    "lima": "the paper's 1,000-example mix",
    "diversity": "2,000 Stack Exchange vs 2,000 wikiHow (two training sets, train_*.jsonl)",
    "quality": "2,000 Stack Exchange examples without the answer filters",
    "quantity": "2k, 4k, 8k, 16k, 32k filtered Stack Exchange (nested sets, train_<n>.jsonl)",
}


T = TypeVar("T")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table")
        return _build(typing.cast(type, hint), value, where)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) > 1:
            # str | Table: the one whose kind the value has
            for alt in inner:
                if (dataclasses.is_dataclass(alt) and isinstance(value, dict)) or (
                    alt in (int, float, str, bool) and type(value) is alt
                ):
                    return _coerce(value, alt, where)
        return _coerce(value, inner[0], where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table")
        return {str(k): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if type(value) is not hint:
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {hint}")


def _build(cls: type[T], data: dict[str, Any], where: str) -> T:
    hints = typing.get_type_hints(cls)
    all_fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    fields = {f.name: f for f in all_fields if not f.metadata.get("internal")}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def from_dict(data: dict[str, Any], origin: str = "<config>", base_dir: str = ".") -> BuildConfig:
    cfg = _build(BuildConfig, data, "")
    cfg.base_dir = base_dir
    cfg.validate(origin)
    return cfg


def load(path: Path) -> BuildConfig:
    """Read and validate a ``lima.toml``; every problem is a ``ConfigError`` naming the file."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; give a lima.toml file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: config file not found") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: byte {e.start}: not UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from e
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a lima config") from None
    try:
        return from_dict(data, str(path), str(path.parent))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e


# The sample dumps that ship inside the package, and quotas scaled to what
# they can fill (3 sites: 1 STEM, 2 other).
SAMPLE_PATHS = [
    "package:lima/samples/stackexchange/beer.stackexchange.com.7z",
    "package:lima/samples/stackexchange/coffee.stackexchange.com",
    "package:lima/samples/stackexchange/quantumcomputing.stackexchange.com",
]


def sample_config() -> BuildConfig:
    cfg = BuildConfig()
    cfg.stackexchange.paths = list(SAMPLE_PATHS)
    cfg.stackexchange.quota = Quota(stem=10, other=10)
    wp = cfg.reddit.writingprompts
    wp.paths = [
        "package:lima/samples/reddit/WritingPrompts_submissions.ndjson",
        "package:lima/samples/reddit/WritingPrompts_comments.ndjson",
    ]
    wp.quota = 10
    wp.min_story_score = 0  # the sample (Fan et al. 2018) carries no votes
    # r/AskMen stands in for r/AskReddit: the same title-only prompts, a real dump that ships
    ask = cfg.reddit.askreddit
    ask.paths = ["package:lima/samples/reddit/AskMen_submissions.zst"]
    ask.subreddit = "AskMen"
    ask.min_score = 20
    ask.quota = 10
    cfg.wikihow.paths = ["package:lima/samples/wikihow/steps_223_articles.csv"]
    cfg.wikihow.quota = 10
    cfg.natural_instructions.paths = ["package:lima/samples/natural-instructions"]
    cfg.natural_instructions.quota = 5
    cfg.authored.paths = ["package:lima/samples/authored/demo.txt"]
    cfg.authored.train_quota = 12
    cfg.authored.dev_quota = 5
    cfg.authored.test_quota = 12
    cfg.dialogues.authored_quota = 2
    cfg.dialogues.mined_quota = 3
    cfg.ablation = AblationConfig(diversity_size=20, quality_size=20, quantity_sizes=[5, 10, 20])
    return cfg
