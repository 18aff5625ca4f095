# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.datastore_paths import (
    DatastorePathError, local_path, sibling,
)

MOUNTS = {'src-ds1': '/mnt/src-ds1', 'dr ds': '/mnt/dr/'}


def test_maps_into_the_mount_point():
    assert local_path('[src-ds1] app01/app01-flat.vmdk', MOUNTS) == '/mnt/src-ds1/app01/app01-flat.vmdk'
    assert local_path('[dr ds] a/b.vmdk', MOUNTS) == '/mnt/dr/a/b.vmdk'


def test_unmapped_datastore_names_the_fix():
    with pytest.raises(DatastorePathError, match="datastore 'other' .* no local mount point .* src-ds1"):
        local_path('[other] x.vmdk', MOUNTS)


def test_escape_and_non_datastore_paths_are_refused():
    with pytest.raises(DatastorePathError, match='escapes the mount point'):
        local_path('[src-ds1] ../../etc/passwd', MOUNTS)
    with pytest.raises(DatastorePathError, match='not a datastore path'):
        local_path('/etc/passwd', MOUNTS)


def test_sibling():
    assert sibling('[dr ds] app01_replica/app01.vmdk', 'app01.replicator') == '[dr ds] app01_replica/app01.replicator'
    assert sibling('[ds] top.vmdk', 'x') == '[ds] x'
