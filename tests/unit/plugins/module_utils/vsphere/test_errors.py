# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from pyVmomi import vim, vmodl

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import (
    NotFound, VsphereError, fault_message, fault_name, from_fault,
)


def test_fault_name_of_real_pyvmomi_faults():
    assert fault_name(vim.fault.InvalidLogin()) == 'InvalidLogin'
    assert fault_name(vmodl.fault.ManagedObjectNotFound()) == 'ManagedObjectNotFound'
    assert fault_name(ValueError('x')) == 'ValueError'


def test_fault_message_prefers_msg_then_fault_messages():
    assert fault_message(vim.fault.FileFault(msg='disk locked')) == 'disk locked'
    fault = vim.fault.InvalidState(faultMessage=[vmodl.LocalizableMessage(key='a', message='VM is busy')])
    assert fault_message(fault) == 'VM is busy'
    assert fault_message(RuntimeError('boom')) == 'boom'


def test_from_fault_adds_class_and_hint():
    err = from_fault(vim.fault.InvalidLogin(msg='Cannot complete login'), 'Login to vc:443', task='task-1')
    assert isinstance(err, VsphereError)
    assert err.fault == 'InvalidLogin'
    assert 'Login to vc:443 failed: Cannot complete login (InvalidLogin)' == err.msg
    assert 'password' in err.hint
    assert err.to_result() == {'msg': err.msg, 'fault': 'InvalidLogin', 'hint': err.hint, 'task': 'task-1'}


def test_from_fault_unknown_fault_has_no_hint():
    err = from_fault(vim.fault.DuplicateName(msg='dup'), 'Renaming', NotFound)
    assert isinstance(err, NotFound)
    assert err.hint is None
    assert 'hint' not in err.to_result()


def test_a_fault_without_a_message_is_one_line_never_an_object_dump():
    fault = vmodl.fault.MethodNotFound(receiver=vim.SearchIndex('SearchIndex'), method='FindAllByUuid')
    assert '{' in str(fault)                     # what pyVmomi itself prints: an 8-line dump
    err = from_fault(fault, 'Looking up the replica')
    assert err.msg == ('Looking up the replica failed: method FindAllByUuid, receiver vim.SearchIndex:SearchIndex '
                       '(MethodNotFound)'), err.msg
    assert from_fault(vim.fault.InvalidLogin(), 'Login').msg == 'Login failed: InvalidLogin'
