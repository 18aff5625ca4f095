# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The package and its execution environment, without the lab (a few seconds):

- git holds no run artefacts;
- `ansible-galaxy collection build` of a checkout with junk planted at the top and nested (lab work directories,
  reports, Ansible's local state, caches, coverage, editor files) ships none of it and everything the collection is;
- execution-environment.yml yields an ansible-builder context from a checkout and from the installed collection;
  the context's collection install (ansible-galaxy) and introspection steps, run here as the image build runs them,
  give the Python libraries and a bindep file whose default selection holds the ssh client and the NBD tools on
  Debian and RHEL (ansible-builder's bindep step selects no profile)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import glob
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

from test_installed_collection import BIN, REPO, _clean_env  # pylint: disable=import-error

pytestmark = pytest.mark.timeout(120)

JUNK = (
    '.lab/reports/report.json', 'playbooks/.lab/inventory/reports/report.json', 'playbooks/.lab/inventory/hosts.yml',
    'playbooks/reports/report.json', 'playbooks/reports/report.md', 'roles/replicate/tasks/report.json',
    '.ansible/collections/x.txt', 'roles/replicate/.ansible/tmp/x', 'playbooks/.ansible/cp/x',
    '.pytest_cache/v/cache/lastfailed', 'plugins/modules/.pytest_cache/README.md',
    'plugins/module_utils/__pycache__/args.cpython-311.pyc', 'plugins/modules/stale.pyc', 'plugins/modules/old.pyo',
    '.coverage', 'plugins/.coverage', 'plugins/.coverage.host.1234', 'htmlcov/index.html', 'roles/htmlcov/index.html',
    'coverage.xml', 'plugins/coverage.xml',
    'roles/replicate/tasks/.main.yml.swp', 'roles/replicate/tasks/main.yml.swo', 'roles/replicate/tasks/main.yml~',
    'docs/awx.md~', 'plugins/modules/vm_power.py.orig', 'plugins/modules/vm_power.py.rej', 'docs/#awx.md#',
    'roles/proxy/defaults/main.yml.bak', '.idea/workspace.xml', 'roles/.idea/misc.xml', '.vscode/settings.json',
    'playbooks/.vscode/settings.json', 'docs/.DS_Store', 'playbooks/replicate.retry',
    'replicator-vsphere-0.0.9.tar.gz', 'playbooks/old-build.tar.gz',
)
NEEDED = (
    'MANIFEST.json', 'FILES.json', 'README.md', 'LICENSE', 'requirements.txt', 'bindep.txt',
    'execution-environment.yml', 'meta/runtime.yml', 'meta/execution-environment.yml',
    'plugins/modules/disk_replicate.py', 'plugins/module_utils/vsphere/args.py', 'plugins/lookup/run_identity.py',
    'plugins/action/copy_wait.py', 'plugins/doc_fragments/connection.py', 'roles/replicate/tasks/main.yml',
    'roles/replicate/tasks/connection.yml', 'roles/replicate/templates/report.md.j2', 'roles/replicate/tasks/report.yml',
    'roles/proxy/tasks/main.yml', 'roles/failover/tasks/main.yml', 'roles/failback/tasks/main.yml',
    'playbooks/replicate.yml', 'playbooks/demo.yml', 'playbooks/templates/demo_inventory.j2', 'docs/awx.md',
    'docs/README.md', 'changelogs/changelog.yaml',
)
# What the image's bindep step (`bindep -l newline`, no profile) must select, per platform.
NBD_TOOLS = {
    ('platform:dpkg', 'platform:debian'): {'openssh-client', 'nbdkit', 'qemu-utils', 'libnbd-bin'},
    ('platform:rpm', 'platform:redhat', 'platform:centos'): {'openssh-clients', 'nbdkit', 'qemu-img', 'libnbd'},
}


def _junk(name):
    """Why a path in the tarball or an installed collection is junk, or ''."""
    parts = name.rstrip('/').split('/')
    if parts[0] in ('tests', 'extensions', 'build') or name in ('Makefile', 'requirements-dev.txt', 'galaxy.yml'):
        return 'workbench'
    for part in parts:
        if part.startswith('.'):
            return 'dot-path'
        if part in ('__pycache__', 'reports', 'htmlcov') or part.startswith('#'):
            return 'cache, report or editor directory'
    last = parts[-1]
    if last in ('report.json', 'report.md', 'coverage.xml') or last.endswith(
            ('.pyc', '.pyo', '~', '.swp', '.swo', '.bak', '.orig', '.rej', '.retry', '.tar.gz')):
        return 'run artefact, cache or editor file'
    return ''


def _git_files():
    out = subprocess.run(['git', 'ls-files', '-z', '-co', '--exclude-standard'], cwd=REPO, capture_output=True,
                         check=True).stdout.decode()
    return [p for p in out.split('\0') if p and os.path.isfile(os.path.join(REPO, p))]


@pytest.fixture(scope='module')
def dirty(tmp_path_factory):
    """A copy of the checkout (what git has and would add) with junk planted at the top and nested."""
    base = tmp_path_factory.mktemp('package')
    src = base / 'src'
    for path in _git_files():
        dest = src / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(REPO, path), str(dest))
    for path in JUNK:
        dest = src / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text('junk\n')
    return base


@pytest.fixture(scope='module')
def built(dirty):
    env = _clean_env(dirty, dirty / 'collections')
    subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', '--force', '--output-path',
                    str(dirty / 'dist'), str(dirty / 'src')], env=env, check=True, capture_output=True, timeout=60)
    tarballs = glob.glob(str(dirty / 'dist' / 'replicator-vsphere-*.tar.gz'))
    assert len(tarballs) == 1
    return tarballs[0]


def test_git_holds_no_run_artefacts():
    tracked = subprocess.run(['git', 'ls-files', '-z'], cwd=REPO, capture_output=True, check=True).stdout.decode()
    found = [p for p in tracked.split('\0') if p and _junk(p) and not p.startswith(('tests/', 'extensions/'))
             and p not in ('.gitignore', '.ansible-lint', 'galaxy.yml', 'Makefile', 'requirements-dev.txt')
             and not p.startswith('.ci/')]
    assert not found, found
    ignored = subprocess.run(['git', 'check-ignore', '--no-index'] + list(JUNK), cwd=REPO, capture_output=True,
                             text=True, check=False).stdout.split()
    assert sorted(set(JUNK) - set(ignored)) == [], 'planted junk git would commit'


def test_build_ships_the_collection_and_none_of_the_planted_junk(built):
    with tarfile.open(built) as tar:
        names = [m.name for m in tar.getmembers()]
    missing = [n for n in NEEDED if n not in names]
    assert not missing, missing
    junk = sorted('%s (%s)' % (n, _junk(n)) for n in names if _junk(n))
    assert not junk, junk
    assert not [n for n in names if n.startswith('playbooks/') and 'report' in n]


def _context(ee_file, context, env):
    context.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([os.path.join(BIN, 'ansible-builder'), 'create', '-f', str(ee_file), '--context',
                           str(context)], env=env, cwd=str(context.parent), capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return context


def _image_steps(context, base, env):
    """The context's galaxy stage (ansible-galaxy collection install -r requirements.yml, with /build = _build) and
    its builder stage's introspection (the combined bindep and pip files the assemble script reads)."""
    build = context / '_build'
    requirements = yaml.safe_load((build / 'requirements.yml').read_text())
    for entry in requirements['collections']:
        assert entry['name'].startswith('/build/'), entry
        entry['name'] = str(build) + entry['name'][len('/build'):]
    (base / 'requirements.yml').write_text(yaml.safe_dump(requirements))
    collections = base / 'image-collections'
    env = _clean_env(base, collections)  # the image's own collections path, nothing installed yet
    subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', '-r', str(base / 'requirements.yml'),
                    '--collections-path', str(collections)], env=env, check=True, capture_output=True, timeout=60)
    installed = collections / 'ansible_collections' / 'replicator' / 'vsphere'
    names = [os.path.relpath(os.path.join(root, n), str(installed))
             for root, dirs, files in os.walk(str(installed)) for n in dirs + files]
    for needed in NEEDED:
        if needed != 'FILES.json':
            assert needed in names, needed
    assert not [n for n in names if _junk(n)], [n for n in names if _junk(n)]
    subprocess.run([sys.executable, str(build / 'scripts' / 'introspect.py'), 'introspect',
                    '--write-bindep', str(base / 'bindep.txt'), '--write-pip', str(base / 'pip.txt'),
                    str(collections)], env=env, check=True, capture_output=True, timeout=60)
    pip = (base / 'pip.txt').read_text()
    for library in ('pyvmomi', 'zstandard', 'xxhash'):
        assert library in pip, pip
    return (base / 'bindep.txt').read_text()


def _selected(bindep_text, platform):
    from bindep.depends import Depends  # installed with ansible-builder
    return set(rule[0] for rule in Depends(bindep_text).active_rules(['default'] + list(platform)))


def _check_ee(ee_file, base, env):
    context = _context(ee_file, base / 'context', env)
    containerfile = [p for p in ('Containerfile', 'Dockerfile') if (context / p).exists()][0]
    text = (context / containerfile).read_text()
    assert 'COPY _build /build' in text and 'ansible-galaxy collection install' in text and 'introspect' in text
    assert '/output/scripts/assemble' in text and 'install-from-bindep' in text
    bindep_text = _image_steps(context, base, env)
    for platform, packages in NBD_TOOLS.items():
        assert packages <= _selected(bindep_text, platform), (platform, bindep_text)
    return context


def test_bindep_selects_the_transport_tools_without_a_profile():
    with open(os.path.join(REPO, 'bindep.txt')) as f:
        text = f.read()
    for platform, packages in NBD_TOOLS.items():
        assert packages <= _selected(text, platform), platform


def test_execution_environment_from_a_checkout(dirty):
    env = _clean_env(dirty, dirty / 'collections')
    context = _check_ee(dirty / 'src' / 'execution-environment.yml', dirty / 'from-checkout', env)
    assert (context / '_build' / 'collection' / 'replicator.vsphere' / 'galaxy.yml').is_file()


def test_execution_environment_from_the_installed_collection(dirty, built):
    env = _clean_env(dirty, dirty / 'collections')
    subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', '-p', str(dirty / 'collections'),
                    built], env=env, check=True, capture_output=True, timeout=60)
    installed = dirty / 'collections' / 'ansible_collections' / 'replicator' / 'vsphere'
    context = _check_ee(installed / 'execution-environment.yml', dirty / 'from-installed', env)
    assert (context / '_build' / 'collection' / 'replicator.vsphere' / 'MANIFEST.json').is_file()
