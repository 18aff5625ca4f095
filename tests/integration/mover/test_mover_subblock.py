# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CBT cycles send only the changed ranges of a block (sub-block DATA / ZERO ops) and keep the digest map exact."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.digests import DigestMap, block_digest
from ansible_collections.replicator.vsphere.plugins.module_utils.receiver.stream import Receiver, ReceiverError
from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import ReplicaStore
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.ssh_transport import ReceiverSpec
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.sender import replicate_disk
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.wire import FRAME_HEADER_SIZE

from mover_helpers import MIB, digest_file, make_image, patch

SIZE = 16 * MIB + 1536


def _file_map(path):
    """Digest map computed straight from the file: what the committed map must equal."""
    dmap = DigestMap(SIZE, MIB)
    with open(path, 'rb') as f:
        for i in range(dmap.count):
            dmap.set(i, block_digest(f.read(MIB)))
    return dmap


def _guest_writes(src):
    """64 KiB writes in three blocks, 4 KiB of zeros over data, a write across a block boundary."""
    writes = [(2 * MIB + 40960, os.urandom(65536)), (6 * MIB + 8192, os.urandom(65536)),
              (9 * MIB + 512, os.urandom(65536 - 512)), (11 * MIB + 4096, bytes(4096)),
              (13 * MIB - 2048, os.urandom(4096))]
    for offset, data in writes:
        patch(src, offset, data)
    return [(o, len(d)) for o, d in writes]


@pytest.mark.parametrize('remote', [False, True])
def test_cbt_sends_only_changed_bytes_and_map_stays_exact(tmp_path, remote):
    receiver = ReceiverSpec() if remote else 'local'
    src = make_image(str(tmp_path / 'src.img'), SIZE, seed=31, data_fraction=1.0)
    dst = str(tmp_path / 'dst.img')
    replicate_disk(src, dst, 'full', create_target=True, receiver=receiver, change_id='f1')
    old = digest_file(dst)
    areas = _guest_writes(src)
    r = replicate_disk(src, dst, 'cbt', cbt_extents=areas, receiver=receiver, change_id='i1', compress_level=0)
    assert digest_file(src) == digest_file(dst)
    changed = 3 * 65536 + 4096 + 2 * 4096     # page-aligned: 64 KiB x3, the zero page, a page each side of 13 MiB
    st = r.stats
    assert st['bytes_planned'] == changed and st['bytes_read'] == changed
    assert st['bytes_data'] + st['bytes_zero'] == changed and st['bytes_zero'] == 4096
    ops = 6
    block_ops = st['bytes_data'] + ops * FRAME_HEADER_SIZE      # remote: plus the stream header, HELLO and END
    assert block_ops <= st['bytes_sent'] <= block_ops + (4096 if remote else 0)
    assert r.plan['blocks'] == 6 and r.plan['blocks_partial'] == 6
    assert st['receiver']['bytes_rehashed'] == 6 * MIB
    store = ReplicaStore(dst + '.replicator')
    assert DigestMap.from_bytes(store.read_digest_map()) == _file_map(dst)
    # the exact map means a digest cycle finds nothing to send
    r = replicate_disk(src, dst, 'digests', receiver=receiver, change_id='d1')
    assert r.stats['bytes_data'] == 0 and r.stats['bytes_zero'] == 0
    # and the sub-block cycle rolls back byte-exact
    from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import open_endpoint
    points = [p['id'] for p in store.load()['restore_points']]
    with open_endpoint(dst, writable=True) as target:
        store.rollback(target, points[0])
    assert digest_file(dst) == old


def test_compressed_sub_block_ops_over_the_wire(tmp_path):
    src = make_image(str(tmp_path / 'src.img'), SIZE, seed=32, data_fraction=1.0)
    dst = str(tmp_path / 'dst.img')
    replicate_disk(src, dst, 'full', create_target=True, change_id='f1')
    areas = [(k * MIB + 65536, 65536) for k in range(1, 15, 2)]
    for offset, length in areas:
        patch(src, offset, ((b'compressible guest write %d ' % offset) * length)[:length])
    r = replicate_disk(src, dst, 'cbt', cbt_extents=areas, receiver=ReceiverSpec(), compress_level=1,
                       change_id='i1')
    assert digest_file(src) == digest_file(dst)
    changed = sum(n for _o, n in areas)
    # "sent only what changed": well under the changed bytes, far under one MiB per touched block
    assert r.stats['bytes_sent'] < changed // 2
    assert DigestMap.from_bytes(ReplicaStore(dst + '.replicator').read_digest_map()) == _file_map(dst)


def test_receiver_refuses_pieces_crossing_a_block(tmp_path):
    dst = str(tmp_path / 'dst.img')
    with open(dst, 'wb') as f:
        f.truncate(SIZE)
    rx = Receiver()
    rx.hello({'target': dst, 'capacity': SIZE, 'block_size': MIB, 'journal': False})
    data = os.urandom(8192)
    with pytest.raises(ReceiverError, match='inside one block'):
        rx.apply_data(MIB - 4096, 8192, block_digest(data), data, False, partial=True)
    with pytest.raises(ReceiverError, match='inside one block'):
        rx.apply_zero(SIZE - 512, 4096, block_digest(bytes(4096)), partial=True)
    with pytest.raises(ReceiverError, match='digest mismatch'):
        rx.apply_data(4096, 8192, block_digest(b'other'), data, False, partial=True)
    rx.abort()
    rx.close()
