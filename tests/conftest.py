# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make the checkout importable as ansible_collections.replicator.vsphere for pytest, wherever it sits."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _collection_root():
    parts = REPO.split(os.sep)
    if parts[-3:-1] == ['ansible_collections', 'replicator'] and parts[-1] == 'vsphere':
        return os.sep.join(parts[:-3])
    root = os.path.join(REPO, '.build', 'acroot')
    link = os.path.join(root, 'ansible_collections', 'replicator', 'vsphere')
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO, link)
    return root


ACROOT = _collection_root()
if ACROOT not in sys.path:
    sys.path.insert(0, ACROOT)
