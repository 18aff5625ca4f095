# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # Mirrors vsphere_args.receiver_argument_spec() one to one.
    DOCUMENTATION = r'''
options:
  target_datastore_paths:
    description:
      - Target datastore names mapped to their mount points on the receiver host (this host for a local receiver).
        Replica disks and their restore-point journals are read and written there, nowhere else.
    type: dict
    required: true
  receiver:
    description:
      - The host where the replica disks are written and their restore points kept. Without O(receiver.host) this
        process does it.
      - With a host, the work runs there over SSH (C(ssh host python3)); the code is sent on stdin, the host needs
        only Python 3 with the zstandard and xxhash libraries.
    type: dict
    default: {}
    suboptions:
      host:
        description: The target proxy.
        type: str
      user:
        description: SSH user.
        type: str
      port:
        description: SSH port.
        type: int
      identity_file:
        description: SSH private key.
        type: path
      python:
        description: The Python interpreter on the receiver host.
        type: str
        default: python3
      ssh_options:
        description: Extra C(-o Key=Value) options for ssh, as C(Key=Value) strings.
        type: list
        elements: str
        default: []
      ssh_config:
        description: An ssh_config file to use (V(none) ignores every config file).
        type: str
'''
