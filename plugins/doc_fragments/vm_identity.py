# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # Mirrors vsphere_args.vm_identity_argument_spec() one to one.
    DOCUMENTATION = r'''
options:
  name:
    description:
      - The name of the VM.
      - A name that matches several VMs is an error; add O(folder) and O(datacenter), or use O(uuid) or O(moid).
      - One of O(name), O(uuid) or O(moid) is required. When several are given, O(moid) wins over O(uuid),
        and O(uuid) over O(name).
    type: str
  uuid:
    description:
      - The UUID of the VM; an instance UUID unless O(use_instance_uuid=false).
    type: str
  use_instance_uuid:
    description:
      - Whether O(uuid) is the instance UUID (V(true)) or the BIOS UUID (V(false)).
    type: bool
    default: true
  moid:
    description:
      - The managed object ID of the VM, for example V(vm-42).
    type: str
  folder:
    description:
      - The VM folder of O(name), relative to the datacenter's VM folder (V(prod/db)) or as a full inventory path
        (V(DC1/vm/prod/db)). Needs O(datacenter).
    type: str
  datacenter:
    description:
      - The datacenter that scopes the search.
    type: str
'''
