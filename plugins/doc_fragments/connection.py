# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # Mirrors vsphere_args.connection_argument_spec() one to one.
    DOCUMENTATION = r'''
options:
  hostname:
    description:
      - The vCenter or ESXi host that serves the source VMs.
      - If not set, the value of the E(VMWARE_HOST) environment variable is used.
    type: str
  username:
    description:
      - The user name to log in with.
      - If not set, the value of the E(VMWARE_USER) environment variable is used.
    type: str
    aliases: [user, admin]
  password:
    description:
      - The password of O(username).
      - If not set, the value of the E(VMWARE_PASSWORD) environment variable is used.
    type: str
    aliases: [pass, pwd]
  port:
    description:
      - The HTTPS port of the SDK endpoint.
      - If not set, the value of the E(VMWARE_PORT) environment variable is used.
    type: int
    default: 443
  validate_certs:
    description:
      - Verify the server's TLS certificate.
      - Set to V(false) only for labs with self-signed certificates; prefer O(ca_path).
      - If not set, the value of the E(VMWARE_VALIDATE_CERTS) environment variable is used.
    type: bool
    default: true
  ca_path:
    description:
      - A PEM file with the CA certificate(s) that signed the server certificate, used when O(validate_certs=true).
      - If not set, the value of the E(VMWARE_CA_PATH) environment variable is used, else the system trust store.
    type: path
  proxy_host:
    description:
      - An HTTP proxy to reach the SDK endpoint through.
      - If not set, the value of the E(VMWARE_PROXY_HOST) environment variable is used.
    type: str
  proxy_port:
    description:
      - The port of O(proxy_host).
      - If not set, the value of the E(VMWARE_PROXY_PORT) environment variable is used.
    type: int
  timeout:
    description:
      - Seconds to wait for the SDK endpoint to answer one request.
    type: int
    default: 60
notes:
  - All modules of this collection belong to the action group C(replicator.vsphere.vsphere), so the connection
    options can be set once with C(module_defaults).
requirements:
  - pyvmomi >= 8.0.3.0
'''
