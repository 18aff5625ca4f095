# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ports as docs/awx.md "Ports" sets them up, through ansible-runner: both lab sites listen on ports other than 443
(and other than each other's). The DR site credential type is read from docs/awx.md and its injector rendered as AWX
renders it (with the optional port, and without one); the source port comes from the inventory
(`replicate_source.port`, the built-in VMware credential has none) or from VMWARE_PORT. Each run resolves the
connections with the roles' connection step and reads both sites with them."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import sys

import jinja2
import pytest

from integration_servers import ansible_settings
import yaml

ansible_runner = pytest.importorskip('ansible_runner')

pytestmark = pytest.mark.timeout(300)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CREDENTIAL_ENV = ('VMWARE_HOST', 'VMWARE_USER', 'VMWARE_PASSWORD', 'VMWARE_PORT', 'VMWARE_VALIDATE_CERTS',
                  'VMWARE_CA_PATH', 'REPLICATOR_TARGET_HOST', 'REPLICATOR_TARGET_USER', 'REPLICATOR_TARGET_PASSWORD',
                  'REPLICATOR_TARGET_PORT')
PLAYBOOK = '''
- name: Both sites through the resolved connections
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Resolve the connections
      ansible.builtin.include_role:
        name: replicator.vsphere.replicate
        tasks_from: connection
    - name: Ports
      ansible.builtin.debug:
        msg: "PORTS {{ {'source': replicate_source_conn.port | default(443) | int,
                        'target': replicate_target_conn.port | default(443) | int} | to_json }}"
    - name: Source site
      replicator.vsphere.vm_disk_info:
        hostname: "{{ replicate_source_conn.hostname }}"
        port: "{{ replicate_source_conn.port | default(443) }}"
        username: "{{ replicate_source_conn.username }}"
        password: "{{ replicate_source_conn.password }}"
        ca_path: "{{ replicate_source_conn.ca_path }}"
    - name: DR site
      replicator.vsphere.replica_info:
        hostname: "{{ replicate_target_conn.hostname }}"
        port: "{{ replicate_target_conn.port | default(443) }}"
        username: "{{ replicate_target_conn.username }}"
        password: "{{ replicate_target_conn.password }}"
        ca_path: "{{ replicate_target_conn.ca_path }}"
'''


def _dr_site_credential_type():
    """The DR site credential type of docs/awx.md: (fields, env injector)."""
    with open(os.path.join(REPO, 'docs', 'awx.md')) as f:
        text = f.read()
    section = text[text.index('Custom credential type *DR site*'):]
    block = yaml.safe_load(re.search(r'```yaml\n(.*?)```', section, re.S).group(1))
    return block['fields'], block['env']


def _inject(injector, inputs, fields):
    """AWX renders each injector template with the credential's inputs; an optional field left empty is ''."""
    namespace = dict((field['id'], inputs.get(field['id'], '')) for field in fields)
    return dict((name, jinja2.Environment().from_string(template).render(**namespace))
                for name, template in injector.items())


@pytest.fixture
def setup(lab, tmp_path, monkeypatch):
    for name in CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)
    sites = lab.state['sites']
    assert 443 not in (sites['source']['port'], sites['target']['port'])
    assert sites['source']['port'] != sites['target']['port']
    (tmp_path / 'project').mkdir()
    (tmp_path / 'runner').mkdir()  # ansible-runner's private data directory
    (tmp_path / 'project' / 'ports.yml').write_text(PLAYBOOK)
    (tmp_path / 'inventory' / 'group_vars').mkdir(parents=True)
    (tmp_path / 'inventory' / 'hosts.yml').write_text(
        '---\n' + json.dumps({'all': {'hosts': {'localhost': {'ansible_connection': 'local',
                                                              'ansible_python_interpreter': sys.executable}}}}))
    return tmp_path, sites


def _run(base, ident, group_vars, env):
    (base / 'inventory' / 'group_vars' / 'all.yml').write_text('---\n' + json.dumps(group_vars))
    env = dict(env, **ansible_settings(base))
    runner = ansible_runner.run(private_data_dir=str(base / 'runner'), ident=ident,
                                playbook=str(base / 'project' / 'ports.yml'), inventory=str(base / 'inventory'),
                                envvars=env, quiet=True, timeout=240)
    stdout = runner.stdout.read()
    assert runner.rc == 0 and runner.status == 'successful', stdout[-4000:]
    return json.loads(re.search(r'PORTS (\{.*?\})', stdout).group(1).replace('\\"', '"'))


def test_dr_site_credential_carries_the_port(setup):
    base, sites = setup
    fields, injector = _dr_site_credential_type()
    assert 'port' in [field['id'] for field in fields]
    source, target = sites['source'], sites['target']
    vmware = {'VMWARE_HOST': source['host'], 'VMWARE_USER': source['username'],  # built-in VMware vCenter
              'VMWARE_PASSWORD': source['password'], 'VMWARE_VALIDATE_CERTS': 'True'}
    dr = _inject(injector, {'hostname': target['host'], 'username': target['username'],
                            'password': target['password'], 'port': str(target['port'])}, fields)
    assert dr['REPLICATOR_TARGET_PORT'] == str(target['port'])
    ca = {'replicate_target': {'ca_path': target['cafile']}}

    # the source port in the inventory (the built-in credential has no port), the target's from the credential
    ports = _run(base, 'inventory-port', dict(ca, replicate_source={'port': source['port'], 'ca_path': source['cafile']}),
                 dict(vmware, **dr))
    assert ports == {'source': source['port'], 'target': target['port']}

    # the source port from VMWARE_PORT (a custom source credential type), nothing about ports in the inventory
    ports = _run(base, 'env-port', dict(ca, replicate_source={'ca_path': source['cafile']}),
                 dict(vmware, VMWARE_PORT=str(source['port']), **dr))
    assert ports == {'source': source['port'], 'target': target['port']}

    # the credential's port left empty: the target's port comes from the inventory (and would else be the source's)
    dr_empty = _inject(injector, {'hostname': target['host'], 'username': target['username'],
                                  'password': target['password']}, fields)
    assert dr_empty['REPLICATOR_TARGET_PORT'] == ''
    ports = _run(base, 'inventory-target-port',
                 {'replicate_source': {'port': source['port'], 'ca_path': source['cafile']},
                  'replicate_target': {'port': target['port'], 'ca_path': target['cafile']}}, dict(vmware, **dr_empty))
    assert ports == {'source': source['port'], 'target': target['port']}
