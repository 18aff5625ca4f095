# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which snapshots are orphans of earlier failed runs: ours by name prefix, and old enough. Pure: no I/O.

Ages are measured against the server's clock (the one that stamped createTime), never the controller's.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime

_UTC = datetime.timezone.utc


def ours(name, prefix):
    """True when a snapshot name carries our prefix (an empty prefix matches nothing: never user snapshots)."""
    return bool(prefix) and (name or '').startswith(prefix)


def age_seconds(created, now):
    """Seconds between two datetimes (naive ones are UTC), or None when `created` is unknown."""
    if created is None or now is None:
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=_UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=_UTC)
    return (now - created).total_seconds()


def select_orphans(nodes, prefix, min_age, now, holder_run=None):
    """The nodes (objects with name, create_time, depth) to remove, deepest first.

    Ours by prefix and at least `min_age` seconds old; `min_age` 0 takes all of ours, an unknown age only then.
    holder_run: the run that holds the VM's lock. No other run can be alive then, so every snapshot of ours but
    that run's own cycle snapshot (prefix + holder_run) is an orphan whatever its age.
    """
    selected = []
    for node in nodes:
        if not ours(node.name, prefix):
            continue
        if holder_run:
            if node.name == prefix + holder_run:
                continue
        elif min_age > 0:
            age = age_seconds(node.create_time, now)
            if age is None or age < min_age:
                continue
        selected.append(node)
    return sorted(selected, key=lambda n: -n.depth)
