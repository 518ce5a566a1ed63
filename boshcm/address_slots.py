"""Per-address counting of connections or sessions, so one address cannot take them all (pure).

Used for unauthenticated sessions (c2s, WebSocket, BOSH) and for WebSocket connections. The table only
holds addresses with at least one slot taken, so its size is bounded by the live connections, which the
caps themselves bound.
"""

from __future__ import annotations


class AddressSlots:
    """At most `per_address` slots taken by one address at a time."""

    def __init__(self, *, per_address: int) -> None:
        self._per_address = per_address
        self._taken: dict[str, int] = {}

    def take(self, address: str) -> Slot | None:
        """A slot for `address`, or None when it already holds `per_address` of them."""
        taken = self._taken.get(address, 0)
        if taken >= self._per_address:
            return None
        self._taken[address] = taken + 1
        return Slot(self, address)

    def _give_back(self, address: str) -> None:
        taken = self._taken.get(address, 0)
        if taken <= 1:
            self._taken.pop(address, None)
        else:
            self._taken[address] = taken - 1

    def count(self, address: str) -> int:
        return self._taken.get(address, 0)

    def __len__(self) -> int:
        """Addresses holding at least one slot."""
        return len(self._taken)


class Slot:
    """One taken slot; `release()` may be called any number of times, it gives the slot back once."""

    __slots__ = ("_address", "_slots")

    def __init__(self, slots: AddressSlots, address: str) -> None:
        self._slots: AddressSlots | None = slots
        self._address = address

    @property
    def held(self) -> bool:
        return self._slots is not None

    def release(self) -> None:
        if self._slots is not None:
            self._slots._give_back(self._address)
            self._slots = None
