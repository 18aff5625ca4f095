# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest
from pyVmomi import vim

from ansible_collections.replicator.vsphere.plugins.module_utils.replica_state import (
    LockHeld, acquire_lock, decode, encode, release_allowed, rpo_status,
)


def _options(pairs):
    return [vim.option.OptionValue(key=k, value=v) for k, v in pairs]


def test_round_trip_through_real_option_values():
    changes = {
        'source': {'instance_uuid': '5003-aa', 'name': 'app01', 'moid': 'vm-42', 'vcenter': 'vc1'},
        'state': 'ready',
        'disks': {2000: {'source_key': 2000, 'capacity': 1 << 26, 'change_id': '52 aa/4'},
                  2001: {'source_key': 2001, 'capacity': 1 << 27, 'change_id': None}},
        'points': [{'id': 'p1', 'created': '2026-11-25T07:00:00Z', 'consistency': 'crash'}],
        'last_cycle': {'status': 'success', 'bytes_sent': 123},
    }
    pairs = encode(changes)
    foreign = ('guestinfo.other', 'x')
    state = decode(_options(pairs + [foreign]))
    assert state['source'] == changes['source']
    assert state['state'] == 'ready'
    assert state['disks'] == changes['disks']
    assert state['points'] == changes['points']
    assert state['last_cycle'] == changes['last_cycle']
    assert state['lock'] is None
    assert state['format'] == '1'


def test_none_removes_keys_and_empty_values_are_absent():
    pairs = dict(encode({'lock': None, 'disks': {2001: None}}))
    assert pairs['replicator.lock'] == ''
    assert pairs['replicator.disk.2001'] == ''
    state = decode(list(pairs.items()))
    assert state['lock'] is None
    assert 2001 not in state['disks']


def test_vm_without_keys_decodes_empty():
    assert decode(_options([('guestinfo.x', '1')])) == {}
    assert decode(None) == {}


def test_bad_state_and_bad_json_are_clear():
    with pytest.raises(ValueError, match='Unknown replica state'):
        encode({'state': 'flying'})
    with pytest.raises(ValueError, match='replicator.points holds invalid JSON'):
        decode([('replicator.points', '[oops')])


def test_lock_lease_rules():
    lock = acquire_lock(None, 'awx-job-1', 'run-a', now=1000, ttl=600)
    assert lock == {'owner': 'awx-job-1', 'run': 'run-a', 'acquired': 1000, 'expires': 1600}
    with pytest.raises(LockHeld, match='locked by run run-a'):
        acquire_lock(lock, 'awx-job-2', 'run-b', now=1200, ttl=600)
    renewed = acquire_lock(lock, 'awx-job-1', 'run-a', now=1500, ttl=600)
    assert renewed['acquired'] == 1000 and renewed['expires'] == 2100
    taken = acquire_lock(lock, 'awx-job-2', 'run-b', now=1601, ttl=600)
    assert taken['run'] == 'run-b' and taken['acquired'] == 1601
    assert release_allowed(lock, 'run-a') and not release_allowed(lock, 'run-b') and release_allowed(None, 'x')
    with pytest.raises(ValueError):
        acquire_lock(None, 'o', 'r', now=0, ttl=0)


def test_rpo():
    assert rpo_status(None, 3600, 5000) == {'rpo_seconds': 3600, 'age_seconds': None, 'met': False}
    assert rpo_status(2000, 3600, 5000)['met'] is True
    assert rpo_status(1000, 3600, 5000) == {'rpo_seconds': 3600, 'age_seconds': 4000, 'met': False}
