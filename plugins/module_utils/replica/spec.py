# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the replica VM should look like, from the source VM's already-read properties: no SOAP calls here.

Builds the vim.vm.ConfigSpec data objects that create a replica (same guest, CPUs, memory, firmware,
controllers of the same types and bus numbers, NICs of the same types, thin disks of identical capacity on the
same controller and unit) and that grow or add its disks, and pairs replica disks with source disks.

Controllers are matched across the two VMs by (kind, bus number): device keys differ between VMs.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import uuid

try:
    from pyVmomi import vim
except ImportError:  # pragma: no cover - the client reports the missing library
    vim = None

from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import encode
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import VsphereError

# Replica instance UUID = uuid5(NAMESPACE, source instance UUID): the replica is found in one FindAllByUuid call.
# Never change this value: replicas made before the change would only be found by the slower extraConfig scan.
NAMESPACE = uuid.UUID('446448c8-fa5a-457f-9d06-e8f9f0056b77')

NAME_PLACEHOLDER = '{name}'

# Device keys of the IDE controllers every VM has from creation on (vSphere and ESXi create them by themselves).
IDE_KEY_BASE = 200

ANNOTATION = ('Replica of VM %s (instance UUID %s), managed by replicator.vsphere. Power it on only through '
              'failover: the replication state is kept in its replicator.* advanced settings.')


class ReplicaMismatch(VsphereError):
    """The replica cannot follow the source without being rebuilt (a disk shrank, disappeared or was replaced)."""


class NetworkUnmapped(VsphereError):
    """A source NIC's network has no target network in network_map and no default network was given."""


def replica_instance_uuid(source_instance_uuid):
    """The instance UUID the replica of a source VM gets: stable, and distinct from the source's own."""
    if not source_instance_uuid:
        raise VsphereError('The source VM has no instance UUID; it cannot be replicated.', fault='InvalidArgument')
    return str(uuid.uuid5(NAMESPACE, str(source_instance_uuid).strip().lower()))


def replica_name(pattern, source_name):
    """The replica's name: `pattern` with every '{name}' replaced by the source VM's name."""
    if not pattern:
        raise VsphereError('replica_name must not be empty.', fault='InvalidArgument')
    name = pattern.replace(NAME_PLACEHOLDER, source_name)
    if len(name) > 80:
        raise VsphereError("Replica name '%s' is longer than the 80 characters vSphere allows." % name,
                           fault='InvalidArgument', hint='Use a shorter replica_name pattern.')
    return name


def controller_kind(device):
    """'scsi' / 'sata' / 'nvme' / 'ide' for a disk controller device, else None."""
    for kind, cls in (('scsi', vim.vm.device.VirtualSCSIController), ('sata', vim.vm.device.VirtualSATAController),
                      ('nvme', vim.vm.device.VirtualNVMEController), ('ide', vim.vm.device.VirtualIDEController)):
        if isinstance(device, cls):
            return kind
    return None


def controllers(devices):
    """{device key: (kind, bus number)} of the disk controllers in a device list."""
    found = {}
    for device in devices or []:
        kind = controller_kind(device)
        if kind:
            found[device.key] = (kind, device.busNumber)
    return found


def _disks(devices):
    return [device for device in devices or [] if isinstance(device, vim.vm.device.VirtualDisk)]


def _capacity(device):
    return device.capacityInBytes or (device.capacityInKB or 0) * 1024


def disk_slot(device, controller_map):
    """(controller kind, bus, unit) of a disk: where it sits, comparable between source and replica."""
    kind, bus = controller_map.get(device.controllerKey, (None, None))
    return kind, bus, device.unitNumber


def nics(devices):
    """The virtual NICs of a device list, in device key order."""
    return sorted((d for d in devices or [] if isinstance(d, vim.vm.device.VirtualEthernetCard)), key=lambda d: d.key)


def nic_network(nic, portgroup_names=None):
    """The name of the network a source NIC is backed by (portgroup_names: {dvportgroup key: name})."""
    backing = nic.backing
    if isinstance(backing, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo):
        key = backing.port.portgroupKey if backing.port is not None else None
        return (portgroup_names or {}).get(key, key)
    if isinstance(backing, vim.vm.device.VirtualEthernetCard.OpaqueNetworkBackingInfo):
        return backing.opaqueNetworkId
    return getattr(backing, 'deviceName', None)


def map_networks(source_networks, network_map, default_network=None):
    """{source network name: target network name} for every network the source NICs use."""
    mapping, unmapped = {}, []
    for name in source_networks:
        target = (network_map or {}).get(name) or default_network
        if target:
            mapping[name] = target
        elif name not in unmapped:
            unmapped.append(name)
    if unmapped:
        raise NetworkUnmapped('No target network for source network(s) %s' % ', '.join("'%s'" % n for n in unmapped),
                              fault='NetworkUnmapped',
                              hint='Add them to network_map (source network name: target network name) or set '
                                   'default_network.')
    return mapping


def network_backing(target):
    """The NIC backing for a resolved target network: {'kind': 'standard', 'name', 'network'} or
    {'kind': 'dvportgroup', 'switch_uuid', 'portgroup_key'}."""
    if target['kind'] == 'dvportgroup':
        port = vim.dvs.PortConnection(switchUuid=target['switch_uuid'], portgroupKey=target['portgroup_key'])
        return vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(port=port)
    return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=target['name'],
                                                                network=target.get('network'))


def _add(device, file_operation=None):
    spec = vim.vm.device.VirtualDeviceSpec(operation=vim.vm.device.VirtualDeviceSpec.Operation.add, device=device)
    if file_operation:
        spec.fileOperation = file_operation
    return spec


def _new_controller(source, key):
    """A controller of the source's exact type on the same bus (SCSI keeps its bus sharing)."""
    controller = type(source)(key=key, busNumber=source.busNumber)
    if isinstance(source, vim.vm.device.VirtualSCSIController):
        controller.sharedBus = source.sharedBus or 'noSharing'
    return controller


def _new_disk(key, controller_key, unit, capacity):
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode='persistent', thinProvisioned=True, fileName='')
    return vim.vm.device.VirtualDisk(key=key, controllerKey=controller_key, unitNumber=unit, backing=backing,
                                     capacityInKB=(capacity + 1023) // 1024, capacityInBytes=capacity)


def _disk_changes(source_disks, source_controllers, target_controllers, next_key):
    """Device specs adding `source_disks` (pyVmomi VirtualDisk) to a VM whose controllers are
    `target_controllers` ({key: (kind, bus)}): missing controllers are added first, of the source's type."""
    by_slot = dict((slot, key) for key, slot in target_controllers.items())
    changes = []
    for disk in sorted(source_disks, key=lambda d: d.key):
        source_controller = source_controllers.get(disk.controllerKey)
        if source_controller is None:
            raise VsphereError('Source disk %s sits on controller %s, which is not a disk controller.'
                               % (disk.key, disk.controllerKey), fault='InvalidArgument')
        kind, bus = controller_kind(source_controller), source_controller.busNumber
        controller_key = by_slot.get((kind, bus))
        if controller_key is None:
            if kind == 'ide':
                controller_key = IDE_KEY_BASE + bus  # present on every VM from creation on
            else:
                controller_key = next_key()
                changes.append(_add(_new_controller(source_controller, controller_key)))
            by_slot[(kind, bus)] = controller_key
        changes.append(_add(_new_disk(next_key(), controller_key, disk.unitNumber, _capacity(disk)), 'create'))
    return changes


def _key_counter(start=-100):
    state = {'next': start}

    def next_key():
        state['next'] -= 1
        return state['next']
    return next_key


def create_spec(source_props, name, datastore, targets, source_identity, portgroup_names=None, lock=None):
    """The ConfigSpec of a new replica.

    source_props: the source VM's properties (SOURCE_PATHS). targets: {source network name: resolved target
    network (see network_backing)}. source_identity: the replicator.source record stored on the replica.
    lock: the run lock the replica is born with (so that a run creating it at the same time is refused).
    """
    devices = source_props['config.hardware.device'] or []
    next_key = _key_counter()
    source_controllers = dict((d.key, d) for d in devices if controller_kind(d))
    changes = _disk_changes(_disks(devices), source_controllers, {}, next_key)
    for nic in nics(devices):
        card = type(nic)(key=next_key(), backing=network_backing(targets[nic_network(nic, portgroup_names)]),
                         addressType='generated', wakeOnLanEnabled=nic.wakeOnLanEnabled,
                         connectable=vim.vm.device.VirtualDevice.ConnectInfo(startConnected=False, connected=False,
                                                                             allowGuestControl=True))
        changes.append(_add(card))
    born = {'source': source_identity, 'state': 'ready', 'points': []}
    if lock:
        born['lock'] = lock
    extra = encode(born)
    return vim.vm.ConfigSpec(
        name=name,
        instanceUuid=replica_instance_uuid(source_identity['instance_uuid']),
        guestId=source_props.get('config.guestId'),
        numCPUs=source_props.get('config.hardware.numCPU'),
        numCoresPerSocket=source_props.get('config.hardware.numCoresPerSocket'),
        memoryMB=source_props.get('config.hardware.memoryMB'),
        firmware=source_props.get('config.firmware'),
        annotation=ANNOTATION % (source_identity.get('name'), source_identity['instance_uuid']),
        files=vim.vm.FileInfo(vmPathName='[%s]' % datastore),
        deviceChange=changes,
        extraConfig=[vim.option.OptionValue(key=key, value=value) for key, value in extra],
    )


def source_networks(devices, portgroup_names=None):
    """The network names the source VM's NICs use, in NIC order, without repeats."""
    names = []
    for nic in nics(devices):
        name = nic_network(nic, portgroup_names)
        if name not in names:
            names.append(name)
    return names


def disk_plan(source_devices, replica_devices, state_disks):
    """How the replica's disks must change to follow the source: {'pairs', 'grow', 'add'}.

    pairs: {replica key: source VirtualDisk} for every replica disk that follows a source disk (from the stored
    map, else adopted by slot when the map lacks it, e.g. after a run that died between create and state write).
    grow: [(replica VirtualDisk, new capacity)]. add: [source VirtualDisk] with no replica disk yet.
    Raises ReplicaMismatch when a source disk shrank, disappeared or was replaced, or a replica disk is missing.
    """
    source_disks = dict((d.key, d) for d in _disks(source_devices))
    replica_disks = dict((d.key, d) for d in _disks(replica_devices))
    source_ctl, replica_ctl = controllers(source_devices), controllers(replica_devices)
    problems, pairs = [], {}
    for replica_key, entry in sorted((state_disks or {}).items()):
        source = source_disks.get(entry.get('source_key'))
        if source is None:
            problems.append('source disk %s (replicated to replica disk %s) no longer exists'
                            % (entry.get('source_key'), replica_key))
        elif replica_key not in replica_disks:
            problems.append('replica disk %s (for source disk %s) is missing from the replica VM'
                            % (replica_key, source.key))
        elif entry.get('source_uuid') and source.backing is not None and \
                getattr(source.backing, 'uuid', None) not in (None, entry['source_uuid']):
            problems.append('source disk %s was replaced (disk UUID %s, the replica follows %s)'
                            % (source.key, source.backing.uuid, entry['source_uuid']))
        else:
            pairs[replica_key] = source
    followed = set(d.key for d in pairs.values())
    free_slots = dict((disk_slot(d, replica_ctl), d) for key, d in replica_disks.items()
                      if key not in pairs and key not in (state_disks or {}))
    add = []
    for key, source in sorted(source_disks.items()):
        if key in followed:
            continue
        replica = free_slots.pop(disk_slot(source, source_ctl), None)
        if replica is not None and _capacity(replica) <= _capacity(source):
            pairs[replica.key] = source
        else:
            add.append(source)
    grow = []
    for replica_key, source in sorted(pairs.items()):
        have, want = _capacity(replica_disks[replica_key]), _capacity(source)
        if want < have:
            problems.append('source disk %s shrank from %d to %d bytes' % (source.key, have, want))
        elif want > have:
            grow.append((replica_disks[replica_key], want))
    if problems:
        raise ReplicaMismatch('The replica cannot follow the source VM: %s.' % '; '.join(problems),
                              fault='ReplicaMismatch',
                              hint='Remove the replica (state: absent) and run again to build a new one; vSphere '
                                   'cannot shrink a disk and the replicated data of a removed disk is not reused.')
    return {'pairs': pairs, 'grow': grow, 'add': add}


def reconfig_spec(plan, source_devices, replica_devices):
    """The ConfigSpec that grows and adds replica disks per `plan` (None when nothing changes)."""
    changes = []
    for replica_disk, capacity in plan['grow']:
        disk = copy.deepcopy(replica_disk)  # the device as read, so every other setting stays as it is
        disk.capacityInKB = (capacity + 1023) // 1024
        disk.capacityInBytes = capacity
        changes.append(vim.vm.device.VirtualDeviceSpec(operation=vim.vm.device.VirtualDeviceSpec.Operation.edit,
                                                       device=disk))
    if plan['add']:
        source_controllers = dict((d.key, d) for d in source_devices or [] if controller_kind(d))
        changes.extend(_disk_changes(plan['add'], source_controllers, controllers(replica_devices), _key_counter()))
    if not changes:
        return None
    return vim.vm.ConfigSpec(deviceChange=changes)


def disk_entries(pairs, replica_devices, state_disks):
    """The replicator.disk.<key> records for paired disks: replica disk facts, committed change_id kept."""
    replica_disks = dict((d.key, d) for d in _disks(replica_devices))
    entries = {}
    for replica_key, source in pairs.items():
        replica = replica_disks[replica_key]
        old = (state_disks or {}).get(replica_key) or {}
        entries[replica_key] = {
            'source_key': source.key,
            'source_uuid': getattr(source.backing, 'uuid', None),
            'uuid': getattr(replica.backing, 'uuid', None),
            'capacity': _capacity(replica),
            'file': getattr(replica.backing, 'fileName', None),
            'change_id': old.get('change_id'),
        }
    return entries


def planned_disks(source_devices):
    """The disk records a replica about to be created would get (check mode): no replica keys yet."""
    return [{'source_key': d.key, 'key': None, 'uuid': None, 'capacity_bytes': _capacity(d), 'file': None,
             'change_id': None} for d in sorted(_disks(source_devices), key=lambda d: d.key)]


def adopt_mismatches(source_devices, vm_devices):
    """Why a VM's disks cannot serve as the replica disks of a source VM (adopt): [] when each source disk has a
    disk of the same capacity in the same slot (controller kind, bus, unit) of the VM and the VM has no others."""
    def layout(devices):
        ctl = controllers(devices)
        return sorted((disk_slot(d, ctl), _capacity(d)) for d in _disks(devices))
    want, have = layout(source_devices), layout(vm_devices)
    if want == have:
        return []
    problems = []
    if len(want) != len(have):
        problems.append('the source has %d disks, the VM has %d' % (len(want), len(have)))
    have_by_slot = dict(have)
    for slot, capacity in want:
        found = have_by_slot.pop(slot, None)
        where = '%s%s:%s' % slot
        if found is None:
            problems.append('no disk at %s (source disk of %d bytes)' % (where, capacity))
        elif found != capacity:
            problems.append('disk at %s is %d bytes, the source disk %d bytes' % (where, found, capacity))
    for slot, capacity in sorted(have_by_slot.items()):
        problems.append('extra disk at %s%s:%s (%d bytes)' % (slot + (capacity,)))
    return problems
