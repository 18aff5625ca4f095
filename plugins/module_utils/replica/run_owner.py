# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who runs a replication run, and whether that run is provably alive (standard library only, Linux /proc).

A run is one ansible-playbook process. Its identity travels with its locks and its copies:
  {"id": "20261205T081502Z-3f9a1c", "host": "ctl01", "pid": 4242, "boot_id": "<kernel boot id>", "start": 1234567}
`start` is the process start time in clock ticks since boot (/proc/<pid>/stat field 22): with boot_id it tells a
live process from a later one that got the same pid. Liveness is only provable on the host that runs the process
(same boot_id); elsewhere it is unknown and the lock's lease decides.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import binascii
import datetime
import os
import socket

PLAYBOOK_COMMANDS = ('ansible-playbook', 'ansible-runner')


def boot_id():
    try:
        with open('/proc/sys/kernel/random/boot_id') as f:
            return f.read().strip() or None
    except OSError:
        return None


def process_start(pid):
    """The start time of `pid` in clock ticks since boot, or None when there is no such process."""
    try:
        with open('/proc/%d/stat' % int(pid), 'rb') as f:
            stat = f.read()
    except (OSError, ValueError):
        return None
    # the command name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'
    fields = stat[stat.rfind(b')') + 2:].split()
    try:
        if fields[0] == b'Z':          # a zombie has ended; only its exit status is left
            return None
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _parent(pid):
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            stat = f.read()
        return int(stat[stat.rfind(b')') + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _is_playbook(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            argv = f.read().split(b'\0')[:3]
    except OSError:
        return False
    names = [os.path.basename(a.decode('utf-8', 'replace')) for a in argv if a]
    return any(name in PLAYBOOK_COMMANDS for name in names)


def playbook_process(pid=None):
    """The outermost ansible-playbook process above `pid` (default: this process), else this process's parent."""
    pid = pid or os.getpid()
    found = None
    for _i in range(64):
        if pid <= 1:
            break
        if _is_playbook(pid):
            found = pid
        pid = _parent(pid)
    return found or os.getppid()


def new_run_id(now=None):
    """A run id that sorts by start time and never repeats: UTC second plus 24 random bits."""
    moment = datetime.datetime.fromtimestamp(now if now is not None else
                                             datetime.datetime.now().timestamp(), datetime.timezone.utc)
    return '%s-%s' % (moment.strftime('%Y%m%dT%H%M%SZ'), binascii.hexlify(os.urandom(3)).decode('ascii'))


def identity(run_id=None, pid=None):
    """The identity of a run (see the module docstring): of process `pid`, by default of the ansible-playbook
    process above this one."""
    pid = pid or playbook_process()
    return {'id': run_id or new_run_id(), 'host': socket.gethostname(), 'pid': pid, 'boot_id': boot_id(),
            'start': process_start(pid)}


def describe(owner):
    """'ctl01 pid 4242 run 20261205T081502Z-3f9a1c' (what is known of it)."""
    if not owner:
        return 'an unknown run'
    parts = [str(owner.get('host') or 'an unknown host')]
    if owner.get('pid'):
        parts.append('pid %s' % owner['pid'])
    if owner.get('id'):
        parts.append('run %s' % owner['id'])
    return ' '.join(parts)


def alive(owner):
    """True / False when provable from this host (same boot), None when not (another host, or no process known)."""
    if not owner or not owner.get('pid') or not owner.get('boot_id') or owner.get('boot_id') != boot_id():
        return None
    start = process_start(owner['pid'])
    return start is not None and (owner.get('start') is None or start == owner['start'])


def iso(epoch):
    """'2026-12-05T08:15:02Z' for epoch seconds (None stays None)."""
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(float(epoch), datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
