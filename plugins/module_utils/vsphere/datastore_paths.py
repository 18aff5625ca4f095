# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Datastore paths ('[ds1] app01/app01.vmdk') to local paths on a data mover host (pure, no I/O).

The direct transport reads and writes datastores mounted on the proxy (NFS); the user maps each datastore name to
its mount point. A mapped path never leaves its mount point.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import posixpath

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.vm_disks import split_datastore_path


class DatastorePathError(ValueError):
    """A datastore path cannot be mapped to a local path."""


def local_path(datastore_path, mounts, what='disk'):
    """The local path of `datastore_path` given mounts {datastore name: mount point}."""
    datastore, rel = split_datastore_path(datastore_path)
    if datastore is None:
        raise DatastorePathError('%s path %r is not a datastore path like "[datastore] folder/file.vmdk"'
                                 % (what, datastore_path))
    mount = (mounts or {}).get(datastore)
    if not mount:
        known = ', '.join(sorted(mounts or {})) or 'none'
        raise DatastorePathError("datastore '%s' of %s %s has no local mount point on this host (mapped: %s); "
                                 "add it to the datastore paths, or use the nbd transport"
                                 % (datastore, what, datastore_path, known))
    rel = rel.lstrip('/')
    joined = posixpath.normpath(posixpath.join(mount, rel))
    root = posixpath.normpath(mount)
    if joined != root and not joined.startswith(root.rstrip('/') + '/'):
        raise DatastorePathError('%s path %r escapes the mount point %s of datastore %s' % (what, datastore_path,
                                                                                            mount, datastore))
    return joined


def sibling(datastore_path, name):
    """A file next to `datastore_path` on the same datastore: ('[ds] a/b.vmdk', 'b.x') -> '[ds] a/b.x'."""
    datastore, rel = split_datastore_path(datastore_path)
    folder = posixpath.dirname(rel)
    return '[%s] %s' % (datastore, posixpath.join(folder, name) if folder else name)
