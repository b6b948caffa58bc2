"""DeepSpeed without its import-time chatter.

Importing DeepSpeed logs its accelerator choice ("Setting accelerator to CPU. If you have GPU
...") and prints a ``[WARNING]`` line per op it could not build (async_io without libaio, ...),
on every call of every command that touches it: noise that buries lima's own output. Here the
import happens once, with those lines dropped; errors still show, and DeepSpeed's logging after
the import is untouched.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from types import ModuleType


def _drop_below_error(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def import_deepspeed() -> ModuleType:
    """``import deepspeed`` with its import-time warnings dropped. Without CUDA the CPU
    accelerator is chosen explicitly (as training does), rather than detected with a warning."""
    if "deepspeed" in sys.modules:
        return sys.modules["deepspeed"]
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    # DeepSpeed's logger is made at import and writes to the stdout of that moment; a filter on
    # the logger object (which logging keeps by name) outlives that.
    log = logging.getLogger("DeepSpeed")
    log.addFilter(_drop_below_error)
    real_stdout = sys.stdout
    swallowed = io.StringIO()
    try:
        with contextlib.redirect_stdout(swallowed), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import deepspeed
    finally:
        log.removeFilter(_drop_below_error)
        for handler in log.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is swallowed:
                handler.setStream(real_stdout)
    return deepspeed
