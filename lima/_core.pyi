"""Type stub of the native module (checked by ``mypy.stubtest`` in ``make lint``)."""

from os import PathLike
from typing import Any, final

__all__ = [
    "ArchiveError",
    "ArrowBatches",
    "DumpFormatError",
    "LimaError",
    "Progress",
    "__version__",
    "check_answer",
    "default_image_phrases",
    "default_numeral_words",
    "default_reference_phrases",
    "html_to_markdown",
    "scan_comments",
    "scan_pushshift",
    "scan_stackexchange",
]

__version__: str

class LimaError(Exception): ...
class DumpFormatError(LimaError): ...
class ArchiveError(LimaError): ...

@final
class Progress:
    def __new__(cls) -> Progress: ...
    @property
    def position(self) -> int: ...
    @property
    def total(self) -> int: ...
    def cancel(self) -> None: ...

@final
class ArrowBatches:
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...

def scan_stackexchange(
    path: str | PathLike[str],
    *,
    progress: Progress | None = None,
    on_error: str = "fail",
    seed: int = 0,
    filters: bool = True,
    min_score: int = 10,
    min_chars: int = 1200,
    max_chars: int = 4096,
    first_person_words: list[str] | None = None,
    numeral_words: list[str] | None = None,
    reference_phrases: list[str] | None = None,
    image_references: bool = True,
    image_phrases: list[str] | None = None,
    max_link_list_share: float = 0.5,
    bullet: str = "* ",
    blank_line_between_paragraphs: bool = False,
    inline_code_backticks: bool = True,
    escape_markdown: bool = True,
    max_depth: int = 8,
    users: bool = True,
    max_line_bytes: int = 67108864,
    threads: int = 0,
) -> tuple[ArrowBatches, dict[str, Any]]: ...
def check_answer(
    html: str,
    *,
    min_chars: int = 1200,
    max_chars: int = 4096,
    first_person_words: list[str] | None = None,
    numeral_words: list[str] | None = None,
    reference_phrases: list[str] | None = None,
    image_references: bool = True,
    image_phrases: list[str] | None = None,
    max_link_list_share: float = 0.5,
    bullet: str = "* ",
    blank_line_between_paragraphs: bool = False,
    inline_code_backticks: bool = True,
    escape_markdown: bool = True,
    max_depth: int = 8,
) -> tuple[str, str | None]: ...
def scan_pushshift(
    path: str | PathLike[str],
    *,
    subreddit: str | None = None,
    kind: str = "auto",
    progress: Progress | None = None,
    on_error: str = "fail",
    min_submission_score: int | None = None,
    min_comment_score: int | None = None,
    min_comment_chars: int = 0,
    top_level_only: bool = False,
    max_line_bytes: int = 10485760,
    threads: int = 0,
) -> tuple[ArrowBatches, dict[str, Any]]: ...
def scan_comments(
    path: str | PathLike[str],
    post_ids: list[int],
    *,
    progress: Progress | None = None,
    on_error: str = "fail",
    max_line_bytes: int = 67108864,
) -> tuple[ArrowBatches, dict[str, Any]]: ...
def html_to_markdown(html: str) -> tuple[str, str]: ...
def default_reference_phrases() -> list[str]: ...
def default_numeral_words() -> list[str]: ...
def default_image_phrases() -> list[str]: ...
