"""Keep request-sized buffers in the heap, so each request does not fault fresh pages in.

Every request brings a few buffers of its own size: the bytes received, the
lower-cased copy searched for needles, the tagged result. glibc serves
allocations above its mmap threshold (128 KiB to start with) from fresh
mappings, which cost a page fault per 4 KiB on first touch and a munmap when
freed; with requests of 1000 records (1.3 MiB) that was about 400 page
faults and 1.4 ms of system time per request, more than the tagging itself.
Raising the threshold keeps such buffers in the heap, reused from one
request to the next. The heap then keeps what the in-flight limit lets it
grow to instead of handing it back between requests.
"""

from __future__ import annotations

import ctypes
import logging

logger = logging.getLogger(__name__)

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Allocations up to this size come from the heap (glibc's own ceiling for
# its adaptive threshold on 64-bit systems).
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
# Free memory at the top of the heap beyond this is returned to the system.
TRIM_THRESHOLD_BYTES = 2 * MMAP_THRESHOLD_BYTES


def keep_large_buffers() -> bool:
    """Raise glibc's mmap and trim thresholds; False where that is not possible (not glibc)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        logger.debug("no mallopt in this C library; allocator left as it is")
        return False
    done: bool = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    done = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1 and done
    if not done:
        logger.debug("mallopt refused the thresholds; allocator left as it is")
    return done
