# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""config.changeVersion as vCenter keeps it: new after every change, stale reconfigures fail."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest
from pyVmomi import vim


def _extra(vm, key):
    return [o.value for o in vm.config.extraConfig if o.key == key]


def test_stale_change_version_is_concurrent_access(lab):
    vm = lab.new_vm('cv-test', disks_mib=(4,))
    try:
        first = vm.config.changeVersion
        assert first
        opt = vim.option.OptionValue(key='replicator.test', value='one')
        lab.wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeVersion=first, extraConfig=[opt])))
        second = vm.config.changeVersion
        assert second and second > first
        assert _extra(vm, 'replicator.test') == ['one']
        # a writer that read before the change loses: the task fails, nothing is applied
        stale = vim.option.OptionValue(key='replicator.test', value='two')
        with pytest.raises(vim.fault.ConcurrentAccess):
            lab.wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeVersion=first, extraConfig=[stale])))
        assert _extra(vm, 'replicator.test') == ['one'] and vm.config.changeVersion == second
        # no changeVersion in the spec: last writer wins, as in vCenter
        lab.wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(extraConfig=[stale])))
        assert _extra(vm, 'replicator.test') == ['two'] and vm.config.changeVersion > second
        # snapshots change the configuration too
        before = vm.config.changeVersion
        snap = lab.wait(vm.CreateSnapshot_Task('s', '', False, False))
        assert vm.config.changeVersion > before
        lab.wait(snap.RemoveSnapshot_Task(False))
    finally:
        lab.destroy_vm(vm)
