# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fault injection against the lab: cycles run by cycle_driver.py (a child process, so it can be killed), relays in
front of the lab sites, and the checks of the replica, its restore points, the source snapshots and the lock."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import random
import select
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from faults_cycle import control, read_log, sha256_file  # noqa: E402  pylint: disable=wrong-import-position
from integration_servers import free_port, stop_pid  # noqa: E402  pylint: disable=wrong-import-position

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
DRIVER = os.path.join(HERE, 'cycle_driver.py')
RELAY = os.path.join(HERE, 'faults_relay.py')
MIB = 1 << 20


def driver_env():
    """The environment of a child that imports the collection the way this test process does."""
    from ansible_collections.replicator.vsphere.plugins.module_utils.store import replica_store as utils
    root = utils.__file__.split(os.sep + 'ansible_collections' + os.sep, 1)[0]
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([root, env.get('PYTHONPATH', '')])
    return env


class Relay(object):
    """faults_relay.py in front of one lab site; kill() is the outage, start() brings it back on the same port."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.port = free_port()
        self.proc = None
        self.start()

    def start(self):
        if self.proc is not None and self.proc.poll() is None:
            return
        for _i in range(50):
            self.proc = subprocess.Popen([sys.executable, RELAY, str(self.port), str(self.upstream), '900'],
                                         stdout=subprocess.PIPE)
            if self.proc.stdout.readline().strip() == b'ready':
                return
            self.proc.wait(10)   # the port was still held by the killed relay's sockets: try again
            time.sleep(0.1)
        raise RuntimeError('relay did not start on port %d' % self.port)

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is not None:
            stop_pid(self.proc)
            self.proc.stdout.close()


class ForkServer(object):
    """cycle_driver.py --serve: runs each cycle in a child forked from a process that has imported the modules
    once. run() returns the child's exit status (-9 when it was SIGKILLed); a child still running after `limit`
    seconds is SIGKILLed by its PID."""

    def __init__(self):
        self.proc = None
        self._pending = b''

    def _start(self):
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([sys.executable, DRIVER, '--serve'], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, env=driver_env(), text=True, bufsize=1)
            self._pending = b''

    def _answer(self, deadline):
        """The server's next JSON line, or None at the deadline. Lines are split from raw reads of the pipe: a
        buffered readline() could take two lines at once (the child's pid and its status, when it dies at once)
        and leave the second where select() cannot see it."""
        fd = self.proc.stdout.fileno()
        while b'\n' not in self._pending:
            ready, _w, _x = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError('the cycle fork server exited (status %s)' % self.proc.poll())
            self._pending += chunk
        line, self._pending = self._pending.split(b'\n', 1)
        return json.loads(line.decode())

    def run(self, path, limit=180):
        self._start()
        self.proc.stdin.write(path + '\n')
        self.proc.stdin.flush()
        deadline = time.monotonic() + 60
        started = self._answer(deadline)
        assert started is not None, 'the cycle fork server did not start %s' % path
        done = self._answer(time.monotonic() + limit)
        if done is None:
            os.kill(started['pid'], signal.SIGKILL)
            done = self._answer(time.monotonic() + 60)
            raise AssertionError('cycle %s still ran after %d s (killed: %s)' % (path, limit, done))
        assert done.get('pid') == started['pid'] and 'rc' in done, (started, done)
        return done['rc']

    def stop(self):
        if self.proc is not None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                stop_pid(self.proc)
            self.proc.stdout.close()
            self.proc = None


class FaultLab(object):
    """Cycles of a VM against the lab with faults; every check the fault tests share."""

    def __init__(self, lab, tmp):
        self.lab = lab
        self.tmp = tmp
        self.jobs = 0
        self.server = ForkServer()
        self.target_si = None

    def site(self, name):
        return self.lab.state['sites'][name]

    def connection(self, name, relay=None):
        s = self.site(name)
        conn = {'hostname': s['host'], 'port': relay.port if relay else s['port'], 'username': s['username'],
                'password': s['password'], 'validate_certs': True, 'ca_path': s['cafile']}
        if name == 'target':
            conn.pop('validate_certs')
        return conn

    def new_vm(self, name, disks_mib=(6, 3)):
        return self.lab.new_vm(name, disks_mib=disks_mib, cbt=True, seed=30, power_on=True)

    def job(self, vm, run_id, fault=None, receiver=None, relays=None, lock_ttl=300, retention=3, **extra):
        self.jobs += 1
        base = os.path.join(self.tmp, 'job%04d' % self.jobs)
        os.makedirs(base)
        job = {
            'vm': vm, 'run_id': run_id, 'fault': fault, 'receiver': receiver or {}, 'lock_ttl': lock_ttl,
            'retention': retention, 'replica_name': '{name}_replica',
            'source': self.connection('source', (relays or {}).get('source')),
            'target': self.connection('target', (relays or {}).get('target')),
            'source_datastore_paths': self.site('source')['datastores'],
            'target_datastore_paths': self.site('target')['datastores'],
            'control': dict((n, {'port': self.site(n)['port'], 'cafile': self.site(n)['cafile']})
                            for n in ('source', 'target')),
            'relays': dict((n, r.pid) for n, r in (relays or {}).items()),
            'log': os.path.join(base, 'log.jsonl'), 'progress_dir': base, 'dir': base,
        }
        job.update(extra)
        return job

    def run(self, job, sshd_pid=None):
        """Run the cycle in a child of the fork server; returns (exit status, log records)."""
        if sshd_pid:
            job['sshd_pid'] = sshd_pid
        path = os.path.join(job['dir'], 'job.json')
        with open(path, 'w') as f:
            json.dump(job, f)
        rc = self.server.run(path)
        return rc, read_log(job['log'])

    # ---- lab facts ----------------------------------------------------------------------------------------------

    def vm_info(self, name, site='source'):
        return control(self.site(site), 'vm', name=name)

    def snapshots(self, name):
        return [s['name'] for s in self.vm_info(name).get('snapshots') or []]

    def guest_write(self, name, rng, percent=12):
        """Seeded guest writes into every live disk of a source VM (as labctl write does); returns bytes written."""
        total = 0
        for disk in self.vm_info(name)['disks']:
            capacity = disk['capacity']
            goal, done = capacity * percent // 100, 0
            with open(disk['data'], 'r+b') as f:
                while done < goal:
                    length = min(4096 * rng.randint(1, 32), goal - done)
                    offset = 4096 * rng.randrange(0, (capacity - length) // 4096 + 1)
                    f.seek(offset)
                    f.write(bytes(length) if rng.random() < 0.1 else rng.randbytes(length))
                    done += length
                f.flush()
                os.fsync(f.fileno())
            total += done
        return total

    def replica_disks(self, name):
        """[(source key, replica descriptor path, flat data path, capacity)] in disk order."""
        src = self.vm_info(name)['disks']
        dst = self.vm_info(name + '_replica', 'target')['disks']
        stores = self.site('target')['datastores']
        out = []
        for s, d in zip(src, dst):
            ds, rel = d['descriptor'][1:].split('] ', 1)
            out.append((s['key'], os.path.join(stores[ds], rel), d['data'], d['capacity']))
        return out

    def replica_state(self, name):
        """The replicator.* extraConfig of the replica, decoded."""
        from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import decode
        if self.target_si is None:      # one session for the whole run (the tests read this after every cycle)
            self.target_si = self.lab.connect('target')
        vm = self.lab.find_vm(self.target_si, name + '_replica')
        return decode(vm.config.extraConfig)

    @staticmethod
    def store(path):
        from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import (
            ReplicaStore, default_state_dir,
        )
        return ReplicaStore(default_state_dir(path))

    def committed_change_ids(self, name):
        return dict((key, (self.store(path).load() or {}).get('change_id'))
                    for key, path, _data, _cap in self.replica_disks(name))

    # ---- checks -------------------------------------------------------------------------------------------------

    def check_points(self, name, digests):
        """Every restore point kept on every replica disk rolls back to exactly the data its snapshot froze, and
        rolling forward returns to the newest. digests: {cycle id: {disk key (str): sha256}}. Returns bytes compared."""
        from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import open_endpoint
        compared = 0
        for key, path, data, capacity in self.replica_disks(name):
            store = self.store(path)
            points = [p['id'] for p in store.load()['restore_points']]
            assert points, 'replica disk %s has no restore point' % key
            with open_endpoint(path, writable=True) as target:
                for point in reversed(points[:-1]):
                    store.rollback(target, point)
                    assert sha256_file(data, capacity) == digests[point][str(key)], \
                        'disk %s: restore point %s does not roll back exactly' % (key, point)
                    compared += capacity
                store.roll_forward(target)
            assert sha256_file(data, capacity) == digests[points[-1]][str(key)], \
                'disk %s: newest point %s' % (key, points[-1])
            compared += capacity
        return compared


def snapshot_digests(log):
    for record in log:
        if record.get('event') == 'snapshot':
            return record['name'], record['digests']
    return None, {}


def steps(log):
    return [r for r in log if 'step' in r]


def seeded(name):
    """The random generator of a scenario: its points and guest writes are the same on every run."""
    return random.Random('faults-' + name)
