"""``python -m lima.train``, for launchers that run modules (torchrun -m, deepspeed -m)."""

from lima.train.cli import main

main()
