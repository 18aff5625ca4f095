#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: guest_command
short_description: Run a command in a VM's guest through VMware Tools, without SSH or WinRM
version_added: 0.1.0
description:
  - Runs O(command) with the guest's shell (O(shell)) through the vSphere guest operations API, as the guest account
    O(guest_username), waits for it to end and returns its exit code, stdout and stderr.
  - For guests the inventory cannot reach, for example to quiesce an application before the replication snapshot
    (the C(command) hooks of the C(replicator.vsphere.replicate) role).
  - The output goes into a private temporary directory in the guest, is fetched through the guest file transfer
    (HTTPS to the VM's ESXi host, at most O(output_limit) bytes per stream) and the directory is removed.
  - A command still running after O(command_timeout) seconds is killed and the module fails saying so. A non-zero exit
    code fails the module, with rc, stdout and stderr in the result.
  - Not idempotent - the command runs every time and the module always reports a change.
author:
  - replicator.vsphere contributors (@replicator-vsphere)
extends_documentation_fragment:
  - replicator.vsphere.connection
  - replicator.vsphere.vm_identity
attributes:
  check_mode:
    support: full
    description: Checks that the VM is powered on with VMware Tools running; does not run the command.
  diff_mode:
    support: none
    description: A command has no before and after to show.
options:
  guest_username:
    description: An account of the guest operating system (not the vCenter login).
    type: str
    required: true
  guest_password:
    description: The password of O(guest_username). Never logged or returned.
    type: str
    required: true
  command:
    description:
      - The command line, run by O(shell) as one argument (C(sh -c), C(cmd.exe /c), C(powershell -Command)), so
        pipes, C(&&) and quoting work as in that shell.
    type: str
    required: true
  shell:
    description:
      - Path of the guest's command processor. V(/bin/sh) for Linux guests; for Windows guests for example
        V(C:\\Windows\\System32\\cmd.exe).
    type: str
    default: /bin/sh
  working_directory:
    description: Directory in the guest the command starts in; the guest account's home by default.
    type: str
  environment:
    description: Environment variables for the command, in addition to the guest account's.
    type: dict
    default: {}
  command_timeout:
    description: Seconds the command may run; it is then killed and the module fails.
    type: int
    default: 300
  output_limit:
    description: Bytes of stdout and of stderr returned at most; the rest is dropped and C(stdout_truncated) set.
    type: int
    default: 65536
notes:
  - One of O(name), O(uuid) or O(moid) is required.
  - Needs the privileges C(VirtualMachine.GuestOperations.Execute), C(.Modify) and C(.Query) on the VM.
  - The module only checks that the command ran; what it did in the guest is up to the command.
seealso:
  - module: replicator.vsphere.vm_snapshot
'''

EXAMPLES = r'''
- name: Flush PostgreSQL and freeze its file system before the snapshot
  replicator.vsphere.guest_command:
    hostname: vcenter.example.com
    username: administrator@vsphere.local
    password: "{{ vcenter_password }}"
    name: db01
    guest_username: root
    guest_password: "{{ db01_root_password }}"
    command: psql -U postgres -c CHECKPOINT && sync && fsfreeze --freeze /var/lib/postgresql
    command_timeout: 120
  delegate_to: localhost

- name: A Windows guest
  replicator.vsphere.guest_command:
    name: sql01
    guest_username: Administrator
    guest_password: "{{ sql01_password }}"
    shell: C:\Windows\System32\cmd.exe
    command: sqlcmd -Q "CHECKPOINT"
'''

RETURN = r'''
vm:
  description: The VM ({name, moid, instance_uuid}).
  returned: always
  type: dict
rc:
  description: Exit code of the command; null in check mode or when it was killed.
  returned: always
  type: int
  sample: 0
stdout:
  description: Standard output of the command (at most O(output_limit) bytes, UTF-8).
  returned: always
  type: str
stderr:
  description: Standard error of the command (at most O(output_limit) bytes, UTF-8).
  returned: always
  type: str
stdout_truncated:
  description: Whether stdout was longer than O(output_limit).
  returned: always
  type: bool
stderr_truncated:
  description: Whether stderr was longer than O(output_limit).
  returned: always
  type: bool
pid:
  description: Process id of the command in the guest; null in check mode.
  returned: always
  type: int
seconds:
  description: How long the command ran, as seen from the module.
  returned: always
  type: float
timed_out:
  description: Set when the command was killed after O(command_timeout).
  returned: failure
  type: bool
'''

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.guest_ops import run_guest_command
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.args import (
    vm_identity_argument_spec, vm_identity_params,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.lookup import find_vm
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.module import run_module, vsphere_module


def argument_spec():
    spec = vm_identity_argument_spec()
    spec.update(
        guest_username=dict(type='str', required=True),
        guest_password=dict(type='str', required=True, no_log=True),
        command=dict(type='str', required=True),
        shell=dict(type='str', default='/bin/sh'),
        working_directory=dict(type='str'),
        environment=dict(type='dict', default={}),
        command_timeout=dict(type='int', default=300),
        output_limit=dict(type='int', default=65536),
    )
    return spec


def main():
    module = vsphere_module(argument_spec(), required_one_of=[('name', 'uuid', 'moid')])
    params = module.params
    if params['command_timeout'] < 1 or params['output_limit'] < 0:
        module.fail_json(msg='command_timeout must be 1 or more seconds and output_limit 0 or more bytes.')
    opts = dict(params, environment=dict((str(k), str(v)) for k, v in (params['environment'] or {}).items()))

    def body(client):
        return run_guest_command(client, find_vm(client, vm_identity_params(params)), opts, module.check_mode)

    run_module(module, body)


if __name__ == '__main__':
    main()
