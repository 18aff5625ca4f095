#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: copy_wait
short_description: Wait for disk copies started as async jobs, showing their progress
version_added: 0.2.0
description:
  - Waits until every async job of O(jobs) (M(replicator.vsphere.disk_replicate) started with C(async) and
    C(poll=0)) has finished or O(timeout) has passed, and returns their results in the order given.
  - Every O(poll_interval) seconds it prints one line per unfinished copy with its stage, percent, bytes, rate and
    time left, read from the copy's O(jobs[].progress_file). The lines appear in ansible-playbook's output at the
    default verbosity and in the job events of AWX / Automation Controller, instead of one "FAILED - RETRYING"
    line per poll.
  - Runs where the jobs run (C(delegate_to) their host). An action plugin polls the host, and the module reads the
    job's result file and progress file there.
author:
  - replicator.vsphere contributors (@replicator-vsphere)
attributes:
  check_mode:
    support: full
    description: The module only reads.
  action:
    support: full
    description: An action plugin polls the jobs' host and prints the progress lines on the controller.
options:
  jobs:
    description: The async jobs to wait for.
    type: list
    elements: dict
    required: true
    suboptions:
      jid:
        description: The job id (C(ansible_job_id) of the registered async task).
        type: str
        required: true
      results_file:
        description: The job's result file (C(results_file) of the registered async task).
        type: path
        required: true
      progress_file:
        description: The progress file the copy writes (O(replicator.vsphere.disk_replicate#module:progress_file)).
        type: path
      label:
        description: How the copy is named in the progress lines.
        type: str
  poll_interval:
    description: Seconds between two polls (and two progress lines of a copy).
    type: int
    default: 5
  timeout:
    description: Seconds to wait at the most; copies still running then are returned failed.
    type: int
    default: 86400
'''

EXAMPLES = r'''
- name: Copy every disk of the VM (in parallel)
  replicator.vsphere.disk_replicate:
    name: app01
    snapshot: "{{ snap.snapshot.moid }}"
    disk_key: "{{ item.key }}"
    target_datastore_paths: "{{ paths }}"
    progress_file: "/var/tmp/replicator-vsphere/progress/app01-{{ item.key }}.json"
  loop: "{{ snap.snapshot.disks }}"
  async: 86400
  poll: 0
  register: copies

- name: List the copies with their progress files
  ansible.builtin.set_fact:
    waits: "{{ waits | default([]) + [{'jid': item.ansible_job_id, 'results_file': item.results_file,
      'label': 'app01 disk ' ~ item.item.key,
      'progress_file': '/var/tmp/replicator-vsphere/progress/app01-' ~ item.item.key ~ '.json'}] }}"
  loop: "{{ copies.results }}"

- name: Wait for every copy, with progress
  replicator.vsphere.copy_wait:
    jobs: "{{ waits }}"
  register: copied
'''

RETURN = r'''
results:
  description: The result of each job, in the order of O(jobs); a job still running at the timeout is failed.
  returned: always
  type: list
  elements: dict
jobs:
  description: What one poll of the module found for each job (C(jid), C(finished), C(result), C(progress)).
  returned: always
  type: list
  elements: dict
'''

import json
import os

from ansible.module_utils.basic import AnsibleModule


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def poll(job):
    """What the job's files say now: {'jid', 'finished', 'result', 'progress'}."""
    found = {'jid': job['jid'], 'label': job.get('label'), 'finished': False, 'result': None, 'progress': None}
    if not os.path.exists(job['results_file']):
        found.update(finished=True, result={'failed': True, 'msg': 'could not find job %s (%s)'
                                            % (job['jid'], job['results_file'])})
        return found
    data = _read_json(job['results_file'])
    if data is not None and 'started' not in data:          # async_wrapper replaces the start record with the result
        found.update(finished=True, result=data)
    elif data is not None and data.get('finished'):
        found.update(finished=True, result=data)
    if job.get('progress_file') and not found['finished']:
        found['progress'] = _read_json(job['progress_file'])
    return found


def main():
    module = AnsibleModule(argument_spec=dict(
        jobs=dict(type='list', elements='dict', required=True, options=dict(
            jid=dict(type='str', required=True),
            results_file=dict(type='path', required=True),
            progress_file=dict(type='path'),
            label=dict(type='str'),
        )),
        poll_interval=dict(type='int', default=5),
        timeout=dict(type='int', default=86400),
    ), supports_check_mode=True)
    jobs = [poll(job) for job in module.params['jobs']]
    module.exit_json(changed=False, jobs=jobs, finished=all(j['finished'] for j in jobs),
                     results=[j['result'] for j in jobs])


if __name__ == '__main__':
    main()
