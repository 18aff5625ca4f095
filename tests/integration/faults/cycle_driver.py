# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run one replication cycle (faults_cycle.Cycle) and inject one fault at a seeded point.

usage: cycle_driver.py JOB.json      one cycle in this process
       cycle_driver.py --serve        a fork server: imports the modules once, then for every job path read from
                                      stdin forks a child that runs that cycle (output in the job's driver.out) and
                                      answers one JSON line {"pid", "rc"} (rc -9: the child was SIGKILLed); it
                                      first answers {"pid"} as soon as the child runs. It exits at end of input.
The fork server saves the interpreter start and the imports of every cycle (hundreds per run of the suite); each
child is a separate process, killed by PID like the one-shot driver, and starts from the server's pristine state.

job['fault'] (or none): {'at': {'step': N} | {'disk': I, 'fraction': F} | {'io': K}, 'action': A}
  step N        before the N-th module run of the cycle
  disk/fraction when the sender has emitted F of the planned bytes of the I-th disk copy
  io K          at the K-th write / fsync / rename / unlink / truncate the receiver side makes during the disk copies
                (a write is cut in half first: a torn journal record or block)
actions: self (SIGKILL this process: the sender, and with a local receiver the receiver too), ssh-client (the ssh
process of the receiver link), sshd-session (the sshd process serving that link), receiver (the receiver process on
the SSH host), relay:source / relay:target (the TCP relay in front of a lab site: the vSphere endpoint goes away), and
hold:SECONDS (no kill: the cycle waits there, holding its lock). Every process is found among this process's
children or the descendants of job['sshd_pid'], and killed by PID.
The point reached is appended to the log as {'event': 'fault', ...} before the action.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import importlib
import json
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faults_cycle import MODULES, Cycle, Log  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.replicator.vsphere.plugins.module_utils.mover import progress as progress_mod  # noqa: E402

RECEIVER_MODULES = ('stream', 'journal', 'replica_store', 'endpoint')


def _children(pid):
    kids = []
    base = '/proc/%d/task' % pid
    try:
        tids = os.listdir(base)
    except OSError:
        return kids
    for tid in tids:
        try:
            with open(os.path.join(base, tid, 'children')) as f:
                kids.extend(int(p) for p in f.read().split())
        except OSError:
            pass
    return kids


def _descendants(pid):
    out, todo = [], [pid]
    for _i in range(10000):
        if not todo:
            break
        kids = _children(todo.pop())
        out.extend(kids)
        todo.extend(kids)
    return out


def _cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return f.read().split(b'\0')
    except OSError:
        return []


def _parent(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return int(f.read().rsplit(')', 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


class Faults(object):

    def __init__(self, job, log):
        self.job = job
        self.log = log
        self.fault = job.get('fault') or None
        self.fired = False
        self.cycle = None
        self.stage = None
        self.io = 0
        self.disk_total = 0

    # ---- where ------------------------------------------------------------------------------------------------

    def before_step(self, name, index):
        at = (self.fault or {}).get('at') or {}
        if at.get('step') == index:
            self.fire(before_step=index, step_name=name)

    def install(self):
        faults = self
        original_add, original_stage = progress_mod.Progress.add, progress_mod.Progress.set_stage

        def set_stage(progress, stage, total=None):
            faults.stage = stage
            if stage == 'copying':
                faults.disk_total = total or 0
            return original_stage(progress, stage, total)

        def add(progress, n):
            original_add(progress, n)
            at = (faults.fault or {}).get('at') or {}
            if 'fraction' in at and faults.cycle.disk_index == at.get('disk') and faults.disk_total and \
                    progress.done >= at['fraction'] * faults.disk_total:
                faults.fire(disk=faults.cycle.disk_index, bytes_done=progress.done, bytes_total=faults.disk_total)
        progress_mod.Progress.add = add
        progress_mod.Progress.set_stage = set_stage
        if 'io' in ((self.fault or {}).get('at') or {}):
            for name in ('write', 'pwrite'):
                setattr(os, name, self._torn(getattr(os, name)))
            for name in ('fsync', 'replace', 'unlink', 'ftruncate'):
                setattr(os, name, self._before(getattr(os, name)))

    def _receiver_io(self):
        if self.cycle is None or self.cycle.disk_index < 0 or self.fired:
            return False
        caller = sys._getframe(2).f_globals.get('__name__', '')  # pylint: disable=protected-access
        if caller.rsplit('.', 1)[-1] not in RECEIVER_MODULES:
            return False
        self.io += 1
        return self.io == self.fault['at']['io']

    def _torn(self, real):
        def call(fd, data, *rest):
            if self._receiver_io():
                view = memoryview(data).cast('B')
                real(fd, view[:len(view) // 2], *rest)
                self.fire(io=self.io, disk=self.cycle.disk_index)
            return real(fd, data, *rest)
        return call

    def _before(self, real):
        def call(*args, **kwargs):
            if self._receiver_io():
                self.fire(io=self.io, disk=self.cycle.disk_index, call=getattr(real, '__name__', ''))
            return real(*args, **kwargs)
        return call

    # ---- what -------------------------------------------------------------------------------------------------

    def fire(self, **where):
        if self.fired:
            return
        self.fired = True
        action = self.fault['action']
        if action.startswith('hold:'):     # not a kill: the cycle stops there for a while, holding its lock
            self.log.add(event='fault', action=action, stage=self.stage, victims=[], **where)
            time.sleep(float(action.split(':', 1)[1]))
            return
        victims = self.victims(action)
        self.log.add(event='fault', action=action, stage=self.stage,
                     disk_index=self.cycle.disk_index if self.cycle else -1, victims=victims, **where)
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def victims(self, action):
        if action == 'self':
            return [os.getpid()]
        if action.startswith('relay:'):
            return [int(self.job['relays'][action.split(':', 1)[1]])]
        ssh = [pid for pid in _children(os.getpid()) if os.path.basename(_cmdline(pid)[0] or b'') == b'ssh']
        if action == 'ssh-client':
            return ssh
        sshd = int(self.job['sshd_pid'])
        remote = [pid for pid in _descendants(sshd) if b'<replicator-receiver>' in b' '.join(_cmdline(pid))]
        if action == 'receiver':
            return remote
        if action == 'sshd-session':
            sessions = set()
            for pid in remote:
                # walk up to the child of the sshd listener: the process serving this connection
                for _i in range(20):
                    parent = _parent(pid)
                    if parent in (sshd, 0, 1):
                        break
                    pid = parent
                if _parent(pid) == sshd:
                    sessions.add(pid)
            return sorted(sessions)
        raise SystemExit('unknown fault action %s' % action)


def run_job(path):
    with open(path) as f:
        job = json.load(f)
    log = Log(job['log'])
    faults = Faults(job, log)
    cycle = Cycle(job, before_step=faults.before_step)
    faults.cycle = cycle
    faults.install()
    status = cycle.run()
    if faults.fault and not faults.fired:
        log.add(event='fault-missed')
    sys.stdout.write(json.dumps({'status': status, 'fired': faults.fired}) + '\n')
    return 0


def _child(path):
    """In the forked child: stdin from /dev/null, stdout and stderr into the job's driver.out, run, never return."""
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(os.path.join(os.path.dirname(path), 'driver.out'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        code = run_job(path)
    except BaseException:  # pylint: disable=broad-except
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # pylint: disable=protected-access


def serve():
    for name in ('replica_register', 'cbt_enable', 'snapshot_consolidate', 'vm_snapshot', 'disk_replicate'):
        importlib.import_module(MODULES + name)
    answer = sys.stdout
    for _i in range(100000):
        path = sys.stdin.readline().strip()
        if not path:
            return 0
        answer.flush()
        pid = os.fork()
        if pid == 0:
            _child(path)
        answer.write(json.dumps({'pid': pid}) + '\n')
        answer.flush()
        _pid, status = os.waitpid(pid, 0)
        rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        answer.write(json.dumps({'pid': pid, 'rc': rc}) + '\n')
        answer.flush()
    return 0


def main():
    if sys.argv[1] == '--serve':
        return serve()
    return run_job(sys.argv[1])


if __name__ == '__main__':
    sys.exit(main())
