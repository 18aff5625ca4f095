# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Liveness of the process behind a hot-add marker, with real processes (no mock of /proc)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import signal
import subprocess
import time

from ansible_collections.replicator.vsphere.plugins.module_utils.hotadd.attach import (
    _stat_fields, _start_ticks, process_alive, this_process,
)


def test_this_process_is_alive():
    me = this_process()
    assert me['pid'] and me['start']
    assert process_alive(me['pid'], me['start'])


def test_running_reused_zombie_and_reaped():
    """Running: alive. Another start time (a reused pid): not alive. Killed but not reaped yet (a zombie, as a module
    killed with its parent is until init collects it): not alive. Reaped: not alive."""
    proc = subprocess.Popen(['sleep', '60'])
    try:
        start = _start_ticks(proc.pid)
        assert start is not None
        assert process_alive(proc.pid, start)
        assert not process_alive(proc.pid, str(int(start) + 1))
        proc.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (_stat_fields(proc.pid) or ['?'])[0] != 'Z' and time.monotonic() < deadline:
            time.sleep(0.01)    # not reaped: Popen only collects it in wait()/poll()
        assert _stat_fields(proc.pid)[0] == 'Z'
        assert _start_ticks(proc.pid) == start     # /proc still shows the pid with its start time
        assert not process_alive(proc.pid, start)
    finally:
        proc.kill()
        proc.wait()
    assert not process_alive(proc.pid, start)
    assert not process_alive(0, None)
