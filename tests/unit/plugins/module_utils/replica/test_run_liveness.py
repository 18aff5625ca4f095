# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run identity and liveness: run ids, process checks on /proc (real processes of this machine), lock takeover
from a provably dead run, the keeper's renewal rule, the copy's lock verdict and the first-cycle twin rule."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import os
import re
import subprocess
import sys

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.replica import keeper, run_owner, run_watch
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import LockHeld, acquire_lock
from ansible_collections.replicator.vsphere.plugins.module_utils.replica import vm as replica_vm
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import Ambiguous
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.snapshot_cleanup import select_orphans


def test_run_ids_never_repeat_within_a_second():
    ids = set(run_owner.new_run_id(1796460000) for _i in range(2000))
    assert len(ids) > 1990         # 24 random bits: a collision in 2000 draws is most unlikely
    assert all(re.match(r'^20261205T084000Z-[0-9a-f]{6}$', i) for i in ids), sorted(ids)[:3]


def test_a_live_process_is_alive_and_a_finished_one_is_provably_dead():
    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])
    try:
        owner = run_owner.identity('r1', pid=child.pid)
        assert owner['host'] and owner['boot_id'] and owner['start']
        assert run_owner.alive(owner) is True
        assert run_owner.alive(dict(owner, start=owner['start'] + 1)) is False     # the pid was reused
    finally:
        child.kill()
        child.wait()
    assert run_owner.alive(owner) is False
    assert run_owner.alive(dict(owner, boot_id='another-host')) is None            # not provable from here
    assert run_owner.alive(None) is None
    assert run_owner.describe(owner) == '%s pid %d run r1' % (owner['host'], child.pid)


def test_the_playbook_process_is_found_above_a_module(tmp_path):
    """A Python script named ansible-playbook (the command line of a real one: python .../ansible-playbook ...)
    stands in for the playbook; a module below it finds it."""
    path = [p for p in sys.path if p]
    module = tmp_path / 'module.py'
    module.write_text('import sys\nsys.path[:0] = %r\n' % path
                      + 'from ansible_collections.replicator.vsphere.plugins.module_utils.replica.run_owner import '
                        'playbook_process\nprint(playbook_process())\n')
    playbook = tmp_path / 'ansible-playbook'
    playbook.write_text('import os, subprocess, sys\n'
                        'below = subprocess.run([sys.executable, %r], capture_output=True, text=True).stdout\n'
                        'print(os.getpid(), below.strip())\n' % str(module))
    out = subprocess.run([sys.executable, str(playbook)], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == out[1], out
    assert run_owner.playbook_process() == os.getppid()       # none above pytest: the parent stands in


def test_a_lock_of_a_dead_run_is_taken_over_at_once_and_a_live_one_refuses_with_dates():
    dead_owner = {'host': 'h', 'pid': 1, 'boot_id': 'b'}
    lock = acquire_lock(None, 'ctl01 pid 4242', 'run-a', now=1000, ttl=300, process=dead_owner)
    assert lock['process'] == dead_owner
    with pytest.raises(LockHeld) as info:
        acquire_lock(lock, 'ctl02', 'run-b', now=1100, ttl=300, dead=lambda current: False)
    message = str(info.value)
    assert 'run run-a of ctl01 pid 4242 since 1970-01-01T00:16:40Z' in message
    assert 'lease runs until 1970-01-01T00:21:40Z (200s from now)' in message
    taken = acquire_lock(lock, 'ctl02', 'run-b', now=1100, ttl=300, dead=lambda current: current['run'] == 'run-a')
    assert taken['run'] == 'run-b' and 'process' not in taken
    renewed = acquire_lock(lock, None, 'run-a', now=1200, ttl=300)
    assert renewed['process'] == dead_owner and renewed['expires'] == 1500      # a renewal keeps the process


def test_release_of_a_dead_runs_lock_and_refusal_of_a_live_one(monkeypatch):
    lock = {'owner': 'o', 'run': 'a', 'acquired': 0, 'expires': 10 ** 10, 'process': {'pid': 1}}
    monkeypatch.setattr(run_owner, 'alive', lambda owner: False)
    assert replica_vm.lock_change({'lock': lock}, 'release', 'o', 'b', 300, 100) == {'lock': None}
    replica_vm.refuse_foreign_lock({'lock': lock}, 'b', 100, 'Failover')          # a dead holder refuses nothing
    monkeypatch.setattr(run_owner, 'alive', lambda owner: None)
    with pytest.raises(LockHeld):
        replica_vm.lock_change({'lock': lock}, 'release', 'o', 'b', 300, 100)


class Node(object):
    def __init__(self, name, depth=0, moid=None, parent_moid=None):
        self.name, self.depth, self.create_time = name, depth, datetime.datetime(2026, 12, 5, 8, 0)
        self.moid, self.parent_moid = moid or name, parent_moid


def test_every_other_runs_snapshot_is_an_orphan_while_this_run_holds_the_lock():
    nodes = [Node('before upgrade'), Node('replicator-r1', 1), Node('replicator-stun-x', 2), Node('replicator-r2', 3)]
    young = datetime.datetime(2026, 12, 5, 8, 1)
    assert select_orphans(nodes, 'replicator-', 3600, young) == []                          # by age: none yet
    assert [n.name for n in select_orphans(nodes, 'replicator-', 3600, young, holder_run='r2')] == [
        'replicator-stun-x', 'replicator-r1']


def test_a_leftover_under_the_cycle_snapshot_is_named():
    from ansible_collections.replicator.vsphere.plugins.module_utils.replica.disk_replication import (
        ReplicationError, leftover_snapshots, refuse_leftovers,
    )
    nodes = [Node('before upgrade', 0, 's1'), Node('replicator-old', 1, 's2', 's1'), Node('replicator-new', 2, 's3', 's2')]
    assert leftover_snapshots(nodes, nodes[2]) == ['replicator-old']
    with pytest.raises(ReplicationError, match="still carries snapshot 'replicator-old' of an earlier run") as info:
        refuse_leftovers(nodes, nodes[2], 'web01')
    assert info.value.fault == 'LeftoverSnapshot' and 'snapshot_consolidate' in info.value.hint
    refuse_leftovers(nodes[:1] + [Node('replicator-new', 1, 's3', 's1')], nodes[2], 'web01')   # user snapshots only


def test_the_keeper_renews_only_its_own_due_leases():
    assert keeper.due({'run': 'a', 'expires': 1100}, 'a', 300, 1000) is True      # 100 s of 300 left
    assert keeper.due({'run': 'a', 'expires': 1250}, 'a', 300, 1000) is False
    assert keeper.due({'run': 'b', 'expires': 1001}, 'a', 300, 1000) is False
    assert keeper.due(None, 'a', 300, 1000) is False
    change = keeper.renewal('a', 300, 1000)
    assert change({'lock': {'run': 'b', 'expires': 5}}) == {}                     # never taken back
    assert change({}) == {}
    renewed = change({'lock': {'owner': 'o', 'run': 'a', 'acquired': 900, 'expires': 1010, 'process': {'pid': 7}}})
    assert renewed['lock'] == {'owner': 'o', 'run': 'a', 'acquired': 900, 'expires': 1300, 'process': {'pid': 7}}


def test_a_copy_knows_when_its_run_lost_the_lock():
    assert run_watch.lock_verdict({'run': 'a', 'expires': 2000}, 'a', 1000) is None
    assert 'released' in run_watch.lock_verdict(None, 'a', 1000)
    assert 'run b of x took over' in run_watch.lock_verdict({'run': 'b', 'owner': 'x', 'expires': 2000}, 'a', 1000)
    assert 'ran out at 1970-01-01T00:15:00Z' in run_watch.lock_verdict({'run': 'a', 'expires': 900}, 'a', 1000)
    watch = run_watch.RunWatch(process={'pid': 1, 'boot_id': 'x'})
    watch.check_process()                       # another boot: not provable, no stop
    assert not watch.cancel.is_set()


class FakeVm(object):
    def __init__(self, moid):
        self._moId = moid


class FakeClient(object):
    endpoint = 'dr-esx01'


def _props(name, created, points=()):
    extra = [('replicator.source', '{"instance_uuid":"u"}'), ('replicator.points', __import__('json').dumps(list(points)))]
    return {'name': name, 'config.createDate': created, 'config.extraConfig': extra}


def test_twins_of_a_first_cycle_resolve_to_the_oldest_and_real_duplicates_are_named():
    now = datetime.datetime(2026, 12, 5, 8, 0, tzinfo=datetime.timezone.utc)
    old = (FakeVm('vm-12'), _props('web01_replica', now))
    twin = (FakeVm('vm-13'), _props('web01_replica', now + datetime.timedelta(seconds=1)))
    assert replica_vm._the_replica(FakeClient(), [twin, old], 'u', now.timestamp() + 5) is old
    grown = (FakeVm('vm-14'), _props('web01_replica', now, points=[{'id': 'r1'}]))
    with pytest.raises(Ambiguous, match=r"'web01_replica' \(vm-12\), 'web01_replica' \(vm-14\)"):
        replica_vm._the_replica(FakeClient(), [old, grown], 'u', now.timestamp() + 5)
    with pytest.raises(Ambiguous):                # an old twin is no first-cycle race any more
        replica_vm._the_replica(FakeClient(), [old, twin], 'u', now.timestamp() + 7200)


def test_a_server_without_find_all_by_uuid_finds_the_replica_by_a_property_scan(monkeypatch):
    """The lab answers FindAllByUuid, so a stand-in client raises MethodNotFound as servers without it do."""
    from pyVmomi import vim, vmodl

    class Index(object):
        def FindAllByUuid(self, **_kwargs):
            raise vmodl.fault.MethodNotFound(receiver=vim.SearchIndex('SearchIndex'), method='FindAllByUuid')

    class Client(FakeClient):
        content = type('Content', (), {'searchIndex': Index()})()

    replica = FakeVm('vm-12')
    scanned = [(FakeVm('vm-9'), {'name': 'other', 'config.extraConfig': []}),
               (replica, _props('web01_replica', None))]
    monkeypatch.setattr(replica_vm, 'find_all', lambda client, kind, paths, root=None: scanned)
    monkeypatch.setattr(replica_vm, 'fetch', lambda client, vm, paths: dict(scanned[1][1], found=vm._moId))
    vm, props, seen = replica_vm.find_replica(Client(), 'u')
    assert vm is replica and props['found'] == 'vm-12' and seen == scanned
