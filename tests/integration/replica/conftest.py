# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replica module tests: modules run for real through the shared ansible-playbook harness, lab helpers."""

from __future__ import absolute_import, division, print_function

import pytest

__metaclass__ = type


class ModuleResult(dict):
    """A module's registered result, with `status` as Ansible prints it, `output` and `soap` ({method: calls} on
    the counted site)."""

    @property
    def failed(self):
        return bool(self.get('failed'))

    @property
    def status(self):
        return 'FAILED!' if self.failed else ('CHANGED' if self.get('changed') else 'SUCCESS')

    @property
    def output(self):
        return self.get('_output', '')


@pytest.fixture(scope='session')
def run(lab, tmp_path_factory):
    """run(module, args, check=False, diff=False, site='target'): the module run once through ansible-playbook by
    the shared harness of tests/integration/modules, SOAP calls counted on `site`."""
    from ansible_collections.replicator.vsphere.tests.integration.modules.conftest import AnsibleModuleRunner
    runner = AnsibleModuleRunner(lab, str(tmp_path_factory.mktemp('replica-modules')))

    def run_module(module, args, check=False, diff=False, site='target'):
        return ModuleResult(runner(module, check=check, diff=diff, site=site, connection={}, **args))
    return run_module


def connection_args(lab):
    """Module options for the lab: the source vCenter, and `target` for the DR host (same user and password)."""
    src, tgt = lab.state['sites']['source'], lab.state['sites']['target']
    return {'hostname': src['host'], 'port': src['port'], 'username': src['username'], 'password': src['password'],
            'ca_path': src['cafile'],
            'target': {'hostname': tgt['host'], 'port': tgt['port'], 'ca_path': tgt['cafile']}}


def target_args(lab):
    """Connection options straight to the target (replica_info only talks to the target)."""
    tgt = lab.state['sites']['target']
    return {'hostname': tgt['host'], 'port': tgt['port'], 'username': tgt['username'], 'password': tgt['password'],
            'ca_path': tgt['cafile']}


@pytest.fixture(scope='module')
def conn(lab):
    return connection_args(lab)


@pytest.fixture(scope='module')
def target_si(lab):
    return lab.connect('target')


@pytest.fixture(scope='module')
def source_si(lab):
    return lab.connect('source')


def add_nic(lab, vm, network='VM Network'):
    """Give a source VM a vmxnet3 NIC on `network`."""
    from pyVmomi import vim
    nic = vim.vm.device.VirtualVmxnet3(key=-1, backing=vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(
        deviceName=network))
    spec = vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation='add', device=nic)])
    lab.wait(vm.ReconfigVM_Task(spec))


def vm_named(si, name):
    """The VM called `name` on a site, or None."""
    from pyVmomi import vim
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        found = [vm for vm in view.view if vm.name == name]
    finally:
        view.DestroyView()
    return found[0] if found else None


def extra_config(vm):
    return dict((o.key, o.value) for o in vm.config.extraConfig or [])


def set_extra_config(lab, vm, pairs):
    """Write replicator.* keys on a replica directly, as another run (or disk_replicate) would."""
    from pyVmomi import vim
    spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=k, value=v) for k, v in pairs.items()])
    lab.wait(vm.ReconfigVM_Task(spec))
