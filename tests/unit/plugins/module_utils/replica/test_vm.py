# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The optimistic-concurrency loop of replica_vm.write_state, with vSphere's reads and writes replaced by a
scripted replica (the lab does not enforce config.changeVersion, so ConcurrentAccess is driven from here)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import types

import pytest
from pyVmomi import vim

from ansible_collections.replicator.vsphere.plugins.module_utils.replica import vm as replica_vm
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import decode
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import VsphereError

NOW = 1000000
VM = types.SimpleNamespace(ReconfigVM_Task='the method the task is started with')


class ScriptedReplica(object):
    """Holds extraConfig and a changeVersion; a write with a stale changeVersion fails like vCenter's."""

    def __init__(self, monkeypatch, options, interfere=None):
        self.options = dict(options)
        self.version = 1
        self.writes = []
        self.interfere = list(interfere or [])  # per write: a dict another writer applies just before ours lands
        monkeypatch.setattr(replica_vm, 'fetch', self.fetch)
        monkeypatch.setattr(replica_vm, 'run_task', self.run_task)

    def fetch(self, client, vm, paths):
        return {'config.changeVersion': str(self.version),
                'config.extraConfig': [vim.option.OptionValue(key=k, value=v) for k, v in sorted(self.options.items())]}

    def run_task(self, client, call, action, timeout, spec):
        assert call == VM.ReconfigVM_Task
        self.writes.append(spec.changeVersion)
        if self.interfere:
            other = self.interfere.pop(0)
            if other:
                self.options.update(other)
                self.version += 1
        if spec.changeVersion != str(self.version):
            raise VsphereError('%s failed: config changed (ConcurrentAccess)' % action, fault='ConcurrentAccess')
        for option in spec.extraConfig:
            if option.value == '':
                self.options.pop(option.key, None)
            else:
                self.options[option.key] = option.value
        self.version += 1


def _acquire(run):
    return lambda state: replica_vm.lock_change(state, 'acquire', 'ctl', run, 600, NOW)


BASE = {'replicator.format': '1', 'replicator.state': 'ready'}


def test_stale_write_is_retried_on_fresh_state(monkeypatch):
    other_points = {'replicator.points': '[{"id":"p9"}]'}
    replica = ScriptedReplica(monkeypatch, BASE, interfere=[other_points])
    changed, state = replica_vm.write_state(None, VM, _acquire('run-a'), 'lock', 10)
    assert changed is True
    assert replica.writes == ['1', '2']  # refused once, then written with the version read again
    assert json.loads(replica.options['replicator.lock'])['run'] == 'run-a'
    assert replica.options['replicator.points'] == '[{"id":"p9"}]'  # the other writer's change survived
    assert state['lock']['run'] == 'run-a' and state['points'] == [{'id': 'p9'}]


def test_lock_taken_by_the_concurrent_writer_fails_with_lock_held(monkeypatch):
    theirs = {'replicator.lock': json.dumps({'owner': 'other', 'run': 'run-b', 'acquired': NOW, 'expires': NOW + 60})}
    replica = ScriptedReplica(monkeypatch, BASE, interfere=[theirs])
    with pytest.raises(replica_vm.ReplicaLocked, match='LockHeld: Replica is locked by run run-b of other') as info:
        replica_vm.write_state(None, VM, _acquire('run-a'), 'lock', 10)
    assert info.value.fault == 'LockHeld'
    assert replica.writes == ['1']
    assert json.loads(replica.options['replicator.lock'])['run'] == 'run-b'


def test_nothing_to_write_makes_no_call_and_retries_are_bounded(monkeypatch):
    replica = ScriptedReplica(monkeypatch, BASE)
    assert replica_vm.write_state(None, VM, lambda state: {'state': 'ready'}, 'noop', 10) == (False, decode(
        list(BASE.items())))
    assert replica.writes == []
    busy = ScriptedReplica(monkeypatch, BASE, interfere=[{'x': str(i)} for i in range(10)])
    with pytest.raises(VsphereError) as info:
        replica_vm.write_state(None, VM, _acquire('run-a'), 'lock', 10, tries=3)
    assert info.value.fault == 'ConcurrentAccess' and len(busy.writes) == 3


def test_check_mode_reports_without_writing(monkeypatch):
    replica = ScriptedReplica(monkeypatch, BASE)
    changed, state = replica_vm.write_state(None, VM, _acquire('run-a'), 'lock', 10, check_mode=True)
    assert changed is True and state['lock']['run'] == 'run-a'
    assert replica.writes == [] and 'replicator.lock' not in replica.options


def test_release_rules():
    mine = {'lock': {'run': 'a', 'owner': 'o', 'acquired': NOW - 5, 'expires': NOW + 60}}
    assert replica_vm.lock_change(mine, 'release', 'o', 'a', 600, NOW) == {'lock': None}
    with pytest.raises(Exception, match='locked by run a'):
        replica_vm.lock_change(mine, 'release', 'o', 'b', 600, NOW)
    expired = {'lock': dict(mine['lock'], expires=NOW - 1)}
    assert replica_vm.lock_change(expired, 'release', 'o', 'b', 600, NOW) == {'lock': None}
    assert replica_vm.lock_change({}, 'release', 'o', 'b', 600, NOW) == {}
    assert replica_vm.lock_change(mine, 'none', 'o', 'b', 600, NOW) == {}
