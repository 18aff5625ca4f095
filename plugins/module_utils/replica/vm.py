# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The replica VM on the target: find it by the source's identity, create it, grow its disks, write its
replication state with optimistic concurrency, take and release the run lock, destroy it.

The replica is found by its instance UUID (uuid5 of the source's, see replica_spec) in one FindAllByUuid call and
confirmed by its `replicator.source` extraConfig; a container-view scan of extraConfig is the fallback for
replicas whose instance UUID was changed. A VM is never adopted by name.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import posixpath
import time

try:
    from pyVmomi import vim, vmodl
except ImportError:  # pragma: no cover - the client reports the missing library
    vim = vmodl = None

from ansible_collections.replicator.vsphere.plugins.module_utils.replica.spec import (
    adopt_mismatches, create_spec, disk_entries, disk_plan, map_networks, nics, planned_disks, reconfig_spec,
    replica_instance_uuid, replica_name, source_networks,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.replica import run_owner
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import (
    PREFIX, LockHeld, acquire_lock, changed_pairs, decode, encode, merged, release_allowed, seal_cycle, state_facts,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.vm_disks import split_datastore_path
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.args import (
    connection_params, target_connection_params,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.client import connect
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import (
    Ambiguous, NotFound, VsphereError, from_fault,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.lookup import (
    _folder_path, find_by_name, find_datacenter, find_vm, vm_summary,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.properties import fetch, fetch_many, find_all
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.tasks import run_task

SOURCE_PATHS = ['name', 'config.instanceUuid', 'config.guestId', 'config.hardware.numCPU',
                'config.hardware.numCoresPerSocket', 'config.hardware.memoryMB', 'config.firmware',
                'config.hardware.device', 'network']
REPLICA_PATHS = ['name', 'config.instanceUuid', 'config.extraConfig', 'config.changeVersion', 'config.hardware.device',
                 'config.files.vmPathName', 'runtime.powerState']
# What replica_info reads for every VM of the target, in one RetrievePropertiesEx.
INFO_PATHS = ['name', 'config.instanceUuid', 'config.extraConfig', 'runtime.powerState', 'config.hardware.device',
              'config.files.vmPathName']
# Read-modify-write attempts of the state when vSphere reports a concurrent change (stale changeVersion).
STATE_WRITE_TRIES = 5


class ReplicaLocked(VsphereError):
    """Another run holds the replica's lock."""


class NotOurReplica(VsphereError):
    """A VM on the target is in the replica's way but does not replicate this source VM."""


@contextlib.contextmanager
def target_session(source, params):
    """The client of the target site for a `with` block: the source session itself when both are the same endpoint
    and user, else a session of its own, logged out at the end."""
    settings = target_connection_params(params)
    if settings == connection_params(params):
        yield source
        return
    client = connect(settings)
    try:
        yield client
    finally:
        client.close()


def source_identity(client, vm, props):
    """The replicator.source record: who this replica follows."""
    about = client.content.about
    return {'instance_uuid': props['config.instanceUuid'], 'name': props['name'], 'moid': vm._moId,
            'vcenter': getattr(about, 'instanceUuid', None) or client.hostname}


def replicates(props, source_uuid):
    """Whether a VM's extraConfig names `source_uuid` as its source."""
    state = decode(props.get('config.extraConfig'))
    stored = (state.get('source') or {}).get('instance_uuid') or ''
    return bool(stored) and stored.lower() == str(source_uuid).lower()


# A replica younger than this with no restore point, beside an older one of the same source, is the loser of two
# first cycles started at once: its creator removes it (settle_created), and lookups meanwhile take the older one.
DUPLICATE_GRACE = 600


def _age_order(vm, props):
    created = props.get('config.createDate')
    stamp = created.timestamp() if hasattr(created, 'timestamp') else float('inf')
    digits = ''.join(c for c in vm._moId if c.isdigit())
    return (stamp, int(digits) if digits else 0, vm._moId)


def _fresh(props, now):
    """A replica just created by a run: no restore point and no committed changeId, created within the grace."""
    state = decode(props.get('config.extraConfig'))
    created = props.get('config.createDate')
    young = not hasattr(created, 'timestamp') or now - created.timestamp() < DUPLICATE_GRACE
    return young and not state.get('points') and not any(d.get('change_id') for d in state.get('disks', {}).values())


def _the_replica(client, found, source_uuid, now=None):
    """The one replica among `found` [(vm, props)] of `source_uuid`: the oldest when every other is a fresh twin
    of a first cycle started at the same time; else Ambiguous naming them all."""
    if len(found) <= 1:
        return found[0] if found else (None, None)
    found = sorted(found, key=lambda pair: _age_order(*pair))
    now = time.time() if now is None else now
    if all(_fresh(props, now) for _vm, props in found[1:]):
        return found[0]
    names = ', '.join("'%s' (%s)" % (props.get('name'), vm._moId) for vm, props in found)
    raise Ambiguous('%d VMs on %s replicate source %s: %s' % (len(found), client.endpoint, source_uuid, names),
                    fault='Ambiguous', hint='Only one replica may follow a source VM: remove the others (check which '
                                            'one holds the restore points with replica_info), then run again.')


def find_replica(client, source_uuid, datacenter=None):
    """(vm, props, scanned) for the replica of `source_uuid`, or (None, None, scanned) when there is none.

    scanned: [(vm, {'name', 'config.extraConfig'})] of the fallback scan, [] when the fast path found it.
    """
    try:
        matches = client.content.searchIndex.FindAllByUuid(datacenter=datacenter, uuid=replica_instance_uuid(source_uuid),
                                                           vmSearch=True, instanceUuid=True) or []
    except (vmodl.fault.MethodNotFound, vmodl.fault.NotImplemented, vmodl.fault.NotSupported):
        matches = []        # a server without FindAllByUuid: the property scan below finds the replica
    except (vim.fault.VimFault, vmodl.MethodFault) as exc:
        raise from_fault(exc, 'Looking up the replica of %s on %s' % (source_uuid, client.endpoint))
    found = list(fetch_many(client, matches, REPLICA_PATHS + ['config.createDate'])) if matches else []
    for vm, props in found:
        if not replicates(props, source_uuid):
            raise NotOurReplica("VM '%s' (%s) on %s has the replica instance UUID of source %s but its replication "
                                "metadata does not name that source; refusing to adopt it."
                                % (props['name'], vm._moId, client.endpoint, source_uuid), fault='NotOurReplica',
                                hint='Inspect the VM: remove it or give it another instance UUID, then run again.')
    if found:
        vm, props = _the_replica(client, found, source_uuid)
        return vm, props, []
    root = fetch(client, datacenter, ['vmFolder'])['vmFolder'] if datacenter is not None else None
    scanned = find_all(client, vim.VirtualMachine, ['name', 'config.extraConfig', 'config.createDate'], root=root)
    ours = [(vm, props) for vm, props in scanned if replicates(props, source_uuid)]
    if ours:
        vm, _props = _the_replica(client, ours, source_uuid)
        return vm, fetch(client, vm, REPLICA_PATHS), scanned
    return None, None, scanned


def settle_created(client, created, source_uuid, datacenter, timeout):
    """After creating a replica: when another run created one for the same source at the same time, the older
    one stays and ours is destroyed. Returns (vm, props) of the replica that stays."""
    vm, props, _scanned = find_replica(client, source_uuid, datacenter)
    if vm is None or vm._moId == created._moId:
        return created, fetch(client, created, REPLICA_PATHS)
    run_task(client, created.Destroy_Task, 'Removing the replica VM this run created at the same time as '
                                           "'%s' (%s)" % (props['name'], vm._moId), timeout)
    return vm, props


def check_name_free(client, scanned, name, source_uuid):
    """Raise NotOurReplica when a VM named `name` exists that is not the replica of `source_uuid`."""
    for vm, props in scanned:
        if props['name'] == name and not replicates(props, source_uuid):
            raise NotOurReplica("A VM named '%s' (%s) already exists on %s and is not the replica of source %s; "
                                "refusing to adopt or overwrite it." % (name, vm._moId, client.endpoint, source_uuid),
                                fault='NotOurReplica', hint='Rename or remove that VM, or choose another replica_name.')


def resolve_datacenter(client, name=None):
    """The named datacenter, or the only one of the endpoint (an ESXi host has exactly one)."""
    if name:
        return find_datacenter(client, name)
    found = find_all(client, vim.Datacenter, ['name'])
    if len(found) != 1:
        raise VsphereError('%s has %d datacenters (%s); set target_datacenter.'
                           % (client.endpoint, len(found), ', '.join(sorted(p['name'] for _o, p in found))),
                           fault='Ambiguous' if found else 'NotFound')
    return found[0][0]


def resolve_placement(client, datacenter, host=None, cluster=None, datastore=None, folder=None, resource_pool=None):
    """{'folder', 'pool', 'host', 'datastore'} of the new replica, each name checked on the target."""
    dc = fetch(client, datacenter, ['name', 'vmFolder', 'hostFolder', 'datastoreFolder'])
    host_obj = None
    if host:
        host_obj = find_by_name(client, vim.HostSystem, host, root=dc['hostFolder'], kind='Host')
        compute = fetch(client, host_obj, ['parent'])['parent']
    elif cluster:
        compute = find_by_name(client, vim.ClusterComputeResource, cluster, root=dc['hostFolder'], kind='Cluster')
    else:
        raise VsphereError('Set target_host or target_cluster: where the replica runs.', fault='InvalidArgument')
    if resource_pool:
        pool = find_by_name(client, vim.ResourcePool, resource_pool, root=compute, kind='Resource pool')
    else:
        pool = fetch(client, compute, ['resourcePool'])['resourcePool']
    find_by_name(client, vim.Datastore, datastore, root=dc['datastoreFolder'], kind='Datastore')
    target_folder = dc['vmFolder']
    if folder:
        target_folder = client.content.searchIndex.FindByInventoryPath(_folder_path(dc['name'], folder))
        if not isinstance(target_folder, vim.Folder):
            raise NotFound("VM folder '%s' not found in datacenter '%s' on %s" % (folder, dc['name'], client.endpoint),
                           fault='NotFound')
    return {'folder': target_folder, 'pool': pool, 'host': host_obj, 'datastore': datastore,
            'network_folder': fetch(client, datacenter, ['networkFolder'])['networkFolder']}


def source_portgroup_names(client, props):
    """{dvportgroup key: name} for the distributed portgroups the source VM uses (no call without any)."""
    groups = [net for net in props.get('network') or [] if isinstance(net, vim.dvs.DistributedVirtualPortgroup)]
    return dict((p['key'], p['name']) for _obj, p in fetch_many(client, groups, ['key', 'name']))


def resolve_networks(client, network_folder, mapping):
    """{source network name: target network record for replica_spec.network_backing}."""
    by_name = {}
    for obj, props in find_all(client, vim.Network, ['name'], root=network_folder):
        by_name.setdefault(props['name'], []).append(obj)
    targets = {}
    for source, target in sorted(mapping.items()):
        objs = by_name.get(target) or []
        if not objs:
            raise NotFound("Target network '%s' (for source network '%s') not found on %s"
                           % (target, source, client.endpoint), fault='NotFound',
                           hint='Fix network_map / default_network; names are the target networks as listed in vSphere.')
        if len(objs) > 1:
            raise Ambiguous("Target network name '%s' matches %d networks" % (target, len(objs)), fault='Ambiguous')
        obj = objs[0]
        if isinstance(obj, vim.dvs.DistributedVirtualPortgroup):
            group = fetch(client, obj, ['key', 'config.distributedVirtualSwitch'])
            switch = fetch(client, group['config.distributedVirtualSwitch'], ['uuid'])
            targets[source] = {'kind': 'dvportgroup', 'switch_uuid': switch['uuid'], 'portgroup_key': group['key']}
        elif isinstance(obj, vim.OpaqueNetwork):
            raise VsphereError("Target network '%s' is an opaque (NSX) network; map to a portgroup instead." % target,
                               fault='NotSupported')
        else:
            targets[source] = {'kind': 'standard', 'name': target, 'network': obj}
    return targets


def write_state(client, vm, change, action, timeout, check_mode=False, tries=STATE_WRITE_TRIES, props=None):
    """Read-modify-write of the replica's replicator.* extraConfig with optimistic concurrency.

    change(state) returns the changes for replica_state.encode ({} for none); it may raise (LockHeld...). The
    write carries the config.changeVersion read just before, so vSphere refuses it (ConcurrentAccess) when
    something else reconfigured the VM in between; then the whole read-modify-write runs again, up to `tries`.
    props: the replica's config.changeVersion and config.extraConfig when just read (saves the first read).
    Returns (changed, state after).
    """
    def pairs_of(options):
        try:
            changes = change(decode(options))
        except LockHeld as exc:
            raise ReplicaLocked('LockHeld: %s' % exc, fault='LockHeld',
                                hint='Only one run may replicate or fail over a VM at a time.')
        return changed_pairs(options, encode(changes)) if changes else []
    return _write_options(client, vm, pairs_of, action, timeout, check_mode, tries, props)


def _forget_pairs(options):
    """Every replicator.* key of extraConfig, set to '' (removed)."""
    return sorted((key, '') for key, value in
                  (item if isinstance(item, tuple) else (item.key, item.value) for item in options or [])
                  if key.startswith(PREFIX) and value not in (None, ''))


def _write_options(client, vm, pairs_of, action, timeout, check_mode, tries, props):
    """The retry loop of write_state: pairs_of(extraConfig) gives the (key, value) pairs to write ([] for none)."""
    for attempt in range(tries):
        if props is None or attempt:
            props = fetch(client, vm, ['config.changeVersion', 'config.extraConfig'])
        options = props['config.extraConfig']
        pairs = pairs_of(options)
        if not pairs:
            return False, decode(options)
        after = decode(merged(options, pairs))
        if check_mode:
            return True, after
        spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=k, value=v) for k, v in pairs])
        if props['config.changeVersion']:
            spec.changeVersion = props['config.changeVersion']
        try:
            run_task(client, vm.ReconfigVM_Task, action, timeout, spec=spec)
        except VsphereError as exc:
            if exc.fault == 'ConcurrentAccess' and attempt + 1 < tries:
                continue
            raise
        return True, after
    raise VsphereError('%s: the replica kept changing under %d attempts' % (action, tries), fault='ConcurrentAccess')


def holder_dead(lock):
    """Whether the run holding `lock` provably ended (its ansible-playbook process is gone from this host)."""
    return run_owner.alive((lock or {}).get('process')) is False


def lock_change(state, mode, owner, run, ttl, now, process=None):
    """The `lock` part of a state change for lock mode acquire / release / none ({} = no change)."""
    current = state.get('lock')
    if mode == 'acquire':
        return {'lock': acquire_lock(current, owner, run, now, ttl, process=process, dead=holder_dead)}
    if mode == 'release' and current:
        if not release_allowed(current, run):
            if current.get('expires', 0) <= now or holder_dead(current):
                return {'lock': None}  # the lease of a dead run: clearing it harms no one
            raise LockHeld(current, now)
        return {'lock': None}
    return {}


def refuse_foreign_lock(state, run, now, doing):
    """Raise ReplicaLocked when another live run holds a lease on the replica."""
    lock = state.get('lock')
    if lock and lock.get('run') != run and lock.get('expires', 0) > now and not holder_dead(lock):
        raise ReplicaLocked('LockHeld: %s' % LockHeld(lock, now), fault='LockHeld',
                            hint='%s must wait until the running replication or failover has ended.' % doing)


def replica_facts(vm, props, state, now, rpo_seconds=None):
    """The `replica` return value out of the replica's properties and decoded state."""
    vmx = props.get('config.files.vmPathName')
    facts = {'name': props.get('name'), 'moid': vm._moId if vm is not None else None,
             'instance_uuid': props.get('config.instanceUuid'), 'datastore': split_datastore_path(vmx)[0],
             'vmx_path': vmx, 'power_state': str(props['runtime.powerState']) if props.get('runtime.powerState') else None}
    facts.update(state_facts(state, now, rpo_seconds))
    return facts


def _disk_summary(disks):
    return dict((str(d['source_key']), d['capacity_bytes']) for d in disks)


def ensure_present(source, target, identity_vm, opts, now, check_mode):
    """Create / grow the replica of `identity_vm` (a source VirtualMachine), write its state and lock.

    opts: replica_name, target_datacenter/host/cluster/datastore/folder/resource_pool, network_map,
    default_network, lock, lock_owner, lock_run_id, lock_ttl, task_timeout. Returns the module result.
    """
    timeout = opts['task_timeout']
    props = fetch(source, identity_vm, SOURCE_PATHS)
    identity = source_identity(source, identity_vm, props)
    name = replica_name(opts['replica_name'], props['name'])
    datacenter = find_datacenter(target, opts['target_datacenter']) if opts.get('target_datacenter') else None
    vm, rprops, scanned = find_replica(target, identity['instance_uuid'], datacenter)
    result = {'changed': False, 'vm': vm_summary(identity_vm, props), 'actions': []}
    before = {'exists': vm is not None}
    adopting = False
    if opts.get('adopt'):
        vm, rprops, adopting = adopt_vm(target, vm, rprops, opts, props, identity)
        if adopting:
            result['actions'].append("adopt VM '%s' (%s) as the replica: its disks are compared by digests, only "
                                     "differences are sent" % (rprops['name'], vm._moId))
            result['changed'] = True
    if vm is None:
        if not (opts.get('target_host') or opts.get('target_cluster')) or not opts.get('target_datastore'):
            raise VsphereError('Source VM %s has no replica on %s yet: creating one needs target_datastore and '
                               'target_host or target_cluster.' % (props['name'], target.endpoint),
                               fault='InvalidArgument', hint='Set the placement of the new replica, or adopt an '
                                                             'existing VM (adopt).')
        check_name_free(target, scanned, name, identity['instance_uuid'])
        datacenter = datacenter or resolve_datacenter(target)
        placement = resolve_placement(target, datacenter, opts.get('target_host'), opts.get('target_cluster'),
                                      opts.get('target_datastore'), opts.get('target_folder'),
                                      opts.get('target_resource_pool'))
        portgroups = source_portgroup_names(source, props) if nics(props['config.hardware.device']) else {}
        mapping = map_networks(source_networks(props['config.hardware.device'], portgroups), opts.get('network_map'),
                               opts.get('default_network'))
        targets = resolve_networks(target, placement['network_folder'], mapping)
        born = lock_change({}, opts['lock'], opts['lock_owner'], opts['lock_run_id'], opts['lock_ttl'], now,
                           opts.get('lock_process')).get('lock')
        spec = create_spec(props, name, placement['datastore'], targets, identity, portgroups, lock=born)
        result['actions'].append("create replica '%s' on datastore %s" % (name, placement['datastore']))
        result['changed'] = True
        if check_mode:
            planned = {'source': identity, 'state': 'ready', 'points': [], 'lock': born}
            facts = replica_facts(None, {'name': name, 'config.instanceUuid': spec.instanceUuid}, planned, now)
            facts.update(datastore=placement['datastore'], disks=planned_disks(props['config.hardware.device']))
            after = {'exists': True, 'disks': _disk_summary(facts['disks'])}
            result.update(replica=facts, diff={'before': before, 'after': after})
            return _with_lock_action(result, opts, None, planned['lock'])
        action = "Creating replica VM '%s' on %s" % (name, target.endpoint)
        try:
            created, _task = run_task(target, placement['folder'].CreateVM_Task, action, timeout, config=spec,
                                      pool=placement['pool'], host=placement['host'])
        except VsphereError as exc:
            if exc.fault != 'DuplicateName':
                raise
            created = None    # another run created it under the same name a moment ago: lock that one below
        vm, rprops = settle_created(target, created, identity['instance_uuid'], datacenter, timeout) if created \
            else find_replica(target, identity['instance_uuid'], datacenter)[:2]
        if vm is None:
            raise VsphereError("Replica '%s' was not created on %s" % (name, target.endpoint), fault='InvalidState')
        if created is None or vm._moId != created._moId:
            # a run that started at the same time made the replica first: take the lock as on any existing replica
            before['exists'] = True
            result['actions'].append("use replica '%s' (%s) that another run created at the same time"
                                     % (rprops['name'], vm._moId))
    else:
        before['disks'] = _disk_summary(state_facts(decode(rprops['config.extraConfig']), now)['disks'])
    state = decode(rprops['config.extraConfig'])
    lock_before = state.get('lock')
    fresh = True  # rprops still carry the replica's current changeVersion
    if before['exists'] and opts['lock'] == 'acquire':
        # lock first: never touch the disks of a replica another run is writing to
        locked, state = write_state(target, vm, lambda current: lock_change(current, 'acquire', opts['lock_owner'],
                                                                            opts['lock_run_id'], opts['lock_ttl'], now,
                                                                            opts.get('lock_process')),
                                    "Locking replica '%s'" % rprops['name'], timeout, check_mode=check_mode, props=rprops)
        fresh = check_mode or not locked
        result['changed'] = result['changed'] or locked
    plan = disk_plan(props['config.hardware.device'], rprops['config.hardware.device'], state.get('disks'))
    spec = reconfig_spec(plan, props['config.hardware.device'], rprops['config.hardware.device'])
    if spec is not None:
        refuse_foreign_lock(state, opts['lock_run_id'], now, 'Changing the disks of the replica')
        result['actions'].extend('grow replica disk %s to %d bytes' % (disk.key, size) for disk, size in plan['grow'])
        result['actions'].extend('add a replica disk for source disk %s' % disk.key for disk in plan['add'])
        result['changed'] = True
        if not check_mode:
            run_task(target, vm.ReconfigVM_Task, "Growing / adding disks of replica '%s'" % rprops['name'], timeout,
                     spec=spec)
            rprops, fresh = fetch(target, vm, REPLICA_PATHS), True
            plan = disk_plan(props['config.hardware.device'], rprops['config.hardware.device'], state.get('disks'))
            if plan['grow'] or plan['add']:
                raise VsphereError("Replica '%s' did not take the disk changes" % rprops['name'], fault='InvalidState')
    entries = disk_entries(plan['pairs'], rprops['config.hardware.device'], state.get('disks'))
    if opts.get('reset_change_ids'):
        for entry in entries.values():
            entry['change_id'] = None
        reset = sorted(key for key, entry in (state.get('disks') or {}).items() if entry.get('change_id'))
        if reset:
            result['actions'].append('forget the committed changeIds of replica disks %s: their next cycle compares '
                                     'block digests instead of trusting CBT' % ', '.join(str(k) for k in reset))

    def change(current):
        changes = lock_change(current, opts['lock'], opts['lock_owner'], opts['lock_run_id'], opts['lock_ttl'], now,
                              opts.get('lock_process'))
        if adopting and current.get('state') != 'ready':
            changes['state'] = 'ready'
        stored = current.get('source') or {}
        if any(stored.get(k) != v for k, v in identity.items()):
            changes['source'] = identity
        disks = dict((k, v) for k, v in entries.items() if (current.get('disks') or {}).get(k) != v)
        if disks:
            changes['disks'] = disks
        changes.update(seal_cycle(current, opts.get('cycle'), opts.get('retention')))
        return changes

    changed, state = write_state(target, vm, change, "Writing the replication state of '%s'" % rprops['name'],
                                 timeout, check_mode=check_mode, props=rprops if fresh else None)
    if changed:
        result['changed'] = True
    result['replica'] = replica_facts(vm, rprops, state, now)
    if check_mode and spec is not None:
        grown = dict((disk.key, size) for disk, size in plan['grow'])
        for disk in result['replica']['disks']:
            disk['capacity_bytes'] = grown.get(disk['key'], disk['capacity_bytes'])
        result['replica']['disks'].extend(planned_disks(plan['add']))
    if 'disks' in before or not before['exists'] or spec is not None:
        after = {'exists': True, 'disks': _disk_summary(result['replica']['disks'])}
        if before != after:
            result['diff'] = {'before': before, 'after': after}
    return _with_lock_action(result, opts, lock_before, state.get('lock'))


ADOPT_PATHS = REPLICA_PATHS + ['snapshot']


def adopt_vm(target, vm, rprops, opts, source_props, identity):
    """(vm, props, adopting) for adopt: the named VM of the target becomes the replica of the source.

    Already adopted (it carries this source's metadata): (vm, props, False). A first adoption checks that the VM
    is powered off, has no snapshot, carries no replication metadata and has the source's disks (slot and
    capacity each) and returns (vm, props, True); the caller writes the replication state with no committed
    changeIds, so the first cycle compares the VM's disks with the source by digests (plan seeded).
    """
    wanted = opts['adopt']
    found = find_vm(target, {'moid': wanted.get('moid'), 'name': wanted.get('name'),
                             'datacenter': opts.get('target_datacenter')})
    if vm is not None:
        if vm._moId != found._moId:
            raise NotOurReplica("Source VM '%s' already has a replica on %s: '%s' (%s); refusing to adopt '%s' (%s) "
                                "as a second one." % (identity['name'], target.endpoint, rprops['name'], vm._moId,
                                                      wanted.get('name') or wanted.get('moid'), found._moId),
                                fault='NotOurReplica', hint='Remove or forget the existing replica first.')
        return vm, rprops, False
    props = fetch(target, found, ADOPT_PATHS)
    label = "VM '%s' (%s) on %s" % (props['name'], found._moId, target.endpoint)
    if props.get('config.instanceUuid') == identity['instance_uuid']:
        raise NotOurReplica('%s is the source VM itself; a VM is never adopted as its own replica.' % label,
                            fault='NotOurReplica', hint='Name the VM that is to receive the copy.')
    stored = decode(props['config.extraConfig'])
    if stored:
        other = (stored.get('source') or {})
        raise NotOurReplica('%s carries replication metadata (replica of %s, state %s); refusing to adopt it.'
                            % (label, other.get('name') or other.get('instance_uuid'), stored.get('state')),
                            fault='NotOurReplica',
                            hint='If that replication is over, drop its metadata first (replica_register '
                                 'state=forgotten); never adopt a replica of another VM by accident.')
    if str(props.get('runtime.powerState')) != 'poweredOff':
        raise VsphereError('%s is %s; only a powered-off VM is adopted, since its disks are overwritten.'
                           % (label, props.get('runtime.powerState')), fault='InvalidPowerState',
                           hint='Shut it down (replicator.vsphere.vm_power state=shutdown_guest) and run again.')
    if props.get('snapshot') is not None:
        raise VsphereError('%s has snapshots; the copy is written into its base disks, which a snapshot would '
                           'leave stale.' % label, fault='InvalidState',
                           hint='Remove or consolidate its snapshots (snapshot_consolidate), then run again.')
    problems = adopt_mismatches(source_props['config.hardware.device'], props['config.hardware.device'])
    if problems:
        raise VsphereError("%s cannot take the disks of source VM '%s': %s." % (label, identity['name'], '; '.join(problems)),
                           fault='DiskMismatch', hint='Adopt a VM with the same disks (slot and capacity), or '
                                                      'leave adopt out to create a new replica VM.')
    return found, props, True


def _source_replica(source, target, identity_vm, source_uuid, opts):
    """The result skeleton, the replica of the source, its decoded state and the target datacenter scoping the search
    (vm None when there is no replica). identity_vm may be None when the source VM is gone and source_uuid was given."""
    result = {'changed': False, 'actions': [], 'run_id': opts['lock_run_id']}
    if identity_vm is not None:
        props = fetch(source, identity_vm, ['name', 'config.instanceUuid'])
        result['vm'] = vm_summary(identity_vm, props)
        source_uuid = props['config.instanceUuid']
    datacenter = find_datacenter(target, opts['target_datacenter']) if opts.get('target_datacenter') else None
    vm, rprops, _scanned = find_replica(target, source_uuid, datacenter)
    if vm is None:
        result['replica'] = None
        return result, None, None, None, datacenter
    return result, vm, rprops, decode(rprops['config.extraConfig']), datacenter


def ensure_forgotten(source, target, identity_vm, source_uuid, opts, now, check_mode):
    """Drop every replicator.* key from the VM that replicates the source, leaving the VM and its disks as they
    are (the end of a failback: the original VM stops being the failback copy's replica)."""
    result, vm, rprops, state, _datacenter = _source_replica(source, target, identity_vm, source_uuid, opts)
    if vm is None:
        return result
    refuse_foreign_lock(state, opts['lock_run_id'], now, 'Forgetting the replication metadata')
    result['replica'] = replica_facts(vm, rprops, state, now)
    changed, _after = _write_options(target, vm, _forget_pairs, "Forgetting the replication metadata of '%s'"
                                     % rprops['name'], opts['task_timeout'], check_mode, STATE_WRITE_TRIES, rprops)
    if changed:
        result['changed'] = True
        result['actions'].append("drop the replication metadata of '%s' (%s); the VM and its disks stay"
                                 % (rprops['name'], vm._moId))
        result['diff'] = {'before': {'exists': True, 'metadata': True}, 'after': {'exists': True, 'metadata': False}}
    return result


def _with_lock_action(result, opts, before, after):
    if before != after:
        if after is None:
            result['actions'].append('release the lock of run %s' % before.get('run'))
        else:
            verb = 'renew' if before and before.get('run') == after.get('run') else 'take'
            result['actions'].append('%s the lock for run %s until %s' % (verb, after.get('run'), after.get('expires')))
    result['run_id'] = opts['lock_run_id']
    return result


def ensure_absent(source, target, identity_vm, source_uuid, opts, now, check_mode):
    """Destroy the replica of the source (power off first) with its files. identity_vm may be None when the
    source VM is gone and source_uuid was given."""
    result, vm, rprops, state, datacenter = _source_replica(source, target, identity_vm, source_uuid, opts)
    if vm is None:
        return result
    refuse_foreign_lock(state, opts['lock_run_id'], now, 'Removing the replica')
    result['replica'] = replica_facts(vm, rprops, state, now)
    result['changed'] = True
    result['actions'].append("destroy replica '%s' (%s) and its files" % (rprops['name'], vm._moId))
    result['diff'] = {'before': {'exists': True, 'disks': _disk_summary(result['replica']['disks'])},
                      'after': {'exists': False}}
    if check_mode:
        return result
    timeout = opts['task_timeout']
    if str(rprops['runtime.powerState']) == 'poweredOn':
        run_task(target, vm.PowerOffVM_Task, "Powering off replica '%s'" % rprops['name'], timeout)
    run_task(target, vm.Destroy_Task, "Destroying replica '%s'" % rprops['name'], timeout)
    _delete_directory(target, datacenter or resolve_datacenter(target), rprops['config.files.vmPathName'], timeout)
    return result


def _delete_directory(client, datacenter, vmx_path, timeout):
    """Delete the replica's directory (digest maps and journals stay behind Destroy_Task on real hosts)."""
    datastore, path = split_datastore_path(vmx_path)
    directory = posixpath.dirname(path or '')
    if not datastore or not directory:
        return  # a VM at the datastore root: never delete the root
    try:
        run_task(client, client.content.fileManager.DeleteDatastoreFile_Task, 'Deleting [%s] %s' % (datastore, directory),
                 timeout, name='[%s] %s' % (datastore, directory), datacenter=datacenter)
    except VsphereError as exc:
        if exc.fault not in ('FileNotFound', 'NotFound'):
            raise
