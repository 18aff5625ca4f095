# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Journaled cycles write and journal only the 4 KiB pages of a whole-block DATA op that differ from the replica;
the restore point still rolls the whole block back."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import open_endpoint
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.sender import replicate_disk
from ansible_collections.replicator.vsphere.plugins.module_utils.receiver.stream import Receiver
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.digests import block_digest
from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import ReplicaStore
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.ssh_transport import ReceiverSpec

from mover_helpers import MIB, digest_file, make_image, patch

SIZE = 8 * MIB + 4096


@pytest.mark.parametrize('pipe', [False, True], ids=['local', 'wire'])
def test_digest_cycle_writes_and_journals_only_changed_pages(tmp_path, pipe):
    src = make_image(str(tmp_path / 'src.img'), SIZE, seed=31, data_fraction=1.0)
    dst = str(tmp_path / 'dst.img')
    replicate_disk(src, dst, 'full', create_target=True, change_id='c1')
    before = digest_file(dst)
    patch(src, 2 * MIB + 8192, b'\x01' * 100)               # one page
    patch(src, 5 * MIB + 4096 * 15, os.urandom(4096 * 2))   # two pages across a 64 KiB boundary
    patch(src, 8 * MIB + 10, b'tail')                       # the short last block
    receiver = ReceiverSpec() if pipe else 'local'
    r = replicate_disk(src, dst, 'digests', receiver=receiver, change_id='c2', compress_level=1)
    assert digest_file(src) == digest_file(dst)
    rx = r.stats['receiver']
    assert r.stats['bytes_data'] == 2 * MIB + 4096          # whole blocks on the wire (digests are per block)
    assert rx['bytes_written'] == 4 * 4096                  # but 4 pages written
    assert rx['bytes_same_skipped'] == r.stats['bytes_data'] - 4 * 4096
    assert 0 < rx['bytes_journaled'] <= 4 * 4096
    store = ReplicaStore(dst + '.replicator')
    with open_endpoint(dst, writable=True) as target:
        store.rollback(target, store.load()['restore_points'][-2]['id'])   # the point of cycle c1
    assert digest_file(dst) == before


def test_block_changed_twice_in_one_batch_is_written_whole(tmp_path):
    """A second op on a block already changed earlier in the same batch cannot be diffed against the target."""
    path = str(tmp_path / 'd.img')
    with open(path, 'wb') as f:
        f.write(os.urandom(2 * MIB))
    replicate_disk(path, str(tmp_path / 'r.img'), 'full', create_target=True, change_id='c0')
    rx = Receiver()
    rx.hello({'target': str(tmp_path / 'r.img'), 'capacity': 2 * MIB, 'block_size': MIB, 'plan': 'full'})
    with open(path, 'rb') as f:
        original = f.read(MIB)
    first = bytearray(original)
    first[0:4096] = bytes(4096)
    rx.apply_data(0, MIB, block_digest(first), first, False)
    second = bytearray(original)                            # back to the original content in pages 0..
    second[MIB - 4096:] = b'z' * 4096
    rx.apply_data(0, MIB, block_digest(second), second, False)
    assert rx.finish() == []
    rx.commit('c1')
    rx.close()
    with open(str(tmp_path / 'r.img'), 'rb') as f:
        assert f.read(MIB) == bytes(second)
