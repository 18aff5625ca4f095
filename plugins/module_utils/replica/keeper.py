# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep the replica locks of a run alive exactly as long as the run lives.

A run's locks are leases. One keeper per run, on the controller next to its ansible-playbook process, renews the
leases that the run holds whenever a third of the lease time has gone, and stops as soon as that process has ended
(the playbook finished, was killed or was cancelled). The leases of a run that died then run out within one lease
time, its copies stop (run_watch), and the next run takes over with no manual step. One keeper serves every VM of
the run however many forks the playbook has, so no VM's lease depends on when its own tasks get a fork.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.replicator.vsphere.plugins.module_utils.replica import run_owner
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import decode
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.vm import lock_change, write_state

try:
    from pyVmomi import vim
except ImportError:  # pragma: no cover - the client reports the missing library
    vim = None

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import VsphereError
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.properties import find_all


class KeeperError(VsphereError):
    """The keeper cannot watch its run."""


def due(lock, run_id, ttl, now):
    """Whether the run's lease `lock` should be renewed now: held by the run, and a third of the lease gone."""
    return bool(lock) and lock.get('run') == run_id and lock.get('expires', 0) - now < ttl * 2.0 / 3


def renewal(run_id, ttl, now):
    """The state change that renews the lease of `run_id` if (and only if) it still holds it."""
    def change(current):
        lock = current.get('lock')
        if not lock or lock.get('run') != run_id:
            return {}          # released or taken over meanwhile: never take a lock back
        return lock_change(current, 'acquire', lock.get('owner'), run_id, ttl, now)
    return change


def renew_due(client, run_id, ttl, timeout, clock=time.time):
    """One pass: every replica whose lease this run holds and is due is renewed. Returns the replica names."""
    renewed = []
    for vm, props in find_all(client, vim.VirtualMachine, ['name', 'config.extraConfig']):
        if not due(decode(props.get('config.extraConfig')).get('lock'), run_id, ttl, clock()):
            continue
        try:
            changed, _state = write_state(client, vm, renewal(run_id, ttl, clock()),
                                          "Renewing the lock of run %s on replica '%s'" % (run_id, props['name']),
                                          timeout)
        except VsphereError:
            continue           # gone or busy: the next pass tries again, well within the lease
        if changed:
            renewed.append(props['name'])
    return renewed


def keep(client, connect, run_id, process, ttl, interval, max_seconds, timeout, sleep=time.sleep, clock=time.time):
    """Renew the run's leases until its process ends or max_seconds pass. client: a logged-in client (the caller
    closes it); connect() gives a new one when its session expired.

    Returns {'renewals', 'replicas', 'ended'}."""
    if run_owner.alive(process) is None:
        raise KeeperError('The run process %s cannot be watched from this host: run the keeper on the controller '
                          'that runs the playbook (delegate_to: localhost).' % run_owner.describe(process),
                          fault='InvalidArgument')
    first = client
    renewals, replicas = 0, set()
    deadline = clock() + max_seconds
    next_pass = clock()
    ended = 'max_seconds passed'
    try:
        while clock() < deadline:
            if not run_owner.alive(process):
                ended = 'the run ended'
                break
            if clock() >= next_pass:
                try:
                    names = renew_due(client, run_id, ttl, timeout, clock)
                except VsphereError as exc:
                    if exc.fault != 'NotAuthenticated':
                        raise
                    if client is not first:
                        client.close()
                    client = connect()         # the session expired while idle: log in once more
                    names = renew_due(client, run_id, ttl, timeout, clock)
                renewals += len(names)
                replicas.update(names)
                next_pass = clock() + interval
            sleep(1.0)
    finally:
        if client is not first:
            client.close()
    return {'renewals': renewals, 'replicas': sorted(replicas), 'ended': ended}
