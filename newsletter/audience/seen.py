"""The addresses a list has named so far, and the line each was first on, in little memory.

A list of a million people is read as a stream, but a duplicate entry must still be caught (and
reported with the line of the first one): that needs every address seen so far. A dict of them
takes over 100 MB at a million; here each address is kept as its 64-bit hash and its line, in
two flat arrays searched by open addressing (Knuth's linear probing): 24 MB at a million.

Two different addresses with the same hash (odds about 3 in 100 million for a million-address
list) would be reported as one listed twice: said, never merged in silence.
"""

from __future__ import annotations

from array import array

_MASK64 = (1 << 64) - 1


class AddressSet:
    """Addresses by hash, with the line each was first seen on."""

    def __init__(self, capacity: int = 1 << 12) -> None:
        size = 1 << max(4, (capacity * 2 - 1).bit_length())
        self._keys = array("Q", bytes(8 * size))  # 0: an empty slot
        self._lines = array("I", bytes(4 * size))
        self._mask = size - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, address: str, line: int) -> int | None:
        """Record `address` as first seen on `line`; if it was seen before, return that line."""
        # str's own hash (SipHash, 64 bits, cached on the string), never 0 for an empty slot
        key = (hash(address) & _MASK64) | 1
        keys, mask = self._keys, self._mask
        i = key & mask
        while True:
            found = keys[i]
            if found == key:
                return self._lines[i]
            if not found:
                break
            i = (i + 1) & mask
        keys[i] = key
        self._lines[i] = line
        self._count += 1
        if self._count * 2 > len(keys):
            self._grow()
        return None

    def _grow(self) -> None:
        old = zip(self._keys, self._lines, strict=True)
        size = len(self._keys) * 2
        self._keys = array("Q", bytes(8 * size))
        self._lines = array("I", bytes(4 * size))
        self._mask = size - 1
        keys, lines, mask = self._keys, self._lines, self._mask
        for key, line in old:
            if key:
                i = key & mask
                while keys[i]:
                    i = (i + 1) & mask
                keys[i] = key
                lines[i] = line
