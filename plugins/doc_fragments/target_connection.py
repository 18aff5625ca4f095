# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # Mirrors vsphere_args.target_connection_argument_spec() one to one.
    DOCUMENTATION = r'''
options:
  target:
    description:
      - The vCenter or ESXi host of the disaster-recovery site, where the replicas live.
      - Each suboption left unset takes the value of the source connection option of the same name, so a
        vCenter that manages both sites needs nothing here.
    type: dict
    default: {}
    suboptions:
      hostname:
        description: The target vCenter or ESXi host.
        type: str
      username:
        description: The user name on the target.
        type: str
      password:
        description: The password of O(target.username).
        type: str
      port:
        description: The HTTPS port of the target SDK endpoint.
        type: int
      validate_certs:
        description: Verify the target's TLS certificate.
        type: bool
      ca_path:
        description: A PEM file with the CA certificate(s) of the target.
        type: path
      proxy_host:
        description: An HTTP proxy to reach the target through.
        type: str
      proxy_port:
        description: The port of O(target.proxy_host).
        type: int
'''
