# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Transfer plans (pure, no I/O): which blocks a cycle reads and how each one is decided.

kinds:
  full     every block; blocks inside source holes are sent as ZERO without reading (the receiver skips them
           only where the target is known zero), everything else is read and sent.
  cbt      only blocks touched by the CBT changed areas; inside a block only the changed ranges (widened to 4 KiB,
           clipped to the block) are read and sent (`parts`), unless they cover the whole block.
  digests  every block is read and digested; only blocks whose digest differs from the target's committed map are
           sent. Without a usable map the receiver digests the target first ('seeded').
  seeded   like digests, against digests the receiver computes by reading the target.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath import extents as ext

KINDS = ('full', 'cbt', 'digests', 'seeded')


class PlanError(ValueError):
    """The plan cannot be built from these inputs."""


class Plan(object):
    """blocks: sorted block indexes to handle; source_zero: set of those known zero on the source (not read);
    compare: True when a block whose digest matches the target map is skipped (digest plans); parts: {block index:
    [(offset, length), ...]} for blocks of which only those byte ranges are transferred (cbt plans)."""

    def __init__(self, kind, capacity, block_size, blocks, source_zero=(), compare=False, parts=None):
        self.kind = kind
        self.capacity = capacity
        self.block_size = block_size
        self.blocks = blocks
        self.source_zero = frozenset(source_zero)
        self.compare = compare
        self.parts = dict(parts or {})

    def block_range(self, index):
        return ext.block_range(index, self.block_size, self.capacity)

    @property
    def bytes_planned(self):
        """Bytes the plan covers: whole blocks plus the sub-block parts."""
        if not self.blocks:
            return 0
        n = len(self.blocks) * self.block_size
        last = self.blocks[-1]
        n -= (last + 1) * self.block_size - min((last + 1) * self.block_size, self.capacity)
        for index, pieces in self.parts.items():
            n += sum(length for _offset, length in pieces) - self.block_range(index)[1]
        return n

    def describe(self):
        return {'kind': self.kind, 'capacity': self.capacity, 'block_size': self.block_size,
                'blocks': len(self.blocks), 'bytes_planned': self.bytes_planned,
                'blocks_known_zero_on_source': len(self.source_zero), 'blocks_partial': len(self.parts)}


def build_plan(kind, capacity, block_size, cbt_extents=None, source_extents=None, target_map=None):
    """Build a Plan.

    source_extents: (offset, length, is_zero) from the source endpoint (optional; lets full/cbt plans skip reading
    known-zero blocks). target_map: the target's committed DigestMap (digests plan) or the seeded one."""
    if kind not in KINDS:
        raise PlanError('unknown plan kind %r (use one of %s)' % (kind, ', '.join(KINDS)))
    if capacity < 0 or capacity % 512:
        raise PlanError('capacity %d is not a multiple of 512' % capacity)
    count = ext.block_count(capacity, block_size)
    zero_blocks = set()
    if source_extents is not None:
        zero_blocks = set(ext.fully_covered_blocks([(o, n) for o, n, z in source_extents if z], block_size, capacity))
    if kind == 'full':
        return Plan(kind, capacity, block_size, list(range(count)), zero_blocks)
    if kind == 'cbt':
        if cbt_extents is None:
            raise PlanError('a cbt plan needs the changed areas (cbt_extents)')
        pieces = ext.cbt_pieces(cbt_extents, block_size, capacity)
        blocks = [index for index, _parts in pieces]
        source_zero = zero_blocks.intersection(blocks)
        parts = dict((i, p) for i, p in pieces if p is not None and i not in source_zero)
        return Plan(kind, capacity, block_size, blocks, source_zero, parts=parts)
    if target_map is None:
        raise PlanError('a %s plan needs the target digest map' % kind)
    if target_map.capacity != capacity or target_map.block_size != block_size:
        raise PlanError('the target digest map (%d bytes / %d-byte blocks) does not match the disk (%d / %d)'
                        % (target_map.capacity, target_map.block_size, capacity, block_size))
    return Plan(kind, capacity, block_size, list(range(count)), zero_blocks, compare=True)
