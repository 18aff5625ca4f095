# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the collection's modules for real, through `ansible-playbook` on localhost, against the lab.

``ansible_module(name, check=False, diff=False, site='source', connection=None, **args)`` returns the module's
JSON result, with ``soap`` ({method: calls}) and ``soap_total`` measured by the lab's per-method counter.
"""

from __future__ import absolute_import, division, print_function

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from integration_servers import free_port

__metaclass__ = type

# The module task gets its options from a vars file (no secret on a command line); the save_result callback
# beside this file writes its result, diff included, as JSON.
PLAYBOOK = '''- hosts: localhost
  gather_facts: false
  tasks:
    - name: Module under test
      replicator.vsphere.%s: "{{ module_args }}"
'''
HERE = os.path.dirname(os.path.abspath(__file__))


def _collections_root():
    spec = importlib.util.find_spec('ansible_collections.replicator.vsphere')
    location = list(spec.submodule_search_locations)[0]
    return os.path.dirname(os.path.dirname(os.path.dirname(location)))


class AnsibleModuleRunner(object):

    def __init__(self, lab, tmpdir):
        self.lab = lab
        self.tmpdir = tmpdir
        self.runs = 0
        self.env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=_collections_root(), ANSIBLE_NOCOLOR='1',
                        ANSIBLE_DEPRECATION_WARNINGS='0', ANSIBLE_LOCAL_TEMP=tmpdir,
                        ANSIBLE_HOME=os.path.join(tmpdir, 'home'), ANSIBLE_RETRY_FILES_ENABLED='0',
                        ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, 'callback_plugins'),
                        ANSIBLE_CALLBACKS_ENABLED='save_result')

    free_port = staticmethod(free_port)  # a loopback port nothing listens on, for the unreachable-host tests

    def connection(self, site='source'):
        s = self.lab.state['sites'][site]
        return dict(hostname=s['host'], port=s['port'], username=s['username'], password=s['password'],
                    ca_path=s['cafile'])

    def __call__(self, module, check=False, diff=False, site='source', connection=None, **args):
        params = dict(self.connection(site) if connection is None else connection)
        params.update(args)
        self.runs += 1
        base = os.path.join(self.tmpdir, 'run%d' % self.runs)
        with open(base + '.vars.json', 'w') as f:
            json.dump({'module_args': params, 'ansible_python_interpreter': sys.executable}, f)
        with open(base + '.yml', 'w') as f:
            f.write(PLAYBOOK % module)
        cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
               '-e', '@' + base + '.vars.json', base + '.yml']
        if check:
            cmd.append('--check')
        if diff:
            cmd.append('--diff')
        self.lab.control(site, 'counters/reset', method='POST')
        env = dict(self.env, MODULE_RESULT_FILE=base + '.result.json')
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
        soap = self.lab.control(site, 'counters')
        if not os.path.exists(base + '.result.json'):
            raise AssertionError('ansible-playbook wrote no result (rc %d):\n%s\n%s'
                                 % (proc.returncode, proc.stdout, proc.stderr))
        with open(base + '.result.json') as f:
            result = json.load(f)
        result['_output'] = proc.stdout + proc.stderr
        result['soap'] = soap
        result['soap_total'] = sum(soap.values())
        return result


@pytest.fixture(scope='session')
def ansible_module(lab, tmp_path_factory):
    return AnsibleModuleRunner(lab, str(tmp_path_factory.mktemp('ansible')))


@pytest.fixture(scope='session')
def si(lab):
    """A pyVmomi session on the source site, to set up and check what the modules did."""
    return lab.connect('source')
