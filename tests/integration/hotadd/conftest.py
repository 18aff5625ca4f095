# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hot-add tests run modules the way the replica tests do: the same `run` and `conn` fixtures."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.replicator.vsphere.tests.integration.replica.conftest import conn, run  # noqa: F401 pylint: disable=unused-import
