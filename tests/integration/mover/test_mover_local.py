# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Data mover end to end with the in-process receiver and file endpoints; byte-exact by whole-image digests."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import EndpointError
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.sender import MoverError, replicate_disk
from ansible_collections.replicator.vsphere.plugins.module_utils.receiver.stream import Receiver, ReceiverError
from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import ReplicaStore
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.digests import block_digest

from mover_helpers import MIB, digest_file, make_image, patch

SIZE = 24 * MIB + 3 * 512       # not a multiple of the block size: short last block


@pytest.fixture
def disks(tmp_path):
    src = make_image(str(tmp_path / 'src.img'), SIZE, seed=3)
    return src, str(tmp_path / 'dst.img')


def test_full_then_cbt_then_digests(disks, tmp_path):
    src, dst = disks
    progress = str(tmp_path / 'progress.json')
    r = replicate_disk(src, dst, 'full', create_target=True, change_id='52 aa/1', block_size=MIB,
                       progress_file=progress)
    assert digest_file(src) == digest_file(dst)
    assert r.committed_change_id == '52 aa/1' and r.restore_point['change_id'] == '52 aa/1'
    assert r.stats['bytes_planned'] == SIZE and r.stats['bytes_zero'] > 0
    assert json.load(open(progress))['stage'] == 'done'
    # zeros over data, 512-byte change at the very end, a change straddling a block boundary
    changes = [(2 * MIB, bytes(MIB)), (SIZE - 512, b'E' * 512), (5 * MIB - 100, os.urandom(300))]
    for off, data in changes:
        patch(src, off, data)
    r = replicate_disk(src, dst, 'cbt', cbt_extents=[(o, len(d)) for o, d in changes], change_id='52 aa/2',
                       block_size=MIB)
    assert digest_file(src) == digest_file(dst)
    # whole block 2, the short last block (whole), and one 4 KiB page on each side of the 5 MiB boundary
    assert r.stats['bytes_planned'] == MIB + (SIZE - 24 * MIB) + 2 * 4096
    assert r.plan['blocks'] == 4 and r.plan['blocks_partial'] == 2
    assert ReplicaStore(dst + '.replicator').load()['change_id'] == '52 aa/2'
    # digest plan without CBT: only the changed block travels
    patch(src, 11 * MIB + 7, b'digest plan')
    r = replicate_disk(src, dst, 'digests', change_id='52 aa/3', block_size=MIB)
    assert digest_file(src) == digest_file(dst)
    assert r.plan['kind'] == 'digests'
    assert r.stats['bytes_data'] == MIB and r.stats['bytes_read'] <= SIZE
    assert len(ReplicaStore(dst + '.replicator').load()['restore_points']) == 3


def test_seeded_plan_reads_target_when_no_map(disks, tmp_path):
    src, dst = disks
    # a replica seeded out of band (e.g. restored from backup): same data except a few blocks, no state yet
    with open(src, 'rb') as f, open(dst, 'wb') as g:
        g.write(f.read())
    patch(dst, 7 * MIB, os.urandom(4096))
    patch(dst, SIZE - 1024, os.urandom(1024))
    r = replicate_disk(src, dst, 'digests', change_id='s1', block_size=MIB)
    assert r.plan['kind'] == 'seeded'
    assert digest_file(src) == digest_file(dst)
    assert r.stats['bytes_data'] + r.stats['bytes_zero'] <= MIB + (SIZE % MIB) + MIB
    assert r.stats['receiver']['bytes_seed_read'] > 0


def test_odd_block_size_and_512_byte_extents(tmp_path):
    size = 5 * MIB + 512
    src = make_image(str(tmp_path / 's.img'), size, seed=9, data_fraction=0.9)
    dst = str(tmp_path / 'd.img')
    replicate_disk(src, dst, 'full', create_target=True, block_size=64 * 1024, workers=3)
    assert digest_file(src) == digest_file(dst)
    areas = [(512 * k, 512) for k in range(0, 200, 7)] + [(size - 512, 512)]
    for o, n in areas:
        patch(src, o, os.urandom(n))
    r = replicate_disk(src, dst, 'cbt', cbt_extents=areas, block_size=64 * 1024)
    assert digest_file(src) == digest_file(dst)
    assert r.stats['bytes_planned'] < size // 4


def test_zeros_over_data_reach_replica(tmp_path):
    size = 8 * MIB
    src = str(tmp_path / 's.img')
    with open(src, 'wb') as f:
        f.write(os.urandom(size))
    dst = str(tmp_path / 'd.img')
    replicate_disk(src, dst, 'full', create_target=True)
    # the source becomes all holes: a full plan must write zeros over every data block of the replica
    os.truncate(src, 0)
    os.truncate(src, size)
    r = replicate_disk(src, dst, 'full')
    assert r.stats['bytes_read'] == 0 and r.stats['bytes_zero'] == size
    assert digest_file(src) == digest_file(dst)
    assert r.stats['receiver']['bytes_zeroed'] == size


def test_dedupe_across_two_images(tmp_path):
    size = 16 * MIB
    a = make_image(str(tmp_path / 'a.img'), size, seed=5, data_fraction=1.0)
    b = str(tmp_path / 'b.img')
    with open(a, 'rb') as f, open(b, 'wb') as g:
        g.write(f.read())
    patch(b, 3 * MIB, os.urandom(MIB))
    ra, rb = str(tmp_path / 'ra.img'), str(tmp_path / 'rb.img')
    full = replicate_disk(a, ra, 'full', create_target=True)
    second = replicate_disk(b, rb, 'full', create_target=True, dedupe_sources=[{'target': ra}])
    assert digest_file(b) == digest_file(rb)
    assert second.stats['bytes_deduplicated'] > 0
    assert second.stats['bytes_data'] <= 2 * MIB < full.stats['bytes_data']


def test_dedupe_within_image_and_stale_copy(tmp_path):
    block = os.urandom(MIB)
    src = str(tmp_path / 's.img')
    with open(src, 'wb') as f:
        f.write(block * 4 + os.urandom(4 * MIB))
    dst = str(tmp_path / 'd.img')
    r = replicate_disk(src, dst, 'full', create_target=True)
    assert r.stats['bytes_deduplicated'] == 3 * MIB and digest_file(src) == digest_file(dst)
    # block 0 is overwritten first, then block 7 gets block 0's OLD content: the copy must come from block 1
    patch(src, 0, os.urandom(MIB))
    patch(src, 7 * MIB, block)
    r = replicate_disk(src, dst, 'cbt', cbt_extents=[(0, MIB), (7 * MIB, MIB)])
    assert digest_file(src) == digest_file(dst)


def test_size_mismatch_before_any_write(disks, tmp_path):
    src, dst = disks
    with open(dst, 'wb') as f:
        f.truncate(SIZE + MIB)
        f.write(b'keep')
    before = digest_file(dst)
    with pytest.raises(ReceiverError, match='size mismatch'):
        replicate_disk(src, dst, 'full')
    assert digest_file(dst) == before
    assert ReplicaStore(dst + '.replicator').load() is None


def test_target_outside_allowed_roots(disks, tmp_path):
    src, dst = disks
    root = tmp_path / 'replicas'
    root.mkdir()
    with pytest.raises((EndpointError, ReceiverError), match='outside the allowed'):
        replicate_disk(src, str(root / '..' / 'dst.img'), 'full', create_target=True, allowed_roots=[str(root)])
    assert not os.path.exists(dst)


def test_wrong_digest_aborts_and_rolls_back(disks):
    src, dst = disks
    replicate_disk(src, dst, 'full', create_target=True, change_id='c1')
    patch(src, 0, os.urandom(3 * MIB))
    replicate_disk(src, dst, 'cbt', cbt_extents=[(0, 3 * MIB)], change_id='c2')
    good = digest_file(dst)
    rx = Receiver()
    rx.hello({'target': dst, 'capacity': SIZE, 'block_size': MIB})
    rx.apply_data(MIB, MIB, block_digest(b'x' * MIB), b'x' * MIB, False)
    with pytest.raises(ReceiverError, match='digest mismatch'):
        rx.apply_data(0, MIB, block_digest(b'y' * MIB), b'z' * MIB, False)
    rx.finish()         # the first (valid) block is now written on the journaled target
    assert digest_file(dst) != good
    rx.abort()
    rx.close()
    assert digest_file(dst) == good
    store = ReplicaStore(dst + '.replicator')
    assert store.load()['change_id'] == 'c2' and store.load().get('open_cycle') is None


def test_cbt_extent_beyond_capacity(disks):
    src, dst = disks
    replicate_disk(src, dst, 'full', create_target=True)
    with pytest.raises(Exception, match='beyond'):
        replicate_disk(src, dst, 'cbt', cbt_extents=[(SIZE - 512, 1024)])
    assert ReplicaStore(dst + '.replicator').load().get('open_cycle') is None


def test_unknown_receiver_refused(disks):
    src, dst = disks
    with pytest.raises(MoverError):
        replicate_disk(src, dst, 'full', receiver='carrier-pigeon')


@pytest.mark.parametrize('block_size', [3000, 0, 128 * MIB])
def test_bad_block_size_refused_before_the_receiver_starts(disks, block_size, monkeypatch):
    src, dst = disks
    monkeypatch.setattr('ansible_collections.replicator.vsphere.plugins.module_utils.mover.sender._open_channel',
                        lambda *a: pytest.fail('a receiver was started'))
    with pytest.raises(MoverError, match='block size must be a power of two'):
        replicate_disk(src, dst, 'full', create_target=True, block_size=block_size)
    assert not os.path.exists(dst)
