# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find managed objects: VM by moid > uuid > name (+ folder), datacenters, datastores; fail clearly on ambiguity."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

try:
    from pyVmomi import vim
except ImportError:  # pragma: no cover - the client reports the missing library
    vim = None

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import (
    Ambiguous, NotFound, VsphereError,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.properties import fetch, find_all


def describe_identity(identity):
    """A short text naming the VM the user asked for: "VM 'app01' in folder 'x'" / "VM with uuid 4213..."."""
    if identity.get('moid'):
        return 'VM with moid %s' % identity['moid']
    if identity.get('uuid'):
        kind = 'instance uuid' if identity.get('use_instance_uuid', True) else 'BIOS uuid'
        return 'VM with %s %s' % (kind, identity['uuid'])
    text = "VM '%s'" % identity.get('name')
    if identity.get('folder'):
        text += " in folder '%s'" % identity['folder']
    if identity.get('datacenter'):
        text += " of datacenter '%s'" % identity['datacenter']
    return text


def find_datacenter(client, name):
    """The datacenter named `name` (a top-level name or an inventory path with folders)."""
    found = client.content.searchIndex.FindByInventoryPath(name.strip('/'))
    if not isinstance(found, vim.Datacenter):
        raise NotFound("Datacenter '%s' not found on %s" % (name, client.endpoint), fault='NotFound',
                       hint='Give the datacenter name as shown in the vSphere inventory.')
    return found


def _folder_path(datacenter, folder):
    """The inventory path of a VM folder: 'DC/vm/<folder>' (a folder already starting with DC/vm is kept)."""
    folder = folder.strip('/')
    if datacenter and not folder.startswith(datacenter.strip('/') + '/'):
        if not folder.startswith('vm/') and folder != 'vm':
            folder = 'vm/' + folder
        folder = datacenter.strip('/') + '/' + folder
    return folder


def find_vm(client, identity):
    """The VM for an identity dict (name, uuid, use_instance_uuid, moid, folder, datacenter)."""
    what = describe_identity(identity)
    if identity.get('moid'):
        vm = vim.VirtualMachine(identity['moid'], client.si._stub)
        fetch(client, vm, ['name'])  # raises NotFound for an unknown moid
        return vm
    datacenter = find_datacenter(client, identity['datacenter']) if identity.get('datacenter') else None
    if identity.get('uuid'):
        matches = client.content.searchIndex.FindAllByUuid(
            datacenter=datacenter, uuid=identity['uuid'], vmSearch=True,
            instanceUuid=identity.get('use_instance_uuid', True)) or []
        return _one(client, matches, what)
    if not identity.get('name'):
        raise VsphereError('No VM given: set one of moid, uuid or name.', fault='InvalidArgument')
    if identity.get('folder'):
        if not identity.get('datacenter'):
            raise VsphereError('folder needs datacenter: the folder path is relative to a datacenter.',
                               fault='InvalidArgument')
        path = _folder_path(identity['datacenter'], identity['folder']) + '/' + identity['name']
        found = client.content.searchIndex.FindByInventoryPath(path)
        return _one(client, [found] if isinstance(found, vim.VirtualMachine) else [], what)
    root = datacenter.vmFolder if datacenter is not None else None
    matches = [obj for obj, props in find_all(client, vim.VirtualMachine, ['name'], root=root)
               if props['name'] == identity['name']]
    return _one(client, matches, what)


def _one(client, matches, what):
    if not matches:
        raise NotFound('%s not found on %s' % (what, client.endpoint), fault='NotFound',
                       hint='Check the name, uuid or moid, and the datacenter / folder scope.')
    if len(matches) > 1:
        moids = ', '.join(sorted(m._moId for m in matches))
        raise Ambiguous('%s matches %d VMs (%s)' % (what, len(matches), moids), fault='Ambiguous',
                        hint='Identify the VM by moid or uuid, or add folder and datacenter.')
    return matches[0]


def find_by_name(client, obj_type, name, root=None, kind=None):
    """The one object of `obj_type` named `name` below root (datastore, host, cluster, network, folder...)."""
    kind = kind or obj_type.__name__.rsplit('.', 1)[-1]
    matches = [obj for obj, props in find_all(client, obj_type, ['name'], root=root) if props['name'] == name]
    if not matches:
        raise NotFound("%s '%s' not found on %s" % (kind, name, client.endpoint), fault='NotFound')
    if len(matches) > 1:
        raise Ambiguous("%s name '%s' matches %d objects (%s)" % (kind, name, len(matches),
                                                                  ', '.join(m._moId for m in matches)),
                        fault='Ambiguous', hint='Scope the lookup with a datacenter.')
    return matches[0]


def vm_summary(vm, props):
    """The `vm` return value of every module: {name, moid, instance_uuid} from already-read properties."""
    return {'name': props.get('name'), 'moid': vm._moId, 'instance_uuid': props.get('config.instanceUuid')}
