"""Giving freed memory back to the operating system between long-form windows.

glibc keeps freed heap memory for reuse and raises its mmap threshold after each large free, so the
window-sized buffers of a long transcription (cross K/V, logits, word-timing attention) end up on the
heap, and RSS rests tens of MB above what is in use and steps up at random (issue 18, measured on the
60-minute timeline, tiny.en int8: sequential RSS swinging 546-606 MB, and one run stepping from ~600 to
~680 MB at minute 38 for the rest of the hour). ``malloc_trim(0)`` once per window hands the free pages
back: after a 200 s file RSS rested at 216 MB instead of 277 MB, at no measurable cost (one call per
30 s window). A fixed mmap threshold (``MALLOC_MMAP_THRESHOLD_``) held RSS flat too but cost 20-25 % of
the decoding time (a page fault for every large buffer). Elsewhere than glibc this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys


def _load_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim  # glibc only (musl has no malloc_trim)
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _load_trim()


def release_free_memory() -> None:
    """Return the allocator's free pages to the operating system (glibc's ``malloc_trim``)."""
    if _TRIM is not None:
        _TRIM(0)
