"""The demo ERP's random stream and its index: where each generated debtor starts, by number and by AFM."""

from __future__ import annotations

import random
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

from erp_connectors.demo.data import DEMO_CITIZENS

#: the largest data set: the AFM stems run out beyond it (see _stem_range)
MAX_DEBTORS = 45_000_000
#: the first debtors draw AFM stems from 10,000,000-19,999,999, as the demo always did; at most half of that
#: space is used so the draws that hit a taken stem stay rare
_CLASSIC_STEM_DEBTORS = 5_000_000
#: debtors per saved state of the random stream: replaying one debtor replays at most this many
_CHECKPOINT_EVERY = 256
#: debtors indexed per step when a look-up needs the index to go further
INDEX_STEP = 4_096
#: below this many taken AFM stems a set takes less memory than the bitmap (2.5 MB and up) that replaces it
_BITMAP_FROM = 32_768


def _stem_range(debtor: int) -> tuple[int, int]:
    if debtor <= _CLASSIC_STEM_DEBTORS:
        return 10_000_000, 20_000_000
    return 20_000_000, 100_000_000


class StreamIndex:
    """Where each generated debtor of one (agency, seed) starts in the random stream; grows as walks go further.

    The stream depends on neither as_of nor the number of debtors, so one index serves every DemoERP of
    that agency and seed, and a debtor or debt can be replayed from the nearest checkpoint instead of
    from the start: that is what keeps look-ups quick in a data set of millions.
    """

    def __init__(self, agency_code: str, seed: int, first_generated_serial: int) -> None:
        self.lock = threading.Lock()
        self.first_generated_serial = first_generated_serial
        #: stems[d - 1]: the AFM of debtor d without its check digit
        self._stems = array("I")
        #: first_serials[d - 1]: the serial of debtor d's first debt
        self._first_serials = array("I")
        #: checkpoints[i]: the random state before debtor i * _CHECKPOINT_EVERY + 1
        self._checkpoints: list[tuple[int, array[int], float | None]] = []
        # Seeded by a string, not hash(), so the data is the same in every process and Python version.
        self._checkpoints.append(_pack_state(random.Random(f"{seed}:{agency_code}").getstate()))
        self._taken_set: set[int] | None = {int(citizen.tax_id[:8]) for citizen in DEMO_CITIZENS}
        self._taken_bits = bytearray()
        self._by_stem: tuple[int, array[int], array[int]] = (0, array("I"), array("I"))

    @property
    def frontier(self) -> int:
        """How many debtors are indexed."""
        return len(self._stems)

    def first_serial(self, debtor: int) -> int:
        """The serial of an indexed debtor's first debt."""
        return self._first_serials[debtor - 1]

    def resume(self, debtor: int) -> tuple[int, int, random.Random]:
        """A random stream positioned at the nearest checkpoint at or before debtor: (its debtor, serial, stream)."""
        with self.lock:
            checkpoint = min((debtor - 1) // _CHECKPOINT_EVERY, len(self._checkpoints) - 1)
            version, internal, gauss = self._checkpoints[checkpoint]
            start = checkpoint * _CHECKPOINT_EVERY + 1
            indexed = start <= len(self._first_serials)
            serial = self._first_serials[start - 1] if indexed else self.first_generated_serial
        rng = random.Random()
        rng.setstate((version, tuple(internal), gauss))
        return start, serial, rng

    def next_stem(self, rng: random.Random, debtor: int, serial: int) -> int:
        """Draw debtor's AFM stem from rng exactly as the first walk did, indexing the debtor if it is new."""
        low, high = _stem_range(debtor)
        with self.lock:
            if debtor <= len(self._stems):
                known = self._stems[debtor - 1]
                # Stems are unique, so the first draw equal to the known stem is the one the first walk kept.
                while rng.randrange(low, high) != known:
                    pass
                return known
            # Walks go one debtor at a time from an indexed point, so this debtor is the next one to index.
            if (debtor - 1) % _CHECKPOINT_EVERY == 0 and len(self._checkpoints) == (debtor - 1) // _CHECKPOINT_EVERY:
                self._checkpoints.append(_pack_state(rng.getstate()))
            stem = rng.randrange(low, high)
            while self._is_taken(stem):
                stem = rng.randrange(low, high)
            self._take(stem)
            self._stems.append(stem)
            self._first_serials.append(serial)
            return stem

    def extend(self, walk: Callable[[int, int, date], Iterator[object]], debtors: int) -> None:
        """Index the first `debtors` debtors, walking on from the last checkpoint if needed."""
        if self.frontier < debtors:
            # Any date will do: the draws, and so the index, do not depend on it.
            for _ in walk(debtors, debtors, date(2000, 1, 1)):
                pass

    def debtor_by_serial(self, serial: int, limit: int) -> int | None:
        """The last of the first `limit` indexed debtors whose first serial is at or before this one."""
        position = bisect_right(self._first_serials, serial, 0, limit)
        return position or None

    def debtor_by_stem(self, stem: int, limit: int) -> int | None:
        """The debtor (among the first `limit`) with this AFM stem, if any."""
        with self.lock:
            indexed, stems, debtors = self._by_stem
            if indexed != len(self._stems):
                order = sorted(range(len(self._stems)), key=self._stems.__getitem__)
                stems = array("I", (self._stems[position] for position in order))
                debtors = array("I", (position + 1 for position in order))
                self._by_stem = (len(self._stems), stems, debtors)
        position = bisect_left(stems, stem)
        if position < len(stems) and stems[position] == stem and debtors[position] <= limit:
            return debtors[position]
        return None

    def _is_taken(self, stem: int) -> bool:
        if self._taken_set is not None:
            return stem in self._taken_set
        byte = stem >> 3
        return byte < len(self._taken_bits) and bool(self._taken_bits[byte] >> (stem & 7) & 1)

    def _take(self, stem: int) -> None:
        if self._taken_set is not None:
            self._taken_set.add(stem)
            if len(self._taken_set) < _BITMAP_FROM:
                return
            taken, self._taken_set = self._taken_set, None
            for old in taken:
                self._take(old)
            return
        byte = stem >> 3
        if byte >= len(self._taken_bits):
            self._taken_bits.extend(bytes(byte + 1 - len(self._taken_bits)))
        self._taken_bits[byte] |= 1 << (stem & 7)


def _pack_state(state: tuple[Any, ...]) -> tuple[int, array[int], float | None]:
    # A Mersenne Twister state as a tuple of Python ints takes ~22 KB; packed it takes 2.5 KB.
    version, internal, gauss = state
    return version, array("I", internal), gauss


_INDEXES: dict[tuple[str, int], StreamIndex] = {}
_INDEXES_LOCK = threading.Lock()
#: indexes kept for the process; test runs try many seeds, and each index of a big data set is megabytes
_INDEXES_KEPT = 32


def stream_index(agency_code: str, seed: int, first_generated_serial: int) -> StreamIndex:
    with _INDEXES_LOCK:
        index = _INDEXES.pop((agency_code, seed), None)
        if index is None:
            index = StreamIndex(agency_code, seed, first_generated_serial)
        _INDEXES[(agency_code, seed)] = index
        while len(_INDEXES) > _INDEXES_KEPT:
            del _INDEXES[next(iter(_INDEXES))]
        return index
