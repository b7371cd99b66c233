"""Keep a long-running process's memory near its steady level after bursts of large requests.

glibc gives each thread that allocates concurrently an arena of its own (up to 8 per core) and
keeps their freed pages: after a burst of concurrent long queries a server stays hundreds of
MB above its steady level. Capping the arenas, as ``MALLOC_ARENA_MAX=2`` does, keeps that
growth small at little cost for a Python process (the GIL serialises most allocation anyway).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

__all__ = ["limit_malloc_arenas"]

logger = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # mallopt parameter number in glibc's malloc.h


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for this process (arenas created from now on).

    Does nothing when ``MALLOC_ARENA_MAX`` is set (the user's choice wins) or when the C library
    is not glibc.

    Args:
        arenas: The most arenas malloc may use.

    Returns:
        Whether the cap was applied.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    applied = bool(mallopt(_M_ARENA_MAX, arenas))
    logger.debug("malloc arenas capped at %d: %s", arenas, applied)
    return applied
