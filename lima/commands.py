"""What the three command lines (``lima-data``, ``lima-train``, ``lima-eval``) share.

Exit codes, one scheme for all three:

- 0: done;
- 1: bad input: a file, config or option value that is wrong (the message names the file and
  the line, byte offset or key);
- 2: bad usage: an unknown command or option, a missing argument, options that go together
  given apart, an option value out of its range or not among its choices (click's own usage
  errors exit 2 as well);
- 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from lima.errors import LimaError

BAD_INPUT = 1
USAGE = 2
INTERRUPTED = 130

err_console = Console(stderr=True, soft_wrap=True)


class UsageError(LimaError):
    """Options that do not fit together, or an option value out of its range; exits 2 like
    click's own usage errors."""


def version_callback(prog: str) -> Callable[[bool], None]:
    def show(value: bool) -> None:
        if value:
            from lima import __version__

            typer.echo(f"{prog} {__version__}")
            raise typer.Exit()

    return show


def version_option(prog: str) -> object:
    """A ``--version`` option for a Typer callback."""
    return typer.Option(
        "--version",
        callback=version_callback(prog),
        is_eager=True,
        help="Print the version and exit.",
    )


def fail(e: BaseException) -> NoReturn:
    """Print one line for ``e`` and exit with its code in the scheme above."""
    err_console.print(f"[red]error:[/red] {escape(_describe(e))}", highlight=False)
    raise typer.Exit(USAGE if isinstance(e, UsageError) else BAD_INPUT)


#: What a command line reports as bad input rather than a crash.
INPUT_ERRORS = (LimaError, OSError, ValueError, RecursionError, OverflowError)


def run(app: Callable[[], object]) -> None:
    """Run a Typer app with the exit-code scheme: bad input is one line and exit 1, never a
    traceback."""
    try:
        app()
    except UsageError as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        sys.exit(USAGE)
    except INPUT_ERRORS as e:
        err_console.print(f"[red]error:[/red] {escape(_describe(e))}", highlight=False)
        sys.exit(BAD_INPUT)
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/red]")
        sys.exit(INTERRUPTED)


def _describe(e: BaseException) -> str:
    if isinstance(e, RecursionError):
        return "input nested too deeply to read"
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return str(e)


# --- the options every local page server shares (review, annotate, picks, serve) -------------

HostOption = Annotated[
    str,
    typer.Option(
        help="address to bind (loopback by default; any other, such as 0.0.0.0, needs --token)"
    ),
]
PageTokenOption = Annotated[
    str | None,
    typer.Option(
        envvar="LIMA_TOKEN",
        help="secret the page must send back (random when not given; required off loopback, "
        "where people open the printed URL#token=...)",
    ),
]
