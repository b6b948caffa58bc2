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

from lima.errors import ConfigError
from lima.sources.reddit import AskRedditSettings, WritingPromptsSettings
from lima.sources.stackexchange import FilterSettings

# Words that make a title lean on its body ("Is this safe?", "What does the
# following mean?"): such a title is not a self-contained question.
DEICTIC_WORDS = [
    "this", "these", "that", "those", "it", "here", "above", "below", "following", "attached",
]  # fmt: skip


@dataclass
class Quota:
    stem: int = 200
    other: int = 200


@dataclass
class StackExchangeConfig:
    """Stack Exchange: 200 STEM + 200 other, sites drawn with temperature 3."""

    paths: list[str] = field(default_factory=list)
    quota: Quota = field(default_factory=Quota)
    temperature: float = 3.0
    include_meta: bool = False
    sites_file: str | None = None
    site_groups: dict[str, str] = field(default_factory=dict)
    filters: FilterSettings = field(default_factory=FilterSettings)
    not_self_contained_words: list[str] = field(default_factory=lambda: list(DEICTIC_WORDS))
    min_title_words: int = 4


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
class BuildConfig:
    seed: int = 0
    on_error: str = "fail"
    stackexchange: StackExchangeConfig = field(default_factory=StackExchangeConfig)
    reddit: RedditConfig = field(default_factory=RedditConfig)
    # Set when the config came from a file: relative paths are resolved against it.
    base_dir: str = field(default=".", metadata={"internal": True})

    def resolve(self, p: str) -> Path:
        if p.startswith("package:"):
            return Path(str(resources.files("lima").joinpath(p.removeprefix("package:lima/"))))
        path = Path(p)
        return path if path.is_absolute() else Path(self.base_dir) / path

    def validate(self, origin: str) -> None:
        if self.on_error not in ("fail", "skip"):
            raise ConfigError(f"{origin}: on_error must be 'fail' or 'skip'")
        se = self.stackexchange
        if se.temperature <= 0:
            raise ConfigError(f"{origin}: stackexchange.temperature must be > 0")
        if se.quota.stem < 0 or se.quota.other < 0:
            raise ConfigError(f"{origin}: stackexchange.quota values must be >= 0")
        for name, quota in (
            ("reddit.writingprompts.quota", self.reddit.writingprompts.quota),
            ("reddit.askreddit.quota", self.reddit.askreddit.quota),
        ):
            if quota < 0:
                raise ConfigError(f"{origin}: {name} must be >= 0")
        f = se.filters
        if f.min_chars > f.max_chars:
            raise ConfigError(f"{origin}: stackexchange.filters.min_chars exceeds max_chars")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("base_dir")
        return d


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
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: config file not found") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from e
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
    return cfg
