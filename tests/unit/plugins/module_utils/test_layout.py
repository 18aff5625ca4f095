# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The layout of module_utils: every file in a package, each package importing only the layers below it, and the
receiver bundle (what travels to the receiver host) importing nothing but itself and the standard library.

The rules live here; docs/architecture.md shows the same table and a test holds the two equal."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ast
import os
import re
import sys

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.mover import ssh_transport

PKG = 'ansible_collections.replicator.vsphere.plugins.module_utils'
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
MODULE_UTILS = os.path.join(REPO, 'plugins', 'module_utils')

# package -> the packages its files may import (itself included)
ALLOWED = {
    'datapath': {'datapath'},
    'store': {'datapath', 'store'},
    'receiver': {'datapath', 'store', 'receiver'},
    'mover': {'datapath', 'store', 'receiver', 'mover'},
    'vsphere': {'vsphere'},
    'hotadd': {'vsphere', 'hotadd'},
    'replica': {'datapath', 'store', 'receiver', 'mover', 'vsphere', 'hotadd', 'replica'},
}
# Third-party libraries a receiver host needs (docs/transports.md); everything else the bundle imports must be
# the standard library.
BUNDLE_THIRD_PARTY = {'zstandard', 'xxhash'}


def _package_files():
    for package in sorted(os.listdir(MODULE_UTILS)):
        folder = os.path.join(MODULE_UTILS, package)
        if os.path.isdir(folder) and not package.startswith(('.', '_')):
            for name in sorted(os.listdir(folder)):
                if name.endswith('.py'):
                    yield package, os.path.join(folder, name)


def imports(source):
    """(line, absolute module name) of every import in `source`, at any depth (function-level imports count)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, '.' * node.level + (node.module or '')))
            elif node.module == PKG:       # from <module_utils> import <package>
                found.extend((node.lineno, '%s.%s' % (PKG, alias.name)) for alias in node.names)
            else:
                found.append((node.lineno, node.module))
    return found


def layer_violations(package, source, allowed=None):
    """What a file of `package` imports from module_utils outside the packages it may use."""
    allowed = ALLOWED[package] if allowed is None else allowed
    bad = []
    for line, name in imports(source):
        if name.startswith('.'):
            bad.append((line, name, 'relative import (use the full collection path)'))
        elif name == PKG or name.startswith(PKG + '.'):
            target = name[len(PKG) + 1:].split('.')[0]
            if target not in allowed:
                bad.append((line, name, '%s may not import %s' % (package, target or 'module_utils itself')))
    return bad


def _stdlib():
    names = getattr(sys, 'stdlib_module_names', None)
    if names is None:  # pragma: no cover - Python < 3.10
        pytest.skip('needs sys.stdlib_module_names (Python 3.10+)')
    return set(names) | {'__future__'}


def bundle_violations(source):
    """What a bundle file imports that will not be on the receiver host: another module_utils package, Ansible, or
    a library other than the standard library and the receiver's own requirements."""
    inside = {'%s.%s' % (PKG, p) for p in ssh_transport.BUNDLE_PACKAGES}
    stdlib = _stdlib()
    bad = []
    for line, name in imports(source):
        if name == PKG or name.startswith(PKG + '.'):
            if not any(name == p or name.startswith(p + '.') for p in inside):
                bad.append((line, name, 'outside the bundle'))
        elif name.split('.')[0] not in stdlib | BUNDLE_THIRD_PARTY | {'Queue'}:   # Queue: the Python 2 fallback
            bad.append((line, name, 'not on the receiver host'))
    return bad


def _read(path):
    with open(path) as f:
        return f.read()


def test_every_module_utils_file_sits_in_a_known_package():
    loose = [n for n in os.listdir(MODULE_UTILS) if n.endswith('.py') and n != '__init__.py']
    assert loose == [], 'module_utils files outside a package: %s' % loose
    packages = sorted(p for p in os.listdir(MODULE_UTILS) if os.path.isdir(os.path.join(MODULE_UTILS, p))
                      and not p.startswith(('.', '_')))
    assert packages == sorted(ALLOWED)
    for package in packages:
        assert os.path.exists(os.path.join(MODULE_UTILS, package, '__init__.py')), package


def test_each_package_imports_only_the_layers_it_may_use():
    found = []
    for package, path in _package_files():
        found.extend((os.path.relpath(path, REPO), line, why)
                     for line, _name, why in layer_violations(package, _read(path)))
    assert found == []


def test_the_bundle_is_exactly_its_packages_and_imports_nothing_else():
    assert set(ssh_transport.BUNDLE_PACKAGES) <= set(ALLOWED)
    for package in ssh_transport.BUNDLE_PACKAGES:   # the layer rules keep the bundle closed as well
        assert ALLOWED[package] <= set(ssh_transport.BUNDLE_PACKAGES), package
    sources = ssh_transport.bundle_sources(MODULE_UTILS)
    on_disk = set()
    for package, path in _package_files():
        if package in ssh_transport.BUNDLE_PACKAGES:
            name = os.path.basename(path)[:-3]
            on_disk.add(package if name == '__init__' else '%s.%s' % (package, name))
            assert bundle_violations(_read(path)) == [], path
    assert set(sources) == on_disk


def test_the_checks_catch_forbidden_imports():
    """The checks above are only worth something if they fail: samples of each kind of forbidden import."""
    vsphere_in_datapath = 'from %s.vsphere.errors import VsphereError\n' % PKG
    assert [why for _l, _n, why in layer_violations('datapath', vsphere_in_datapath)] == [
        'datapath may not import vsphere']
    function_level = 'def f():\n    from %s import replica\n' % PKG
    assert layer_violations('mover', function_level)[0][2] == 'mover may not import replica'
    assert layer_violations('store', 'from .journal import JournalWriter\n')[0][2].startswith('relative import')
    assert layer_violations('replica', vsphere_in_datapath) == []
    assert [n for _l, n, _w in bundle_violations('import pyVmomi\nimport os\n')] == ['pyVmomi']
    assert [n for _l, n, _w in bundle_violations('from ansible.module_utils.basic import AnsibleModule\n')] == [
        'ansible.module_utils.basic']
    assert bundle_violations('from %s.mover.sender import Result\n' % PKG)[0][2] == 'outside the bundle'
    assert bundle_violations('from %s.store.journal import replay\nimport zstandard\n' % PKG) == []


def test_the_architecture_page_shows_these_rules():
    text = _read(os.path.join(REPO, 'docs', 'architecture.md'))
    rows = re.findall(r'^\| `(\w+)/` \|[^|]*\| ([^|]*) \|', text, re.M)
    documented = dict((package, set(re.findall(r'`(\w+)`', may))) for package, may in rows)
    assert documented == ALLOWED
    bundle = re.search(r'^The receiver bundle is (.*)$', text, re.M)
    assert bundle and set(re.findall(r'`(\w+)/`', bundle.group(1))) == set(ssh_transport.BUNDLE_PACKAGES)


def _resolve(dotted):
    import importlib
    parts = dotted.split('.')
    for cut in range(len(parts), 1, -1):
        try:
            obj = importlib.import_module('%s.%s' % (PKG, '.'.join(parts[:cut])))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def test_every_name_on_the_architecture_page_exists():
    text = _read(os.path.join(REPO, 'docs', 'architecture.md'))
    names = set(re.findall(r'`([a-z_]+(?:\.[A-Za-z_]+)+)`', text))
    code = sorted(n for n in names if n.split('.')[0] in ALLOWED)
    modules = sorted(n for n in names if n.startswith('replicator.vsphere.'))
    paths = sorted(set(re.findall(r'`((?:roles|tests|plugins|playbooks|docs)/[\w./-]+)`', text)))
    assert len(code) > 30 and modules and paths     # the cycle is described by name, not in general words
    for name in code:
        assert _resolve(name) is not None, name
    for name in modules:
        if name != 'replicator.vsphere.replicate':    # the playbook
            assert any(os.path.exists(os.path.join(REPO, 'plugins', kind, name.split('.')[-1] + '.py'))
                       for kind in ('modules', 'lookup')), name
    assert os.path.exists(os.path.join(REPO, 'playbooks', 'replicate.yml'))
    for path in paths:
        assert os.path.exists(os.path.join(REPO, path)), path
    with pytest.raises((ImportError, AttributeError)):
        _resolve('mover.sender.no_such_function')
