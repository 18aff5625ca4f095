# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection as users get it: `ansible-galaxy collection build`, install the tarball into an empty collections
path, then run the collection's playbooks by name (`replicator.vsphere.demo`, `replicator.vsphere.replicate`)
against the lab with nothing of the checkout on the Python or collections path."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import glob
import json
import os
import subprocess
import sys
import tarfile

import pytest

pytestmark = pytest.mark.timeout(600)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.path.dirname(sys.executable)


def _clean_env(base, collections):
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'PYTHONPATH')))
    env.update(ANSIBLE_NOCOLOR='1', ANSIBLE_HOME=str(base / 'home'), ANSIBLE_LOCAL_TEMP=str(base / 'tmp'),
               ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='False')
    return env


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp('installed')
    env = _clean_env(base, base / 'collections')
    subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', '--force', '--output-path',
                    str(base / 'dist'), REPO], env=env, check=True, capture_output=True, timeout=120)
    tarballs = glob.glob(str(base / 'dist' / 'replicator-vsphere-*.tar.gz'))
    assert len(tarballs) == 1
    subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', '-p', str(base / 'collections'),
                    tarballs[0]], env=env, check=True, capture_output=True, timeout=120)
    return base, tarballs[0]


def test_tarball_holds_the_collection_and_nothing_of_the_workbench(installed):
    base, tarball = installed
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    for needed in ('MANIFEST.json', 'FILES.json', 'meta/runtime.yml', 'plugins/modules/disk_replicate.py',
                   'roles/replicate/tasks/main.yml', 'roles/proxy/tasks/main.yml', 'playbooks/replicate.yml',
                   'playbooks/demo.yml', 'requirements.txt', 'LICENSE'):
        assert needed in names, needed
    for name in names:
        assert not name.startswith(('tests/', '.venv', '.build', '.lab', 'extensions/', '.ci')), name
    listed = subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'list', 'replicator.vsphere'],
                            env=_clean_env(base, base / 'collections'), capture_output=True, text=True, check=True)
    assert str(base / 'collections') in listed.stdout


def test_installed_playbooks_run_by_name_against_the_lab(lab, installed):
    base, _tarball = installed
    vm = lab.new_vm('inst01', disks_mib=(6,), cbt=False, seed=41, power_on=True)
    try:
        lab.labctl('inventory', '--output', base / 'inventory')
        hosts_file = base / 'inventory' / 'hosts.yml'
        hosts = json.loads(hosts_file.read_text().split('\n', 1)[1])
        local = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}
        hosts['all']['children']['replicated_vms']['hosts'] = {'inst01': local}
        hosts_file.write_text('---\n' + json.dumps(hosts))
        env = _clean_env(base, base / 'collections')
        play = [os.path.join(BIN, 'ansible-playbook'), '-i', str(base / 'inventory')]

        demo = subprocess.run(play + ['replicator.vsphere.demo'], env=env, capture_output=True, text=True, timeout=300,
                              check=False)
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-2000:]
        assert 'inst01' in demo.stdout

        run = subprocess.run(play + ['replicator.vsphere.replicate'], env=env, capture_output=True, text=True,
                             timeout=400, check=False)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        report = json.loads((base / 'reports' / 'report.json').read_text())
        assert [v['status'] for v in report['vms'] if v['vm'] == 'inst01'] == ['success']
        compare = lab.labctl('compare', 'inst01')
        assert compare['equal'], compare
        # the modules that ran came from the installed copy, not the checkout
        assert os.path.isfile(base / 'collections' / 'ansible_collections' / 'replicator' / 'vsphere' / 'plugins'
                              / 'modules' / 'disk_replicate.py')
        assert REPO not in run.stdout
    finally:
        lab.destroy_vm(vm)


# The execution environment, from a checkout and from this installed collection: test_package.py.
