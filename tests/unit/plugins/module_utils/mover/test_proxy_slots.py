# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-proxy copy slots: real flock between real processes, a dead holder frees its slot, a bounded wait."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.mover.proxy_slots import ProxySlots, SlotTimeout

HOLDER = textwrap.dedent('''
    import sys, time
    from ansible_collections.replicator.vsphere.plugins.module_utils.mover.proxy_slots import ProxySlots
    with ProxySlots(sys.argv[1], int(sys.argv[2]), timeout=30, owner=sys.argv[3]) as slot:
        print(slot.index, flush=True)
        sys.stdin.read()   # hold the slot until the parent closes stdin or kills us
''')


def _holder(directory, slots, owner):
    import ansible_collections
    root = os.path.dirname(list(ansible_collections.__path__)[0])  # where this process imports the collection from
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
    proc = subprocess.Popen([sys.executable, '-c', HOLDER, str(directory), str(slots), owner], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    index = proc.stdout.readline().strip()
    assert index.isdigit(), 'holder did not get a slot'
    return proc, int(index)


class FakeClock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_slots_are_shared_between_processes_and_a_dead_holder_frees_its_slot(tmp_path):
    a, ia = _holder(tmp_path, 2, 'vm-a disk 2000')
    b, ib = _holder(tmp_path, 2, 'vm-b disk 2000')
    try:
        assert {ia, ib} == {0, 1}
        clock = FakeClock()
        with pytest.raises(SlotTimeout) as err:
            with ProxySlots(str(tmp_path), 2, timeout=5, clock=clock, sleep=clock.sleep):
                pass
        assert 'All 2 disk copy slots' in str(err.value) and 'vm-a disk 2000' in str(err.value)
        assert clock.now >= 5
        a.send_signal(signal.SIGKILL)   # a crashed copy: the kernel releases its lock
        a.wait(timeout=10)
        with ProxySlots(str(tmp_path), 2, timeout=5) as slot:
            assert slot.index == ia
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def test_released_slot_is_reused_and_zero_slots_means_no_limit(tmp_path):
    with ProxySlots(str(tmp_path), 1, timeout=1) as first:
        assert first.index == 0
    with ProxySlots(str(tmp_path), 1, timeout=1) as again:
        assert again.index == 0 and again.waited < 1
    with ProxySlots(str(tmp_path / 'unused'), 0) as unlimited:
        assert unlimited.index is None
    assert not (tmp_path / 'unused').exists()


def test_a_waiting_copy_gets_the_slot_when_the_holder_finishes(tmp_path):
    holder, index = _holder(tmp_path, 1, 'vm-a')
    clock = FakeClock()
    polls = []

    def sleep(seconds):
        polls.append(seconds)
        clock.sleep(seconds)
        if len(polls) == 3:                 # the holder finishes while we wait
            holder.stdin.close()
            holder.wait(timeout=10)

    try:
        with ProxySlots(str(tmp_path), 1, timeout=60, clock=clock, sleep=sleep) as slot:
            assert slot.index == index and len(polls) >= 3 and slot.waited == clock.now
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)


def test_unwritable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(SlotTimeout) as err:
        with ProxySlots(str(blocker / 'slots'), 2):
            pass
    assert 'slot directory' in str(err.value)
