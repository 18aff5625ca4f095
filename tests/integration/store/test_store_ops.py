# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""store_ops: the JSON operations failover and replica_info run on the replica's proxy, on real cycles."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.mover.sender import replicate_disk
from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import ReplicaStoreError
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.ssh_transport import TransportError, run_store_op
from ansible_collections.replicator.vsphere.plugins.module_utils.receiver.store_ops import run

MIB = 1024 * 1024


def _sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def _write(path, offset, data):
    with open(path, 'r+b') as f:
        f.seek(offset)
        f.write(data)


@pytest.fixture
def replica(tmp_path):
    src, dst = str(tmp_path / 'src.img'), str(tmp_path / 'dst.img')
    with open(src, 'wb') as f:
        f.write(os.urandom(4 * MIB))
    images = []
    for cycle in range(3):
        if cycle:
            _write(src, cycle * MIB, os.urandom(4096))
        replicate_disk(src, dst, 'full' if not cycle else 'digests', create_target=not cycle,
                       change_id='52 ab/%d' % (cycle + 1))
        images.append(_sha(src))
    return dst, images


def test_inspect_of_an_empty_and_a_replicated_disk(tmp_path, replica):
    empty = run({'op': 'inspect', 'target': str(tmp_path / 'none.img')})
    assert empty == {'changed': False, 'actions': [], 'state': {
        'exists': False, 'change_id': None, 'capacity': None, 'block_size': None, 'restore_points': [],
        'rolled_back': None, 'has_digest_map': False, 'generation': None}}
    dst, _images = replica
    state = run({'op': 'inspect', 'target': dst})['state']
    assert state['exists'] and state['change_id'] == '52 ab/3' and state['capacity'] == 4 * MIB
    assert len(state['restore_points']) == 3 and state['has_digest_map'] and state['rolled_back'] is None


def test_rollback_is_idempotent_and_roll_forward_returns(replica):
    dst, images = replica
    first = run({'op': 'inspect', 'target': dst})['state']['restore_points'][0]['id']
    result = run({'op': 'rollback', 'target': dst, 'point': first})
    assert result['changed'] and result['state']['rolled_back'] == first and _sha(dst) == images[0]
    again = run({'op': 'rollback', 'target': dst, 'point': first})
    assert not again['changed'] and _sha(dst) == images[0]
    back = run({'op': 'roll_forward', 'target': dst})
    assert back['changed'] and back['state']['rolled_back'] is None and _sha(dst) == images[2]
    assert not run({'op': 'roll_forward', 'target': dst})['changed']


def test_commit_rollback_and_prune(replica):
    dst, images = replica
    points = [p['id'] for p in run({'op': 'inspect', 'target': dst})['state']['restore_points']]
    run({'op': 'rollback', 'target': dst, 'point': points[1]})
    committed = run({'op': 'commit_rollback', 'target': dst})
    assert committed['changed'] and [p['id'] for p in committed['state']['restore_points']] == points[:2]
    assert committed['state']['change_id'] == '52 ab/2' and not committed['state']['has_digest_map']
    assert _sha(dst) == images[1]
    assert not run({'op': 'commit_rollback', 'target': dst})['changed']
    pruned = run({'op': 'prune', 'target': dst, 'keep': 1})
    assert pruned['changed'] and [p['id'] for p in pruned['state']['restore_points']] == [points[1]]


def test_bad_requests_are_clear(replica):
    dst, _images = replica
    with pytest.raises(ReplicaStoreError, match='unknown store operation'):
        run({'op': 'explode', 'target': dst})
    with pytest.raises(ReplicaStoreError):
        run({'op': 'rollback', 'target': dst, 'point': 'no-such-point'})


def test_operations_run_on_the_replica_host_over_ssh(sshd, replica):
    dst, images = replica
    receiver = sshd.spec()
    state = run_store_op(receiver, {'op': 'inspect', 'target': dst})['state']
    assert state == run({'op': 'inspect', 'target': dst})['state']
    first = state['restore_points'][0]['id']
    result = run_store_op(receiver, {'op': 'rollback', 'target': dst, 'point': first})
    assert result['changed'] and _sha(dst) == images[0]
    assert run_store_op(receiver, {'op': 'roll_forward', 'target': dst})['changed'] and _sha(dst) == images[2]
    with pytest.raises(TransportError, match='rollback operation on ssh .* failed: .*no-such-point'):
        run_store_op(receiver, {'op': 'rollback', 'target': dst, 'point': 'no-such-point'})
