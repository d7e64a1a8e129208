"""Where and how training runs: device choice, seeding, mixed precision."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
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
    reuse_freed_memory()
    return torch.device(requested)


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# A finetuning step's temporaries (the [positions, items] logits and their gradient: 43 MB each on
# MovieLens-100k, 87 MB on -1M) stay below the first; the second is how much free memory at the
# top of the heap is kept before it is handed back.
MMAP_THRESHOLD_BYTES = 256 << 20
TRIM_THRESHOLD_BYTES = 512 << 20
_USER_MALLOC_SETTINGS = ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


@functools.cache
def reuse_freed_memory() -> bool:
    """Let glibc's malloc keep freed blocks of up to 256 MiB for reuse instead of returning them.

    By default glibc hands freed memory back to the kernel (blocks over its adaptive mmap threshold,
    at most 32 MiB, and the top of the heap beyond twice that), so a training step's temporaries
    are page-faulted in and zero-filled by the kernel again, step after step:
    on MovieLens-100k, 2 cores, LRML's epochs then take 1.23x as long (S3Rec's 1.03-1.04x; medians
    of benchmarks/allocator.py). The arithmetic is unchanged, and so are the results. The heap is
    still trimmed once more than 512 MiB at its top is free. Returns whether the setting was made: not
    where the C library has no mallopt (not glibc) or where the user set malloc's parameters in
    the environment.
    """
    if any(name in os.environ for name in _USER_MALLOC_SETTINGS):
        return False
    mallopt = getattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallopt", None)
    if mallopt is None:
        return False
    mmap_set = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    return mmap_set and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


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
