# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parser for VMDK text descriptors (pure, no I/O).

Only what the data mover needs: the createType, the extent lines, the parent link (CID / parentCID /
parentFileNameHint) and the disk database (ddb.*). A flat disk (monolithicFlat, vmfs, vmfsThin, ...) is read as its
flat extent file; delta (child of a parent) and sparse disks are refused, they need the nbd transport (qemu-nbd reads
vmfsSparse / seSparse chains).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

SECTOR = 512
DESCRIPTOR_MAGIC = '# Disk DescriptorFile'
SPARSE_MAGICS = {b'KDMV': 'monolithicSparse / streamOptimized (hosted sparse)', b'COWD': 'vmfsSparse (ESX delta)'}
NO_PARENT_CID = 'ffffffff'
FLAT_EXTENT_TYPES = ('FLAT', 'VMFS')
SPARSE_CREATE_TYPES = ('monolithicsparse', 'twogbmaxextentsparse', 'vmfssparse', 'sesparse', 'streamoptimized',
                       'vsansparse')
NBD_HINT = 'use the nbd transport (e.g. qemu-nbd or nbdkit-vddk serving the snapshot disk) for this disk'

_EXTENT_RE = re.compile(r'^(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Za-z]+)(?:\s+"((?:[^"\\]|\\.)*)"(?:\s+(\d+))?)?\s*$')
_KV_RE = re.compile(r'^([A-Za-z0-9_.]+)\s*=\s*(.*)$')


class VmdkError(Exception):
    """The descriptor cannot be used as a flat disk (message says why and what to do)."""


class VmdkExtent(object):
    __slots__ = ('access', 'sectors', 'kind', 'filename', 'offset_sectors')

    def __init__(self, access, sectors, kind, filename, offset_sectors):
        self.access = access
        self.sectors = sectors
        self.kind = kind
        self.filename = filename
        self.offset_sectors = offset_sectors

    @property
    def size(self):
        return self.sectors * SECTOR

    @property
    def offset(self):
        return self.offset_sectors * SECTOR

    def __repr__(self):
        return 'VmdkExtent(%s %d %s %r %d)' % (self.access, self.sectors, self.kind, self.filename, self.offset_sectors)


class VmdkDescriptor(object):
    """Parsed descriptor: create_type, cid, parent_cid, parent_hint, extents (list of VmdkExtent), ddb (dict)."""

    def __init__(self, create_type, cid, parent_cid, parent_hint, extents, ddb, fields):
        self.create_type = create_type
        self.cid = cid
        self.parent_cid = parent_cid
        self.parent_hint = parent_hint
        self.extents = extents
        self.ddb = ddb
        self.fields = fields

    @property
    def capacity(self):
        return sum(e.size for e in self.extents)

    @property
    def has_parent(self):
        return bool(self.parent_hint) or (self.parent_cid is not None and self.parent_cid.lower() != NO_PARENT_CID)

    @property
    def is_sparse(self):
        if (self.create_type or '').lower() in SPARSE_CREATE_TYPES:
            return True
        return any(e.kind.upper() not in FLAT_EXTENT_TYPES and e.kind.upper() != 'ZERO' for e in self.extents)


def _unquote(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        value = value[1:-1]
    return value


def looks_like_descriptor(head):
    """True if the first bytes of a file (bytes) are a VMDK text descriptor."""
    return head.lstrip(b'\xef\xbb\xbf').startswith(DESCRIPTOR_MAGIC.encode('ascii'))


def sparse_kind(head):
    """Name of a binary sparse VMDK format recognised from its first 4 bytes, or None."""
    return SPARSE_MAGICS.get(bytes(head[:4]))


def parse_descriptor(text):
    """Parse descriptor text (str) into a VmdkDescriptor. VmdkError on malformed input."""
    if not isinstance(text, str):
        raise VmdkError('descriptor must be text')
    fields = {}
    ddb = {}
    extents = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        m = _EXTENT_RE.match(line)
        if m:
            access, sectors, kind, filename, offset = m.groups()
            if kind.upper() != 'ZERO' and filename is None:
                raise VmdkError('descriptor line %d: extent of type %s without a file name' % (lineno, kind))
            extents.append(VmdkExtent(access, int(sectors), kind.upper(), filename,
                                      int(offset) if offset else 0))
            continue
        m = _KV_RE.match(line)
        if not m:
            raise VmdkError('descriptor line %d is neither an extent nor key = value: %r' % (lineno, line[:80]))
        key, value = m.group(1), _unquote(m.group(2))
        if key.startswith('ddb.'):
            ddb[key[4:]] = value
        else:
            fields[key] = value
    if 'createType' not in fields:
        raise VmdkError('not a VMDK descriptor: no createType')
    return VmdkDescriptor(fields.get('createType'), fields.get('CID'), fields.get('parentCID'),
                          fields.get('parentFileNameHint'), extents, ddb, fields)


def flat_extent(desc, name='disk'):
    """The single flat extent of a flat, parentless disk; VmdkError (with the nbd hint) otherwise."""
    if desc.has_parent:
        raise VmdkError('%s is a delta disk (parent %s); its data is spread over a snapshot chain and cannot be read '
                        'as one flat file: %s' % (name, desc.parent_hint or desc.parent_cid, NBD_HINT))
    if desc.is_sparse:
        raise VmdkError('%s has a sparse format (createType %s) that cannot be read as a flat file: %s'
                        % (name, desc.create_type, NBD_HINT))
    data = [e for e in desc.extents if e.kind != 'ZERO']
    if not desc.extents:
        raise VmdkError('%s: descriptor lists no extents' % name)
    if len(desc.extents) != 1 or len(data) != 1:
        raise VmdkError('%s has %d extents (createType %s); only single-extent flat disks are read directly: %s'
                        % (name, len(desc.extents), desc.create_type, NBD_HINT))
    return data[0]
