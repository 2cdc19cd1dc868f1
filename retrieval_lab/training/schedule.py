"""Learning-rate schedules, built once the trainer knows the total number of optimizer steps."""

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR
from transformers import get_linear_schedule_with_warmup


def linear_warmup_decay(optimizer: Optimizer, total_steps: int, warmup_ratio: float = 0.1) -> LambdaLR:
    """Linear warmup over ``ceil(warmup_ratio * total_steps)`` steps, then linear decay to zero."""
    if not 0 <= warmup_ratio < 1:
        raise ValueError(f"warmup_ratio must be in [0, 1), got {warmup_ratio}")
    warmup = math.ceil(warmup_ratio * total_steps)
    return get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
