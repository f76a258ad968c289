"""The bounded device cache of binary auth: device id -> DeviceState, CLOCK eviction.

`map` is a plain dict the hot path reads directly (`map.get(did)`, then `st.ref = True` on a hit: one
attribute store, about 13 ns a hit on the development machine, where an OrderedDict's get and move_to_end
add about 30 ns). A ring of
slots, one per entry, is swept by a hand when a new entry needs room: a referenced entry gets a second
chance (its bit is cleared), a dirty one is skipped, the first clean unreferenced one goes.

Dirty: an entry whose last accepted timestamp (or activation) is queued but not yet written by
BinAuthCore.flush(). It is never evicted: a reload from storage would read the previous timestamp and
accept a replay of the packet just accepted. An entry is dirty while `st.epoch == cache.epoch`; the
core stamps the epoch when it accepts and `flushed()` advances it after a successful write, so a flush
costs nothing per entry. When every entry is dirty (more distinct devices accepted in one batch than the
bound) the cache holds more than `capacity` instead, by at most one batch, until the next load after
the flush brings it back down.

A packet naming a registered device id loads that device before its tag is checked (ids are not
secret): the bound is what caps the memory a flood of such packets can take; what it costs then is
churn, an unseal and a key derivation per load. Entries do not expire by age: the registry's forget*()
calls keep them current.
"""


class DeviceCache:
    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError("the device cache holds at least one device")
        self.capacity = capacity
        self.map = {}           # device id (8 bytes) -> DeviceState
        self.epoch = 0          # entries stamped with it hold state not yet flushed
        self.evictions = 0
        self._ring = []         # DeviceState, or None for a free slot
        self._free = []         # indexes of the free slots
        self._hand = 0

    def __len__(self):
        return len(self.map)

    def add(self, st):
        """Cache `st` (a DeviceState just loaded from storage), evicting clean entries while full."""
        self.discard(st.device_id)
        while len(self.map) >= self.capacity and self._evict():
            pass
        ring = self._ring
        if self._free:
            slot = self._free.pop()
            ring[slot] = st
        else:
            slot = len(ring)
            ring.append(st)
        st.slot = slot
        self.map[st.device_id] = st

    def _evict(self):
        # one clean entry out, within two sweeps (the first clears the reference bits); False if all are dirty
        ring, epoch, n = self._ring, self.epoch, len(self._ring)
        hand = self._hand
        for _ in range(2 * n):
            c = ring[hand]
            if c is not None:
                if c.ref:
                    c.ref = False
                elif c.epoch != epoch:
                    del self.map[c.device_id]
                    ring[hand] = None
                    self._free.append(hand)
                    self.evictions += 1
                    self._hand = hand + 1 if hand + 1 < n else 0
                    return True
            hand = hand + 1 if hand + 1 < n else 0
        self._hand = hand
        return False

    def flushed(self):
        """The queued state of every entry is durable: they may all be evicted from now on."""
        self.epoch += 1

    def discard(self, device_id):
        st = self.map.pop(device_id, None)
        if st is not None:
            self._ring[st.slot] = None
            self._free.append(st.slot)

    def clear(self):
        self.map.clear()
        self._ring.clear()
        self._free.clear()
        self._hand = 0
