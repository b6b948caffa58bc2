"""The process environment the heavy wings need, set up from inside the process.

DeepSpeed JIT-compiles its ops with ``ninja``, and torch looks ``ninja`` up on ``PATH``. The
training extra installs ``ninja`` beside the interpreter (``.venv/bin``), which is not on
``PATH`` when a user calls ``.venv/bin/lima-train`` by its full path or runs a cron job. So the
interpreter's own ``bin/`` goes to the front of ``PATH``; child processes (torchrun's ranks,
DeepSpeed's compiler calls) inherit it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def interpreter_bin_on_path() -> None:
    """Put the folder of ``sys.executable`` (not resolved: a venv's ``bin/`` is a folder of
    symlinks) first on ``PATH`` unless it is already there."""
    here = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if here not in parts:
        os.environ["PATH"] = os.pathsep.join([here, *[p for p in parts if p]])
