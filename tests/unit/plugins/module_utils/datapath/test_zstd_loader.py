# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""zstd_loader in fresh interpreters: the C extension without the package's start-up imports, one set of classes
shared with a later plain `import zstandard`, the plain import when the package's import policy is set, and None
when zstandard is not installed."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import subprocess
import sys
import textwrap

import pytest

zstandard = pytest.importorskip('zstandard')

PROBE = textwrap.dedent('''
    import json, sys
    from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.zstd_loader import HAS_ZSTD, zstandard
    out = {'has': HAS_ZSTD, 'name': getattr(zstandard, '__name__', None),
           'platform': 'platform' in sys.modules, 'typing': 'typing' in sys.modules}
    if HAS_ZSTD:
        data = b'replica block ' * 50000
        frame = zstandard.ZstdCompressor(level=1).compress(data)
        import zstandard as package          # what other code in the same process gets
        out['same_classes'] = package.ZstdDecompressor is zstandard.ZstdDecompressor
        out['roundtrip'] = package.ZstdDecompressor().decompress(frame) == data
        out['package_frame'] = zstandard.ZstdDecompressor().decompress(
            package.ZstdCompressor(level=1).compress(data)) == data
        try:
            zstandard.ZstdDecompressor().decompress(frame[:-5])
        except zstandard.ZstdError:
            out['error_class'] = True
    print(json.dumps(out))
''')


def _run(env_extra=None, isolated=False):
    import ansible_collections
    root = os.path.dirname(list(ansible_collections.__path__)[0])
    env = dict(os.environ, PYTHONPATH=root)
    env.pop('PYTHON_ZSTANDARD_IMPORT_POLICY', None)
    env.update(env_extra or {})
    # -S: no site-packages, i.e. an interpreter where zstandard is not installed
    argv = [sys.executable] + (['-S'] if isolated else []) + ['-c', PROBE]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.skipif(sys.implementation.name != 'cpython', reason='the quick way is for CPython only')
def test_c_extension_without_package_imports():
    out = _run()
    assert out['has'] is True
    assert out['name'] == 'zstandard.backend_c'
    assert out['platform'] is False and out['typing'] is False
    assert out['same_classes'] is True
    assert out['roundtrip'] is True and out['package_frame'] is True
    assert out['error_class'] is True


def test_import_policy_set_means_the_plain_import():
    out = _run({'PYTHON_ZSTANDARD_IMPORT_POLICY': 'cffi_fallback'})
    assert out['has'] is True
    assert out['name'] == 'zstandard'
    assert out['same_classes'] is True and out['roundtrip'] is True


def test_not_installed():
    if subprocess.run([sys.executable, '-S', '-c', 'import zstandard'], capture_output=True, check=False).returncode == 0:
        pytest.skip('zstandard is importable without site-packages here')
    out = _run(isolated=True)
    assert out == {'has': False, 'name': None, 'platform': False, 'typing': False}
