# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Byte range and block maths (pure, no I/O).

An extent is an (offset, length) pair of bytes; a block index i covers [i * block_size, min((i + 1) * block_size,
capacity)): the last block of a disk may be short.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


SUB_BLOCK_ALIGN = 4096


class ExtentError(ValueError):
    """An extent is invalid for the disk (negative, beyond the capacity, ...)."""


def block_count(capacity, block_size):
    return (capacity + block_size - 1) // block_size


def block_range(index, block_size, capacity):
    """(offset, length) of block `index`; the last block may be short."""
    start = index * block_size
    if index < 0 or start >= capacity:
        raise ExtentError('block %d is outside a disk of %d bytes' % (index, capacity))
    return start, min(block_size, capacity - start)


def check_extents(extents, capacity):
    """Validate (offset, length) pairs against the capacity; returns them as a list of int tuples."""
    out = []
    for ext in extents:
        offset, length = int(ext[0]), int(ext[1])
        if offset < 0 or length < 0:
            raise ExtentError('extent (%d, %d) has a negative offset or length' % (offset, length))
        if offset + length > capacity:
            raise ExtentError('extent (%d, %d) ends at %d, beyond the disk capacity %d'
                              % (offset, length, offset + length, capacity))
        if length:
            out.append((offset, length))
    return out


def coalesce(extents):
    """Sort and merge overlapping or touching extents; drops empty ones."""
    out = []
    for offset, length in sorted((int(o), int(n)) for o, n in extents if n):
        if out and offset <= out[-1][0] + out[-1][1]:
            last_off, last_len = out[-1]
            out[-1] = (last_off, max(last_len, offset + length - last_off))
        else:
            out.append((offset, length))
    return out


def align_to_blocks(offset, length, block_size, capacity=None):
    """Widen an extent to whole blocks: (first block index, block count)."""
    if length <= 0:
        return offset // block_size, 0
    end = offset + length
    if capacity is not None:
        end = min(end, capacity)
    first = offset // block_size
    last = (end - 1) // block_size
    return first, last - first + 1


def extents_to_blocks(extents, block_size, capacity):
    """Sorted list of block indexes touched by any extent (validated against capacity)."""
    blocks = []
    last = -1
    for offset, length in coalesce(check_extents(extents, capacity)):
        first, count = align_to_blocks(offset, length, block_size, capacity)
        for i in range(max(first, last + 1), first + count):
            blocks.append(i)
        last = max(last, first + count - 1)
    return blocks


def _area_pairs(changed_areas):
    """(start, length) pairs from CBT areas given as pairs, dicts or objects with start and length."""
    pairs = []
    for area in changed_areas:
        if isinstance(area, dict):
            pairs.append((area['start'], area['length']))
        elif hasattr(area, 'start') and hasattr(area, 'length'):
            pairs.append((area.start, area.length))
        else:
            pairs.append((area[0], area[1]))
    return pairs


def cbt_to_blocks(changed_areas, block_size, capacity):
    """Blocks to copy for CBT changed areas: iterable of (start, length) or objects/dicts with start and length."""
    return extents_to_blocks(_area_pairs(changed_areas), block_size, capacity)


def cbt_pieces(changed_areas, block_size, capacity, align=SUB_BLOCK_ALIGN):
    """Changed byte ranges per touched block, for sub-block transfers.

    Each area is widened to `align` bytes (never past the capacity) and clipped to the blocks it touches. Returns a
    sorted list of (block index, pieces): pieces are the sorted, disjoint (offset, length) ranges of that block,
    or None when they cover the whole block."""
    unit = max(1, min(align, block_size))
    widened = []
    for offset, length in coalesce(check_extents(_area_pairs(changed_areas), capacity)):
        start = offset // unit * unit
        end = min(-(-(offset + length) // unit) * unit, capacity)
        widened.append((start, end - start))
    out = []
    for offset, length in coalesce(widened):
        pos, end = offset, offset + length
        while pos < end:
            index = pos // block_size
            piece_end = min(end, (index + 1) * block_size)
            if out and out[-1][0] == index:
                out[-1][1].append((pos, piece_end - pos))
            else:
                out.append((index, [(pos, piece_end - pos)]))
            pos = piece_end
    result = []
    for index, pieces in out:
        whole = block_range(index, block_size, capacity)
        result.append((index, None if pieces == [whole] else pieces))
    return result


def fully_covered_blocks(extents, block_size, capacity):
    """Sorted block indexes entirely inside the union of extents (e.g. blocks known to be zero)."""
    blocks = []
    for offset, length in coalesce(check_extents(extents, capacity)):
        end = offset + length
        first = (offset + block_size - 1) // block_size
        i = first
        while True:
            start = i * block_size
            if start >= capacity:
                break
            if start + min(block_size, capacity - start) > end:
                break
            blocks.append(i)
            i += 1
    return blocks


def split(offset, length, chunk):
    """Yield (offset, length) pieces of at most `chunk` bytes."""
    if chunk <= 0:
        raise ExtentError('chunk must be positive')
    end = offset + length
    while offset < end:
        n = min(chunk, end - offset)
        yield offset, n
        offset += n


def runs(indexes):
    """Group sorted block indexes into (first, count) runs of consecutive blocks."""
    out = []
    for i in indexes:
        if out and out[-1][0] + out[-1][1] == i:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


def blocks_to_extents(indexes, block_size, capacity):
    """Byte extents of runs of block indexes (the last one clipped to the capacity)."""
    out = []
    for first, count in runs(indexes):
        start = first * block_size
        out.append((start, min(count * block_size, capacity - start)))
    return out
