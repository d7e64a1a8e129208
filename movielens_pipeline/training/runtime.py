"""Where and how training runs: device choice, seeding, mixed precision."""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA when available (or asked for), else the CPU with every core."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def mixed_precision(device: torch.device):
    """bf16 (fp16 where unsupported) autocast on CUDA; full precision elsewhere."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)
