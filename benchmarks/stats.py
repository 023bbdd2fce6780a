"""Timing and memory primitives: repeated timing with warm-up, median/p90 summaries, peak RSS.

Every latency the bench reports is a :class:`Stats` over ``repeats`` runs taken after ``warmup`` runs
that are thrown away (the first run pays for lazy allocations, page faults and onnxruntime's arena
growth, which a user pays once per process, not per call).
"""

from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence, TypeVar

import numpy as np

T = TypeVar("T")

# Seconds are stored to the microsecond: enough for per-token times, and it keeps the JSON readable.
ROUND = 6


def rnd(x: float) -> float:
    return round(float(x), ROUND)


@dataclass(frozen=True)
class Stats:
    """Median and 90th percentile (linear interpolation) of ``n`` samples, in seconds unless named."""

    median: float
    p90: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> "Stats":
        if not samples:
            raise ValueError("no samples to summarise")
        a = np.asarray(samples, dtype=np.float64)
        return cls(rnd(np.median(a)), rnd(np.percentile(a, 90)), int(a.size))

    def to_dict(self) -> dict:
        return asdict(self)


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def repeat(fn: Callable[[], T], warmup: int, repeats: int) -> tuple[Stats, T]:
    """Run ``fn`` warmup + repeats times; return the stats of the timed runs and the last result."""
    out: T | None = None
    for _ in range(warmup):
        out = fn()
    samples = []
    for _ in range(max(1, repeats)):
        dt, out = timed(fn)
        samples.append(dt)
    return Stats.of(samples), out  # type: ignore[return-value]


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (the kernel's high-water mark), in MiB.

    Each configuration runs in its own fresh process, so this is that configuration's peak,
    interpreter and libraries included (the baseline is reported beside it)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)


def current_rss_mb() -> float:
    try:
        import psutil

        return round(psutil.Process().memory_info().rss / 2**20, 1)
    except ImportError:  # psutil is in the bench extra; /proc works on Linux without it
        with open(f"/proc/{os.getpid()}/statm") as f:
            pages = int(f.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def folder_size_mb(path: str | os.PathLike) -> float:
    """Bytes on disk of the files a model needs (dot files such as the hash stamp excluded),
    following symlinks (the CTranslate2 folders link into the weight packages)."""
    total = 0
    for root, _dirs, files in os.walk(path, followlinks=True):
        for name in files:
            if not name.startswith("."):
                total += os.stat(os.path.join(root, name)).st_size
    return round(total / 1e6, 1)
