"""The paper's schedule: no warmup, the learning rate falls linearly from its peak at the first
optimizer step to exactly ``final`` at the last one.

transformers' ``linear`` reaches 0 one step after the end and ``polynomial`` crashes under ZeRO-3
(it reads ``optimizer.defaults``, which DeepSpeed's wrapped optimizer lacks); this one touches
only ``param_groups``.
"""

from __future__ import annotations

from typing import Any

from torch.optim.lr_scheduler import LRScheduler


def linear_lr(step: int, total_steps: int, peak: float, final: float) -> float:
    """The learning rate at optimizer step ``step`` (0-based) of ``total_steps``; written as a
    weighted mean so that the first step gives ``peak`` and the last ``final`` exactly."""
    if total_steps <= 1:
        return peak
    t = min(step, total_steps - 1) / (total_steps - 1)
    return final * t + peak * (1 - t)


class LimaLinearLR(LRScheduler):
    def __init__(self, optimizer: Any, total_steps: int, final_lr: float) -> None:
        self.total_steps = total_steps
        self.final_lr = final_lr
        super().__init__(optimizer)

    def get_lr(self) -> list[float | Any]:
        return [
            linear_lr(self.last_epoch, self.total_steps, float(base), self.final_lr)
            for base in self.base_lrs
        ]
