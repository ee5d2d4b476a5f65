"""Giving freed heap memory back to the operating system.

A CPU forward pass allocates activations whose shapes change from batch to batch (padded
length x batch size). glibc keeps freed blocks of up to 32 MiB in its heap rather than
unmapping them, and those blocks fragment, so a long encode pass grows the resident set
by hundreds of MiB that nothing uses: measured on 4,000 20 Newsgroups texts with MiniLM
(2 CPU cores), 580 -> 1152 MiB during the pass, 680 MiB after ``malloc_trim``.
``malloc_trim(0)`` every 16 batches keeps that pass near 940 MiB for 1-7% more encode
time (every batch: 785 MiB but ~15% slower). Elsewhere than glibc this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
TRIM_EVERY = 16  # batches between two trims of the heap


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def release_free_memory() -> bool:
    """Return the heap's free pages to the OS; True if the C library could do it."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True


def trimmed(batches: Iterable[T], every: int = TRIM_EVERY) -> Iterator[T]:
    """``batches`` unchanged, releasing free heap memory after every ``every`` of them."""
    for i, batch in enumerate(batches, 1):
        yield batch
        if i % every == 0:
            release_free_memory()
