# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs shared by every module; mirrored 1:1 by the doc fragments of the same names.

Names and environment variables follow vmware.vmware, so AWX's VMware credential type (which sets VMWARE_HOST,
VMWARE_USER, VMWARE_PASSWORD) and existing module_defaults work unchanged.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.module_utils.basic import env_fallback


def connection_argument_spec():
    """Options of the source vCenter / ESXi connection (doc fragment `connection`)."""
    return dict(
        hostname=dict(type='str', fallback=(env_fallback, ['VMWARE_HOST'])),
        username=dict(type='str', aliases=['user', 'admin'], fallback=(env_fallback, ['VMWARE_USER'])),
        password=dict(type='str', aliases=['pass', 'pwd'], no_log=True, fallback=(env_fallback, ['VMWARE_PASSWORD'])),
        port=dict(type='int', default=443, fallback=(env_fallback, ['VMWARE_PORT'])),
        validate_certs=dict(type='bool', default=True, fallback=(env_fallback, ['VMWARE_VALIDATE_CERTS'])),
        ca_path=dict(type='path', fallback=(env_fallback, ['VMWARE_CA_PATH'])),
        proxy_host=dict(type='str', fallback=(env_fallback, ['VMWARE_PROXY_HOST'])),
        proxy_port=dict(type='int', fallback=(env_fallback, ['VMWARE_PROXY_PORT'])),
        timeout=dict(type='int', default=60),
    )


def target_connection_argument_spec():
    """Option `target`: the DR vCenter / ESXi connection (doc fragment `target_connection`).

    Suboptions without a value inherit the source connection's, so a single vCenter serving both sites needs
    only `target: {}` (or nothing).
    """
    return dict(
        target=dict(type='dict', default={}, options=dict(
            hostname=dict(type='str'),
            username=dict(type='str'),
            password=dict(type='str', no_log=True),
            port=dict(type='int'),
            validate_certs=dict(type='bool'),
            ca_path=dict(type='path'),
            proxy_host=dict(type='str'),
            proxy_port=dict(type='int'),
        )),
    )


CONNECTION_KEYS = ('hostname', 'username', 'password', 'port', 'validate_certs', 'ca_path', 'proxy_host', 'proxy_port',
                   'timeout')


def connection_params(params):
    """The source connection settings out of a module's params."""
    return dict((key, params.get(key)) for key in CONNECTION_KEYS)


def target_connection_params(params):
    """The target connection settings: each unset `target` suboption falls back to the source connection's."""
    source = connection_params(params)
    target = params.get('target') or {}
    merged = dict(source)
    for key, value in target.items():
        if value is not None:
            merged[key] = value
    return merged


def receiver_argument_spec():
    """Where replica disks are written / their stores reached (doc fragment `receiver`): target_datastore_paths and
    the receiver host (this process when no host is given, else over SSH)."""
    return dict(
        target_datastore_paths=dict(type='dict', required=True),
        receiver=dict(type='dict', default={}, options=dict(
            host=dict(type='str'),
            user=dict(type='str'),
            port=dict(type='int'),
            identity_file=dict(type='path'),
            python=dict(type='str', default='python3'),
            ssh_options=dict(type='list', elements='str', default=[]),
            ssh_config=dict(type='str'),
        )),
    )


def vm_identity_argument_spec(prefix=''):
    """VM identity options (doc fragment `vm_identity`): moid > uuid > name (+ folder), scoped by datacenter."""
    return {
        prefix + 'name': dict(type='str'),
        prefix + 'uuid': dict(type='str'),
        prefix + 'use_instance_uuid': dict(type='bool', default=True),
        prefix + 'moid': dict(type='str'),
        prefix + 'folder': dict(type='str'),
        prefix + 'datacenter': dict(type='str'),
    }


def vm_identity_params(params, prefix=''):
    """The VM identity options out of a module's params, without the prefix."""
    keys = ('name', 'uuid', 'use_instance_uuid', 'moid', 'folder', 'datacenter')
    return dict((key, params.get(prefix + key)) for key in keys)
