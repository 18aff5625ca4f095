# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure parts of guest_ops: the guest command line, URLs, output decoding, the early guest checks.
The guest operations themselves are tested against the lab (tests/integration/modules/test_guest_command.py)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import itertools
import subprocess

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.guest_ops import (
    GuestCommandError, check_guest, command_line, decode_output, guest_join, poll_delays, shell_flag, transfer_url,
)


def test_posix_command_line_runs_the_command_as_one_word(tmp_path):
    out, err = str(tmp_path / "o u't"), str(tmp_path / 'err')
    command = "echo 'it''s' \"$HOME\" | tr a-z A-Z; echo oops >&2; exit 4"
    args = command_line('/bin/sh', command, out, err)
    # what the guest runs: "programPath" arguments through /bin/sh -c (open-vm-tools on Linux)
    proc = subprocess.run(['/bin/sh', '-c', '"/bin/sh" ' + args], env={'HOME': '/h'}, check=False)
    assert proc.returncode == 4
    assert open(out).read() == 'ITS /H\n' and open(err).read() == 'oops\n'


def test_windows_shells():
    assert shell_flag(r'C:\Windows\System32\cmd.exe') == '/c'
    assert shell_flag(r'C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe') == '-Command'
    assert shell_flag('/usr/bin/bash') == '-c'
    assert command_line('cmd.exe', 'sqlcmd -Q "CHECKPOINT"', r'C:\T\stdout', r'C:\T\stderr') == \
        r'/c sqlcmd -Q "CHECKPOINT" > "C:\T\stdout" 2> "C:\T\stderr"'
    assert guest_join('C:\\Temp\\replicator-1', 'stdout', 'windowsGuest') == 'C:\\Temp\\replicator-1\\stdout'
    assert guest_join('/tmp/replicator-1/', 'stdout', 'linuxGuest') == '/tmp/replicator-1/stdout'


def test_transfer_url_host_placeholder():
    assert transfer_url('https://*/guestFile?id=1&token=t', 'esx01', 443) == 'https://esx01:443/guestFile?id=1&token=t'
    assert transfer_url('https://*:8443/guestFile?id=1', 'esx01', 443) == 'https://esx01:8443/guestFile?id=1'
    assert transfer_url('https://10.0.0.5:443/guestFile?x', 'vc', 443) == 'https://10.0.0.5:443/guestFile?x'


def test_output_is_bounded_and_decoded():
    assert decode_output(b'abc', 3, 10) == ('abc', False)
    assert decode_output(b'abcdef', 6, 4) == ('abcd', True)
    assert decode_output(b'\xffok', 3, 10) == (u'\ufffdok', False)


def test_poll_delays_grow_to_a_ceiling():
    delays = list(itertools.islice(poll_delays(), 12))
    assert delays[0] == 0.2 and delays[-1] == 2.0 and delays == sorted(delays)


def test_check_guest_refuses_early():
    check_guest({'runtime.powerState': 'poweredOn', 'guest.toolsRunningStatus': 'guestToolsRunning'}, 'db01')
    with pytest.raises(GuestCommandError) as err:
        check_guest({'runtime.powerState': 'poweredOff', 'guest.toolsRunningStatus': None}, 'db01')
    assert err.value.fault == 'InvalidPowerState' and 'powered-on' in err.value.msg
    with pytest.raises(GuestCommandError) as err:
        check_guest({'runtime.powerState': 'poweredOn', 'guest.toolsRunningStatus': 'guestToolsNotRunning'}, 'db01')
    assert err.value.fault == 'GuestOperationsUnavailable' and 'VMware Tools' in err.value.hint


def test_error_result_carries_the_run_details():
    error = GuestCommandError('exited with rc 3', fault='NonZeroExit', details={'rc': 3, 'stdout': 'x'})
    assert error.to_result() == {'msg': 'exited with rc 3', 'fault': 'NonZeroExit', 'rc': 3, 'stdout': 'x'}
