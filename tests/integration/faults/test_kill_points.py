# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kill the sender, the receiver (in-process and over SSH), the SSH link and the vSphere endpoints at seeded points
of a replication cycle (20 per scenario, the same on every run: random.Random('faults-<scenario>')). After each
point: the committed changeIds of the disks whose copy did not complete are unchanged, a rerun completes and removes
the orphaned cycle snapshot (waiting out the crashed run's 1 s lock lease when it was left), the replica equals the
rerun's source snapshot byte for byte, and every kept restore point rolls back exactly."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from faults_lab import seeded
from faults_points import run_points

pytestmark = pytest.mark.timeout(900)

POINTS = max(20, int(os.environ.get('FAULTS_POINTS', '20')))  # more with FAULTS_POINTS=N
# module runs of a cycle: replica_register, cbt_enable, snapshot_consolidate, vm_snapshot, disk_replicate x2,
# vm_snapshot absent, replica_register release
STEPS = 8
SSH_DISKS_MIB = (6,)


def _fraction(rng, disks=2):
    return {'disk': rng.randrange(disks), 'fraction': round(rng.uniform(0.05, 0.95), 3)}


def _report(row):
    print('\n%(scenario)s: %(points)d points, %(reruns_ok)d reruns ok, %(orphans_removed)d orphaned snapshots '
          'removed, %(lock_refusals)d lock refusals, %(bytes_verified)d bytes verified, %(seconds)s s' % row)


def test_sender_killed(faults, reliability):
    """SIGKILL of the process running the modules (the whole controller side, as a killed ansible-playbook): before
    each module run of the cycle, and mid-copy at a seeded fraction of a disk's planned bytes."""
    rng = seeded('sender')
    points = [{'at': {'step': step}, 'action': 'self'} for step in range(1, STEPS + 1)]
    points += [{'at': _fraction(rng), 'action': 'self'} for _i in range(POINTS - len(points))]
    rng.shuffle(points)
    faults.new_vm('flt-send')
    _report(run_points(faults, reliability, 'sender', 'flt-send', points, rng))


def test_local_receiver_killed(faults, reliability):
    """The receiver writes in the module's process: SIGKILL at a seeded write / fsync / rename / unlink of the
    receiver side (writes torn in half first: journal records, replica blocks, the manifest)."""
    rng = seeded('receiver-local')
    points = [{'at': {'io': rng.randint(1, 48)}, 'action': 'self'} for _i in range(POINTS)]
    faults.new_vm('flt-recv')
    _report(run_points(faults, reliability, 'receiver-local', 'flt-recv', points, rng))


def test_ssh_receiver_killed(faults, reliability, sshd, ssh_receiver):
    """The receiver on the SSH host killed mid-stream; the role's cleanup runs (snapshot removed, lock released).
    One disk: what is tested is the death of the SSH receiver (every disk copy over SSH starts a receiver, about a
    second here); a kill between the disks of a VM is covered by the sender and local receiver scenarios."""
    rng = seeded('receiver-ssh')
    points = [{'at': _fraction(rng, 1), 'action': 'receiver'} for _i in range(POINTS)]
    faults.new_vm('flt-rssh', disks_mib=SSH_DISKS_MIB)
    _report(run_points(faults, reliability, 'receiver-ssh', 'flt-rssh', points, rng, sshd_pid=sshd.proc.pid,
                       receiver=ssh_receiver))


def test_ssh_link_cut(faults, reliability, sshd, ssh_receiver):
    """The SSH link cut mid-stream: the ssh client process or the sshd process serving the connection, in turn
    (one disk, as above)."""
    rng = seeded('ssh-link')
    points = [{'at': _fraction(rng, 1), 'action': ('ssh-client', 'sshd-session')[i % 2]} for i in range(POINTS)]
    faults.new_vm('flt-link', disks_mib=SSH_DISKS_MIB)
    _report(run_points(faults, reliability, 'ssh-link', 'flt-link', points, rng, sshd_pid=sshd.proc.pid,
                       receiver=ssh_receiver))


def test_lab_killed(faults, reliability, relays):
    """The vSphere endpoint of the source or the target site goes away (its relay SIGKILLed: connections cut,
    new ones refused) before a module run or mid-copy, and comes back for the rerun."""
    rng = seeded('lab')
    points = []
    for i in range(POINTS):
        at = {'step': rng.randint(1, STEPS)} if i % 2 else _fraction(rng)
        points.append({'at': at, 'action': 'relay:%s' % rng.choice(('source', 'target'))})
    faults.new_vm('flt-lab')
    _report(run_points(faults, reliability, 'lab', 'flt-lab', points, rng, relays=relays))
