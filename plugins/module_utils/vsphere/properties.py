# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PropertyCollector reads: one round trip per object (or per set of objects) with explicit property paths.

Accessing ``vm.config.x`` on a pyvmomi managed object costs a SOAP call per attribute; everything in this
collection reads through these helpers instead, so the number of calls is known and small.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

try:
    from pyVmomi import vim, vmodl
except ImportError:  # pragma: no cover - the client reports the missing library
    vim = vmodl = None

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import NotFound, from_fault

# RetrievePropertiesEx page size; the server may return fewer.
PAGE_SIZE = 1000


def _object_spec(obj, traverse_view=False):
    if not traverse_view:
        return vmodl.query.PropertyCollector.ObjectSpec(obj=obj, skip=False)
    traversal = vmodl.query.PropertyCollector.TraversalSpec(name='view', path='view', skip=False,
                                                            type=vim.view.ContainerView)
    return vmodl.query.PropertyCollector.ObjectSpec(obj=obj, skip=True, selectSet=[traversal])


def _retrieve(client, object_specs, obj_type, paths):
    """RetrievePropertiesEx + ContinueRetrievePropertiesEx: [(obj, {path: value})]."""
    prop_spec = vmodl.query.PropertyCollector.PropertySpec(type=obj_type, pathSet=list(paths), all=False)
    filter_spec = vmodl.query.PropertyCollector.FilterSpec(objectSet=object_specs, propSet=[prop_spec],
                                                           reportMissingObjectsInResults=False)
    collector = client.content.propertyCollector
    options = vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=PAGE_SIZE)
    results = []
    page = collector.RetrievePropertiesEx(specSet=[filter_spec], options=options)
    while page is not None:
        for item in page.objects or []:
            values = dict((path, None) for path in paths)
            for prop in item.propSet or []:
                values[prop.name] = prop.val
            results.append((item.obj, values))
        if not page.token:
            break
        page = collector.ContinueRetrievePropertiesEx(token=page.token)
    return results


def fetch(client, obj, paths):
    """Read `paths` of one managed object in one round trip: {path: value}; unset properties are None."""
    try:
        results = _retrieve(client, [_object_spec(obj)], type(obj), paths)
    except vmodl.fault.ManagedObjectNotFound as exc:
        raise from_fault(exc, 'Reading %s' % obj._moId, NotFound)
    if not results:
        raise NotFound('%s %s does not exist on %s' % (type(obj).__name__, obj._moId, client.endpoint),
                       fault='ManagedObjectNotFound')
    return results[0][1]


def fetch_many(client, objs, paths):
    """Read `paths` of several objects of one type in one round trip: [(obj, {path: value})] in server order."""
    objs = list(objs)
    if not objs:
        return []
    return _retrieve(client, [_object_spec(o) for o in objs], type(objs[0]), paths)


def find_all(client, obj_type, paths, root=None):
    """Every object of `obj_type` below `root` (default: the root folder) with `paths` read.

    Costs three round trips whatever the inventory size: CreateContainerView, RetrievePropertiesEx, DestroyView
    (plus one ContinueRetrievePropertiesEx per extra page of 1000 objects).
    """
    view = client.content.viewManager.CreateContainerView(root or client.content.rootFolder, [obj_type], True)
    try:
        return _retrieve(client, [_object_spec(view, traverse_view=True)], obj_type, paths)
    finally:
        view.DestroyView()
