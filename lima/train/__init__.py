"""Fine-tuning with LIMA's recipe (an optional extra: ``pip install 'lima[train]'``)."""

from lima.env import interpreter_bin_on_path

interpreter_bin_on_path()
