# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Direct writes of the in-process receiver: in an unjournaled cycle (the first one of a replica, or journal off)
the sender's workers write whole DATA blocks themselves, in any order, and the emitter books them in block order.
Byte-exact results, exact dedupe counts under many workers, journaled cycles staying in order, and a write that
fails in a worker (a real ENOSPC on a small tmpfs) aborting the cycle with nothing committed; a block that does not
fit refused before any byte of it is written (the target preallocates whole-block writes)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.digests import block_digest
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import EndpointError, FileEndpoint
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.sender import MoverError, replicate_disk
from ansible_collections.replicator.vsphere.plugins.module_utils.receiver.stream import Receiver, ReceiverError
from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import ReplicaStore

from mover_helpers import MIB, digest_file, make_image, patch


def test_first_cycle_writes_in_workers_then_journaled_cycles_go_in_order(tmp_path):
    size = 20 * MIB + 4096
    src = make_image(str(tmp_path / 'src.img'), size, seed=11, data_fraction=0.8)
    dst = str(tmp_path / 'dst.img')
    first = replicate_disk(src, dst, 'full', create_target=True, workers=3, change_id='c1')
    assert digest_file(src) == digest_file(dst)
    st = first.stats
    assert st['blocks_written_direct'] > 0
    assert st['receiver']['bytes_written'] == st['bytes_data']
    assert ReplicaStore(dst + '.replicator').load()['change_id'] == 'c1'
    # the second cycle is journaled (the first restore point exists): every op goes through the ordered path
    patch(src, 2 * MIB, os.urandom(3 * MIB))
    second = replicate_disk(src, dst, 'digests', workers=3, change_id='c2')
    assert 'blocks_written_direct' not in second.stats and second.stats['receiver']['bytes_journaled'] > 0
    assert digest_file(src) == digest_file(dst)
    # a full cycle with the journal off: written in the workers again (a digests or cbt plan copies from the
    # target's own blocks, so its ops keep their order)
    patch(src, 9 * MIB, os.urandom(MIB))
    third = replicate_disk(src, dst, 'full', workers=3, change_id='c3', journal=False)
    assert third.stats['blocks_written_direct'] > 0 and third.stats['receiver']['bytes_journaled'] == 0
    assert digest_file(src) == digest_file(dst)


def test_duplicates_under_many_workers_are_written_once(tmp_path):
    """Two distinct blocks, each repeated 12 times and interleaved, read by 6 workers at once: each is written
    once, the 22 others are copies of it, whatever order the workers finish in."""
    a, b = os.urandom(MIB), os.urandom(MIB)
    src = str(tmp_path / 's.img')
    with open(src, 'wb') as f:
        f.write((a + b) * 12 + b'\x07' * 1024)
    dst = str(tmp_path / 'd.img')
    for run in range(3):
        if os.path.exists(dst):
            os.unlink(dst)
            subprocess.run(['rm', '-rf', dst + '.replicator'], check=True)
        r = replicate_disk(src, dst, 'full', create_target=True, workers=6)
        assert digest_file(src) == digest_file(dst), run
        assert r.stats['bytes_deduplicated'] == 22 * MIB, run
        assert r.stats['blocks_written_direct'] == 3, run      # a, b and the short tail
        assert r.stats['bytes_data'] == 2 * MIB + 1024, run
        assert r.stats['receiver']['bytes_copied'] == 22 * MIB, run


def test_receiver_refuses_a_direct_block_that_does_not_match_its_digest(tmp_path):
    dst = str(tmp_path / 'd.img')
    rx = Receiver()
    rx.hello({'target': dst, 'capacity': 4 * MIB, 'block_size': MIB, 'create': True})
    assert not rx.journal
    block = os.urandom(MIB)
    with pytest.raises(ReceiverError, match='digest mismatch'):
        rx.write_unjournaled(MIB, MIB, block_digest(block), b'\0' + block[1:])
    with pytest.raises(ReceiverError, match='beyond|capacity|block'):
        rx.write_unjournaled(5 * MIB, MIB, block_digest(block), block)
    rx.abort()
    rx.close()
    with open(dst, 'rb') as f:
        assert not any(f.read())       # nothing of either block was written


@pytest.fixture
def small_fs(tmp_path):
    """A 6 MiB tmpfs (needs root, as in CI); unmounted at teardown."""
    if os.geteuid() != 0:
        pytest.skip('mounting a tmpfs needs root')
    point = str(tmp_path / 'small')
    os.makedirs(point)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%d,mode=0755' % (6 * MIB), 'rvmover-small', point],
                   check=True, timeout=30)
    yield point
    if subprocess.run(['umount', point], timeout=30, check=False).returncode != 0:
        subprocess.run(['umount', '-l', point], timeout=30, check=False)


def test_write_failing_in_a_worker_aborts_with_nothing_committed(tmp_path, small_fs):
    size = 16 * MIB
    src = make_image(str(tmp_path / 'src.img'), size, seed=4, data_fraction=1.0)
    dst = os.path.join(small_fs, 'dst.img')
    with pytest.raises((EndpointError, MoverError, ReceiverError), match='(?i)no space left'):
        replicate_disk(src, dst, 'full', create_target=True, workers=3, change_id='c1')
    manifest = ReplicaStore(dst + '.replicator').load()
    assert not manifest or (manifest.get('change_id') is None and not manifest.get('restore_points'))
    # with room again, the rerun completes the first cycle byte for byte
    subprocess.run(['mount', '-o', 'remount,size=%d' % (40 * MIB), small_fs], check=True, timeout=30)
    r = replicate_disk(src, dst, 'full', create_target=True, workers=3, change_id='c1')
    assert digest_file(src) == digest_file(dst)
    assert r.stats['blocks_written_direct'] > 0
    assert ReplicaStore(dst + '.replicator').load()['change_id'] == 'c1'


def test_a_block_that_does_not_fit_is_refused_before_any_byte_of_it_is_written(small_fs):
    """Whole-block writes allocate their blocks first: on a full datastore the block is refused with a message
    that names the lack of space, and none of its bytes land (a plain write would leave the part that fit)."""
    filler = os.path.join(small_fs, 'filler')
    with open(filler, 'wb') as f:
        f.write(os.urandom(5 * MIB + 512 * 1024))     # 512 KiB left on the 6 MiB tmpfs
    path = os.path.join(small_fs, 'replica.img')
    with open(path, 'wb') as f:
        f.truncate(4 * MIB)
    ep = FileEndpoint(path, writable=True)
    try:
        with pytest.raises(EndpointError, match='(?i)no space left'):
            ep.pwrite(MIB, os.urandom(MIB))
    finally:
        ep.close()
    assert os.stat(path).st_blocks == 0
    with open(path, 'rb') as f:
        assert f.read() == bytes(4 * MIB)
