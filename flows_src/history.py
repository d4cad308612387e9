"""What a training run leaves behind: the loss of every step and a summary per epoch.

:func:`flows_src.training.train` fills a :class:`History` and saves it in the checkpoint
(:meth:`History.as_dict`); :func:`flows_src.metrics.steadiness` reads one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["History"]


@dataclass
class History:
    """What a training run leaves behind.

    Arguments:
        batch_loss: the loss of every optimizer step, in order.
        epochs: one dict per epoch (epoch 0 = before training) with the validation summary,
            the learning rate at the epoch's end and the epoch's wall time.
        first_step_seconds: the first step's time: with ``compile`` this is the warm-up.
        compiled: whether the loss ran through ``torch.compile``.
        clipped_steps: steps whose gradient norm was clipped (``config.max_grad_norm``).
        skipped_steps: steps left out because their gradient was not finite (only counted
            with gradient clipping; see :class:`flows_src.training.TrainingStep`).
    """

    batch_loss: list[float] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)
    first_step_seconds: float = 0.0
    compiled: bool = False
    clipped_steps: int = 0
    skipped_steps: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> History:
        return cls(**values)

    @property
    def train_seconds(self) -> float:
        return float(sum(e.get("seconds", 0.0) for e in self.epochs))
