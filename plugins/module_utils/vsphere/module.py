# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module shares: its AnsibleModule with the connection options, and a runner that logs in, calls
the module's body, turns typed errors into fail_json, and always logs out."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.args import (
    connection_argument_spec, connection_params,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.client import (
    HAS_PYVMOMI, PYVMOMI_IMPORT_ERROR, connect,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import VsphereError


def vsphere_module(argument_spec, supports_check_mode=True, **kwargs):
    """An AnsibleModule whose spec is the module's own options plus the shared connection options."""
    spec = connection_argument_spec()
    spec.update(argument_spec)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=supports_check_mode, **kwargs)
    if not HAS_PYVMOMI:
        module.fail_json(msg=missing_required_lib('pyvmomi'), exception=str(PYVMOMI_IMPORT_ERROR))
    return module


def run_module(module, body, settings=None):
    """Log in, `result = body(client)`, exit_json(**result); errors become fail_json with fault and hint."""
    client = None
    try:
        client = connect(settings or connection_params(module.params))
        result = body(client)
    except VsphereError as exc:
        if client is not None:
            client.close()
        module.fail_json(**exc.to_result())
    except Exception as exc:  # pylint: disable=broad-except
        if client is not None:
            client.close()
        module.fail_json(msg='Unexpected error: %s: %s' % (type(exc).__name__, exc), exception=traceback.format_exc())
    client.close()
    module.exit_json(**result)
