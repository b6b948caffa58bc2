"""Fine-tuning with LIMA's recipe (an optional extra: ``pip install 'lima[train]'``)."""
