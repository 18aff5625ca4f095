# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The zstandard module for the data path, loaded without the package's start-up cost.

`import zstandard` runs the package's __init__, which imports `platform` (and with it `re`) and `typing` only to
pick a backend: 8-20 ms, about a fifth of a receiver's start (the receiver is a new process every cycle, and so is
every module run on a proxy). On CPython the package picks its C extension anyway, so that extension
(`zstandard.backend_c`: every class the package exports) is loaded directly here and registered under its own name; a
later `import zstandard` by other code then reuses it, so both see the same classes. Anything unexpected (another
interpreter, the package's PYTHON_ZSTANDARD_IMPORT_POLICY set, no C extension, an older layout) falls back to the
plain import. HAS_ZSTD is False and zstandard None when the package is missing.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import sys

C_BACKEND = 'zstandard.backend_c'


def _c_backend():
    """The C extension module of an installed zstandard, or None when the quick way does not apply."""
    if sys.implementation.name != 'cpython' or os.environ.get('PYTHON_ZSTANDARD_IMPORT_POLICY'):
        return None
    for name in ('zstandard', C_BACKEND):
        if name in sys.modules:     # loaded already (by us or by a plain import): one copy per process
            return sys.modules[name]
    import importlib.machinery
    package = importlib.machinery.PathFinder.find_spec('zstandard')
    if package is None or not package.submodule_search_locations:
        return None
    spec = importlib.machinery.PathFinder.find_spec(C_BACKEND, package.submodule_search_locations)
    if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
        return None
    module = spec.loader.create_module(spec)
    spec.loader.exec_module(module)
    if not all(hasattr(module, name) for name in ('ZstdCompressor', 'ZstdDecompressor', 'ZstdError')):
        return None
    sys.modules[C_BACKEND] = module
    return module


def load():
    """zstandard (its C extension when the quick way applies, else the package), or None when not installed."""
    try:
        module = _c_backend()
    except (ImportError, OSError, AttributeError, ValueError):
        module = None
    if module is not None:
        return module
    try:
        import zstandard as module
    except ImportError:
        return None
    return module


zstandard = load()
HAS_ZSTD = zstandard is not None
