# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Set of disjoint half-open byte intervals (pure, no I/O).

Used by the journal to remember which bytes of the target are already preserved in the current cycle, so that only
the first (oldest) content of a byte is ever journaled.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import bisect


class IntervalSet(object):
    """Sorted, disjoint, non-adjacent [start, end) intervals; adjacent or overlapping additions are merged."""

    def __init__(self, intervals=None):
        self._starts = []
        self._ends = []
        for start, end in intervals or ():
            self.add(start, end)

    def __len__(self):
        return len(self._starts)

    def __iter__(self):
        return iter(list(zip(self._starts, self._ends)))

    def __eq__(self, other):
        return isinstance(other, IntervalSet) and list(self) == list(other)

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        return 'IntervalSet(%r)' % (list(self),)

    @property
    def total(self):
        """Number of bytes covered."""
        return sum(e - s for s, e in zip(self._starts, self._ends))

    @staticmethod
    def _check(start, end):
        if start < 0 or end < start:
            raise ValueError('invalid interval [%d, %d)' % (start, end))

    def add(self, start, end):
        """Cover [start, end), merging with overlapping or touching intervals."""
        self._check(start, end)
        if start == end:
            return
        # first interval whose end >= start (touching counts) and last whose start <= end
        lo = bisect.bisect_left(self._ends, start)
        hi = bisect.bisect_right(self._starts, end)
        if lo < hi:
            start = min(start, self._starts[lo])
            end = max(end, self._ends[hi - 1])
        self._starts[lo:hi] = [start]
        self._ends[lo:hi] = [end]

    def missing(self, start, end):
        """Return the list of (start, end) pieces of [start, end) NOT covered by the set, in order."""
        self._check(start, end)
        out = []
        pos = start
        i = bisect.bisect_right(self._ends, start)
        while pos < end and i < len(self._starts):
            s, e = self._starts[i], self._ends[i]
            if s >= end:
                break
            if s > pos:
                out.append((pos, s))
            pos = max(pos, e)
            i += 1
        if pos < end:
            out.append((pos, end))
        return out

    def covers(self, start, end):
        """True when every byte of [start, end) is in the set."""
        return not self.missing(start, end)
