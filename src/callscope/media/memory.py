"""Peak memory of media discovery on large captures.

Why this module exists: discovery holds the reduced columns of every
datagram (about 46 bytes each) and, beside them, arrays with one element per
RTP candidate row. At 10^7 packets each int64 temporary of that length is
80 MB and glibc keeps freed pages for reuse, so written plainly the same
steps peak at several times the columns' size. The steps that touch every
row are therefore written here to keep few such arrays alive at once:

- grouping keys built in place, row indices narrowed to 32 bits where they
  fit, each temporary dropped right after its last use;
- comparisons over every row done block by block (:data:`BLOCK`);
- a column gathered only for the rows still kept, and time converted in the
  nanoseconds' own buffer;
- freed heap handed back to the operating system (:func:`release_free_memory`)
  where the most has just been freed.

Nothing here decides what is RTP (:mod:`callscope.media.confirm` does) or
builds a stream (:mod:`callscope.media.discover`): each function returns
exactly what the plain computation would.
"""

from __future__ import annotations

import ctypes
import functools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from callscope.media.columns import MediaColumns

#: Rows per block where a temporary for every candidate row would cost tens of MB.
BLOCK = 1 << 20
NS = 1_000_000_000


def release_free_memory() -> None:
    """Hand freed heap memory back to the operating system (glibc ``malloc_trim``).

    Chunk-sized arrays live in the C heap; once freed, glibc keeps their pages
    for reuse, so a process that frees a capture's worth of small pieces and
    allocates the joined result keeps both resident. Elsewhere than glibc
    this does nothing.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc (TypeError: Windows has no CDLL(None))
        return None


def concat_freeing(pieces: list[dict[str, np.ndarray]], name: str) -> np.ndarray:
    """One column joined from every piece, each piece's own array of it then
    dropped and the heap trimmed: peak memory is the result plus one column."""
    out = np.concatenate([piece[name] for piece in pieces])
    for piece in pieces:
        del piece[name]
    release_free_memory()
    return out


def group_by_path(cols: MediaColumns, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``mask`` grouped by path and SSRC, in capture order within a
    group, and where each group starts.

    The key is (flow, SSRC) then, for RTP carried in TURN or Zoom, (transport,
    channel, peer): one stable sort on two packed int64 keys brings each
    group's rows together (``np.unique`` over rows of five columns sorts void
    records: 30x slower). Keys are built in place: each int64 temporary of
    every row costs 80 MB at 10^7 packets.

    Returns
    -------
    rows : int32 (int64 past 2^31 rows)
        Row indices in group order.
    starts : bool, one per row
        True where a group starts.
    """
    cand = np.flatnonzero(mask)
    # Row indices in 32 bits where they fit: at 10^7 packets every index
    # array is 40 MB less, and these are alive beside the columns.
    if mask.size < np.iinfo(np.int32).max:
        cand = cand.astype(np.int32)
    del mask
    if cand.size == 0:
        return cand, np.zeros(0, bool)
    hi = cols.flow[cand].astype(np.int64)
    hi <<= 32
    hi |= cols.ssrc[cand]
    # plain UDP paths only (the usual case): one key, one sort
    tunnelled = any(int(c.min()) != int(c.max()) for c in (cols.transport[cand], cols.channel[cand], cols.peer[cand]))
    lo = None
    if tunnelled:
        lo = cols.transport[cand].astype(np.int64)
        lo <<= 16
        lo |= cols.channel[cand]
        lo <<= 32
        lo |= cols.peer[cand].astype(np.int64) + 1
        order = np.lexsort((lo, hi))
    else:
        order = np.argsort(hi, kind="stable")
    rows = cand[order]
    del cand
    starts = _run_starts(order, hi, lo)
    del hi, order, lo
    release_free_memory()  # the sort's temporaries, before the streams are gathered
    return rows, starts


def _run_starts(order: np.ndarray, hi: np.ndarray, lo: np.ndarray | None) -> np.ndarray:
    """Where a new key starts in sorted order: True at row 0 and wherever
    ``(hi, lo)[order]`` changes. Block by block, so that no sorted copy of
    every row's 8-byte key is needed (80 MB at 10^7 packets)."""
    starts = np.ones(order.size, bool)
    for a in range(0, order.size - 1, BLOCK):
        o = order[a : a + BLOCK + 1]
        for keys in (hi, lo):
            if keys is not None:
                k = keys[o]
                starts[a + 1 : a + o.size] &= k[1:] == k[:-1]
    starts[1:] = ~starts[1:]
    return starts


def keep_groups(kept: np.ndarray, lengths: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    """Each of ``arrays`` (one element per row, rows in groups of ``lengths``)
    cut down to the rows of the ``kept`` groups, before more columns are gathered."""
    keep = np.repeat(kept, lengths)
    return [a[keep] for a in arrays]


def seconds_since(t_ns: np.ndarray, start_ns: int) -> np.ndarray:
    """Seconds since ``start_ns`` of int64 nanosecond times, computed in the
    nanoseconds' own buffer (``t_ns`` is overwritten: the result is a view of it)."""
    np.subtract(t_ns, start_ns, out=t_ns)
    return np.divide(t_ns, NS, out=t_ns.view(np.float64))
