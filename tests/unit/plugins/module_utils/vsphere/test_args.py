# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.args import (
    connection_argument_spec, connection_params, target_connection_argument_spec, target_connection_params,
    vm_identity_argument_spec, vm_identity_params,
)


def _module(args, spec=None):
    full = connection_argument_spec()
    full.update(spec or {})
    with patch_module_args(args):
        return AnsibleModule(argument_spec=full, supports_check_mode=True)


def test_env_fallbacks_fill_the_connection(monkeypatch):
    monkeypatch.setenv('VMWARE_HOST', 'vc.example.test')
    monkeypatch.setenv('VMWARE_USER', 'admin@vsphere.local')
    monkeypatch.setenv('VMWARE_PASSWORD', 's3cret')
    monkeypatch.setenv('VMWARE_PORT', '8443')
    monkeypatch.setenv('VMWARE_VALIDATE_CERTS', 'no')
    params = connection_params(_module({}).params)
    assert params['hostname'] == 'vc.example.test'
    assert params['username'] == 'admin@vsphere.local'
    assert params['password'] == 's3cret'
    assert params['port'] == 8443
    assert params['validate_certs'] is False


def test_explicit_options_win_over_env(monkeypatch):
    monkeypatch.setenv('VMWARE_HOST', 'env-host')
    params = connection_params(_module({'hostname': 'explicit', 'user': 'u', 'pwd': 'p'}).params)
    assert params['hostname'] == 'explicit'
    assert params['username'] == 'u'
    assert params['password'] == 'p'
    assert params['port'] == 443
    assert params['validate_certs'] is True


def test_password_is_no_log():
    spec = connection_argument_spec()
    assert spec['password']['no_log'] is True
    assert target_connection_argument_spec()['target']['options']['password']['no_log'] is True


def test_target_inherits_unset_suboptions(monkeypatch):
    for name in ('VMWARE_HOST', 'VMWARE_USER', 'VMWARE_PASSWORD', 'VMWARE_PORT'):
        monkeypatch.delenv(name, raising=False)
    module = _module({'hostname': 'src', 'username': 'u', 'password': 'p', 'port': 1443,
                      'target': {'hostname': 'dr', 'port': 2443}}, target_connection_argument_spec())
    target = target_connection_params(module.params)
    assert target['hostname'] == 'dr'
    assert target['port'] == 2443
    assert target['username'] == 'u'
    assert target['password'] == 'p'
    assert connection_params(module.params)['hostname'] == 'src'


def test_vm_identity_prefix():
    spec = vm_identity_argument_spec('source_')
    assert 'source_name' in spec and 'source_moid' in spec
    params = vm_identity_params({'source_name': 'app01', 'source_moid': None, 'source_use_instance_uuid': True},
                                'source_')
    assert params['name'] == 'app01'
    assert params['moid'] is None


@pytest.mark.parametrize('value', ['yes', 'true', '1'])
def test_validate_certs_env_true(monkeypatch, value):
    monkeypatch.setenv('VMWARE_VALIDATE_CERTS', value)
    assert connection_params(_module({'hostname': 'h'}).params)['validate_certs'] is True
