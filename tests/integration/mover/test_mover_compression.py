# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compression on the sender: blocks whose samples do not compress travel raw without a whole-block compress; the
rest travel as zstd frames; either way the replica ends up byte-identical."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import random

import pytest

zstandard = pytest.importorskip('zstandard')

from ansible_collections.replicator.vsphere.plugins.module_utils.mover.sender import PROBE_BYTES, Packer, replicate_disk
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.ssh_transport import ReceiverSpec

from mover_helpers import MIB, digest_file, patch


def _text(n, seed=0):
    return ((b'guest file system text %d ' % seed) * (n // 20 + 1))[:n]


def _random(n, seed=0):
    return random.Random(seed).getrandbits(8 * n).to_bytes(n, 'little')


def _unpack(payload, compressed, length):
    if not compressed:
        return bytes(payload)
    return zstandard.ZstdDecompressor().decompress(bytes(payload), max_output_size=length)


def test_random_block_goes_raw_without_compressing_it():
    packer = Packer(1)
    buf = bytearray(_random(MIB, 1))
    payload, compressed = packer.pack(buf)
    assert compressed is False and payload is buf
    assert packer.skipped == 1


def test_compressible_block_is_compressed_and_round_trips():
    packer = Packer(1)
    buf = bytearray(_text(MIB, 2))
    payload, compressed = packer.pack(buf)
    assert compressed is True and len(payload) < MIB // 10
    assert _unpack(payload, compressed, MIB) == bytes(buf)
    assert packer.skipped == 0


def test_random_head_but_compressible_middle_is_still_compressed():
    """The second probe (middle of the block) catches data that only starts to compress after the head."""
    packer = Packer(1)
    buf = bytearray(_random(PROBE_BYTES * 2, 3) + _text(MIB - PROBE_BYTES * 2, 3))
    payload, compressed = packer.pack(buf)
    assert compressed is True and len(payload) < MIB // 2
    assert _unpack(payload, compressed, MIB) == bytes(buf)
    assert packer.skipped == 0


def test_short_piece_skips_the_probe_and_falls_back_to_raw_when_bigger():
    packer = Packer(1)
    piece = memoryview(bytearray(_random(3 * PROBE_BYTES, 4)))      # too short to probe: one real compress
    payload, compressed = packer.pack(piece)
    assert compressed is False and payload is piece and packer.skipped == 0
    text = memoryview(bytearray(_text(8192, 4)))
    payload, compressed = packer.pack(text)
    assert compressed is True and _unpack(payload, compressed, 8192) == bytes(text)


def test_wire_copy_of_mixed_image_sends_random_blocks_raw(tmp_path):
    """Whole random blocks, compressible blocks, a random block with a compressible middle, holes and a short
    last block, over the wire with zstd-1; then a CBT cycle whose pieces mix both kinds."""
    size = 12 * MIB + 4096
    src = str(tmp_path / 'src.img')
    with open(src, 'wb') as f:
        f.truncate(size)
    random_blocks = (0, 3, 7)
    for i in random_blocks:
        patch(src, i * MIB, _random(MIB, 10 + i))
    for i in (1, 4, 8):
        patch(src, i * MIB, _text(MIB, i))
    patch(src, 5 * MIB, _random(PROBE_BYTES, 5) + _text(MIB - PROBE_BYTES, 5))
    patch(src, 12 * MIB, _random(4096, 12))
    dst = str(tmp_path / 'dst.img')
    r = replicate_disk(src, dst, 'full', receiver=ReceiverSpec(), create_target=True, compress_level=1,
                       change_id='c1')
    assert digest_file(src) == digest_file(dst)
    assert r.stats['blocks_sent_raw'] == len(random_blocks)
    # raw blocks count in full; the compressible ones (4 of them) shrink to almost nothing
    assert len(random_blocks) * MIB <= r.stats['bytes_compressed'] < (len(random_blocks) + 1) * MIB
    changes = [(0 * MIB + 65536, 65536), (1 * MIB, 4096), (7 * MIB + 4096, 8192)]
    patch(src, changes[0][0], _text(65536, 20))
    patch(src, changes[1][0], _random(4096, 21))
    patch(src, changes[2][0], _random(8192, 22))
    r = replicate_disk(src, dst, 'cbt', cbt_extents=changes, receiver=ReceiverSpec(), compress_level=1,
                       change_id='c2')
    assert digest_file(src) == digest_file(dst)
    assert r.stats['bytes_data'] == 65536 + 4096 + 8192
    assert r.stats['bytes_compressed'] < r.stats['bytes_data']
    assert os.path.getsize(dst) == size
