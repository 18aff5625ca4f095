# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest
from pyVmomi import vim

from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import (
    LockHeld, acquire_lock, changed_pairs, decode, encode, last_success, lock_status, merged, parse_duration,
    release_allowed, rpo_status, state_facts, to_epoch,
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


@pytest.mark.parametrize('text, seconds', [(3600, 3600), ('3600', 3600), ('90s', 90), ('30m', 1800), ('4h', 14400),
                                           ('1d', 86400), (' 1.5 H ', 5400), ('15min', 900)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize('text', ['', '4x', 'h', '-1h', '0', True, None])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_to_epoch_and_last_success():
    assert to_epoch('1970-01-01T01:00:00Z') == 3600
    assert to_epoch('1970-01-01T01:00:00') == 3600
    assert to_epoch('1970-01-01T02:00:00+01:00') == 3600
    assert to_epoch(12) == 12 and to_epoch(None) is None
    with pytest.raises(ValueError, match='Not a timestamp'):
        to_epoch('yesterday')
    state = {'points': [{'id': 'a', 'created': '1970-01-01T00:10:00Z'}, {'id': 'b', 'created': 1200}],
             'last_cycle': {'status': 'failed', 'finished': 5000}}
    assert last_success(state) == 1200
    state['last_cycle']['status'] = 'success'
    assert last_success(state) == 5000
    assert last_success({}) is None


def test_lock_status_and_state_facts():
    assert lock_status(None, 100) is None
    assert lock_status({'run': 'r', 'expires': 150}, 100) == {'run': 'r', 'expires': 150, 'held': True,
                                                              'expired': False}
    assert lock_status({'run': 'r', 'expires': 100}, 100)['expired'] is True
    state = decode(encode({'source': {'instance_uuid': 'u'}, 'state': 'ready',
                           'disks': {2001: {'source_key': 2001, 'capacity': 10, 'change_id': 'c/2', 'uuid': 'x',
                                            'file': 'f'},
                                     2000: {'source_key': 2000, 'capacity': 20, 'change_id': None}},
                           'points': [{'id': 'p', 'created': 1000}]}))
    facts = state_facts(state, 1000 + 7200, rpo_seconds=3600)
    assert [d['source_key'] for d in facts['disks']] == [2000, 2001]
    assert facts['disks'][1] == {'source_key': 2001, 'key': 2001, 'uuid': 'x', 'capacity_bytes': 10, 'file': 'f',
                                 'change_id': 'c/2'}
    assert facts['rpo'] == {'rpo_seconds': 3600, 'age_seconds': 7200, 'met': False}
    assert facts['last_success'] == 1000 and facts['lock'] is None
    assert 'rpo' not in state_facts(state, 0)


def test_changed_pairs_and_merged_follow_vsphere_semantics():
    options = _options([('replicator.format', '1'), ('replicator.state', 'ready'), ('replicator.lock', '{}'),
                        ('other', 'x')])
    assert changed_pairs(options, encode({'state': 'ready'})) == []
    assert changed_pairs(options, encode({'lock': None})) == [('replicator.lock', '')]
    assert changed_pairs(options, encode({'disks': {2000: None}})) == []  # absent key stays absent
    assert changed_pairs([], encode({'state': 'ready'})) == [('replicator.format', '1'), ('replicator.state', 'ready')]
    after = merged(options, [('replicator.lock', ''), ('replicator.points', '[]')])
    assert after == [('other', 'x'), ('replicator.format', '1'), ('replicator.points', '[]'),
                     ('replicator.state', 'ready')]


def test_seal_cycle_records_points_once_and_keeps_retention():
    from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import seal_cycle
    state = {'points': [{'id': 'r1', 'created': '2026-11-25T06:00:00Z', 'consistency': 'crash'}]}
    cycle = {'id': 'r2', 'status': 'success', 'started': 1000.0, 'finished': 1764050400.0,
             'consistency': 'file-system', 'bytes_sent': 10}
    changes = seal_cycle(state, cycle, retention=5)
    assert [p['id'] for p in changes['points']] == ['r1', 'r2']
    assert changes['points'][1] == {'id': 'r2', 'created': '2025-11-25T06:00:00Z', 'consistency': 'file-system'}
    assert changes['last_cycle'] == {'id': 'r2', 'status': 'success', 'started': 1000.0, 'finished': 1764050400.0,
                                     'consistency': 'file-system', 'bytes_sent': 10}
    sealed = dict(state, **changes)
    assert seal_cycle(sealed, cycle, retention=5) == {}  # idempotent
    assert [p['id'] for p in seal_cycle(sealed, dict(cycle, id='r3'), retention=2)['points']] == ['r2', 'r3']


def test_seal_cycle_failed_records_no_point_and_bad_input():
    from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import seal_cycle
    changes = seal_cycle({}, {'id': 'r9', 'status': 'failed', 'finished': '2026-11-25T08:00:00Z', 'error': 'boom'})
    assert 'points' not in changes and changes['last_cycle']['status'] == 'failed'
    assert changes['last_cycle']['error'] == 'boom'
    assert seal_cycle({}, None) == {}
    with pytest.raises(ValueError, match='cycle needs an id'):
        seal_cycle({}, {'status': 'success'})
    with pytest.raises(ValueError, match='status must be one of'):
        seal_cycle({}, {'id': 'x', 'status': 'maybe'})
