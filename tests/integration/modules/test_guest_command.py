# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""guest_command through ansible against the lab's guest operations (the lab's guest of a VM is a directory; its
programs run for real): check mode, a run with output, rc != 0, a timeout that kills the process, wrong guest
credentials, a powered-off VM, output truncation."""

from __future__ import absolute_import, division, print_function

import os

import pytest

__metaclass__ = type

pyVmomi = pytest.importorskip('pyVmomi')

VM = 'mod-guest-vm'
GUEST_USER = 'dbadmin'
GUEST_PASSWORD = 'guest-Secret-4711'


@pytest.fixture(scope='module')
def vm(lab):
    vm = lab.new_vm(VM, disks_mib=(4,), power_on=True)
    lab.control('source', 'guestops', method='POST', vm=VM, username=GUEST_USER, password=GUEST_PASSWORD)
    yield vm
    lab.destroy_vm(vm)


@pytest.fixture(scope='module')
def guest_dir(lab, vm):
    return lab.control('source', 'guestops', vm=VM)['dir']


def run(ansible_module, check=False, **args):
    params = dict(name=VM, guest_username=GUEST_USER, guest_password=GUEST_PASSWORD)
    params.update(args)
    return ansible_module('guest_command', check=check, **params)


def processes(lab):
    return lab.control('source', 'guestops', vm=VM)['processes'] or []


def test_check_mode_runs_nothing(lab, ansible_module, vm, guest_dir):
    before = len(processes(lab))
    result = run(ansible_module, check=True, command='echo ran > check-mode.txt')
    assert result['changed'] is True and result['rc'] is None and result['pid'] is None
    assert 'not run' in result['msg']
    assert len(processes(lab)) == before and not os.path.exists(os.path.join(guest_dir, 'check-mode.txt'))
    assert 'StartProgramInGuest' not in result['soap']


def test_run_returns_rc_stdout_stderr(lab, ansible_module, vm, guest_dir):
    result = run(ansible_module, command='printf "one\\ntwo\\n"; echo "warn: $MODE" >&2; echo done > marker.txt',
                 environment={'MODE': 'pre'})
    assert result['changed'] is True and result['rc'] == 0, result
    assert result['stdout'] == 'one\ntwo\n' and result['stderr'] == 'warn: pre\n'
    assert result['stdout_truncated'] is False and result['pid'] > 0
    with open(os.path.join(guest_dir, 'marker.txt')) as f:
        assert f.read() == 'done\n'
    # the temporary output directory is gone
    assert not [n for n in os.listdir(os.path.join(guest_dir, 'tmp')) if n.startswith('replicator-')]
    assert result['soap'].get('StartProgramInGuest') == 1 and result['soap'].get('DeleteDirectoryInGuest') == 1
    print('SOAP guest_command: %d %s' % (result['soap_total'], result['soap']))


def test_non_zero_exit_fails_with_the_output(ansible_module, vm):
    result = run(ansible_module, command='echo partial; echo broken >&2; exit 7')
    assert result.get('failed') is True and result['rc'] == 7
    assert result['stdout'] == 'partial\n' and result['stderr'] == 'broken\n'
    assert 'exited with rc 7' in result['msg']


def test_timeout_kills_the_process(lab, ansible_module, vm, guest_dir):
    result = run(ansible_module, command='echo started; sleep 60; echo never > late.txt', command_timeout=2)
    assert result.get('failed') is True and result.get('timed_out') is True
    assert 'did not finish within 2 s' in result['msg'] and 'killed' in result['msg']
    assert result['stdout'] == 'started\n' and result['rc'] is None
    killed = [p for p in processes(lab) if p['pid'] == result['pid']][0]
    assert killed['running'] is False and killed['exit_code'] == 137  # SIGKILL
    assert not os.path.exists(os.path.join(guest_dir, 'late.txt'))


def test_wrong_guest_password_is_clear_and_never_shown(ansible_module, vm):
    wrong = 'Wrong-Pass-0815'
    result = run(ansible_module, command='true', guest_password=wrong)
    assert result.get('failed') is True and result['fault'] == 'InvalidGuestLogin'
    assert "as guest user '%s'" % GUEST_USER in result['msg'] and 'guest_password' in result['hint']
    assert wrong not in result['_output'] and GUEST_PASSWORD not in result['_output']
    assert wrong not in str(result) and GUEST_PASSWORD not in str(dict(result, _output=''))
    ok = run(ansible_module, command='echo fine')
    assert ok['rc'] == 0 and GUEST_PASSWORD not in ok['_output']


def test_output_is_bounded(ansible_module, vm):
    result = run(ansible_module, command='head -c 5000 /dev/zero | tr "\\0" x', output_limit=1000)
    assert result['rc'] == 0 and len(result['stdout']) == 1000 and result['stdout_truncated'] is True


def test_powered_off_vm_is_refused_before_any_guest_call(lab, ansible_module):
    off = lab.new_vm('mod-guest-off', disks_mib=(4,), power_on=False)
    try:
        result = run(ansible_module, name='mod-guest-off', command='true')
        assert result.get('failed') is True and result['fault'] == 'InvalidPowerState'
        assert not [m for m in result['soap'] if m.endswith('InGuest')]
    finally:
        lab.destroy_vm(off)
