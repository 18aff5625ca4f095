# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: run_identity
author: replicator.vsphere contributors (@replicator-vsphere)
version_added: 0.2.0
short_description: A unique id for this replication run and the controller process that runs it
description:
  - Returns the identity of the ansible-playbook process that evaluates it. That is a new run id that never
    repeats (the UTC start second plus 24 random bits, so two runs started in the same second differ), the
    controller's host name, the process id, the kernel boot id and the process start time.
  - The replicate, failover and failback roles fix it once per run (C(run_once)) and give it to the modules that
    lock a replica and copy disks. A later run on the same host then knows at once when that process has ended
    (killed, cancelled), and the copies of a run stop by themselves when it has.
  - Each evaluation makes a new run id. Fix it in a fact, do not template it in several places.
options:
  _terms:
    description: An optional run id to use instead of a new one.
    required: false
    type: list
    elements: str
'''

EXAMPLES = r'''
- name: Fix the identity of this run
  ansible.builtin.set_fact:
    my_run: "{{ lookup('replicator.vsphere.run_identity') }}"
  run_once: true
'''

RETURN = r'''
_raw:
  description: The run's identity, one dict.
  type: list
  elements: dict
  contains:
    id:
      description: The run id, for example C(20261205T081502Z-3f9a1c).
      type: str
    host:
      description: The controller's host name.
      type: str
    pid:
      description: The ansible-playbook process id.
      type: int
    boot_id:
      description: The kernel boot id of the controller (tells a process of this boot from one of an earlier boot).
      type: str
    start:
      description: The process start time in clock ticks since boot (tells the process from a later one with the
        same id).
      type: int
'''

from ansible.plugins.lookup import LookupBase

from ansible_collections.replicator.vsphere.plugins.module_utils.replica.run_owner import identity


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        run_id = str(terms[0]) if terms and terms[0] else None
        return [identity(run_id)]
