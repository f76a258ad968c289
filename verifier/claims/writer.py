"""Group commit of new claims: the claims decided in one event-loop turn are written in one transaction
(storage.commit_new_claims, each under its own savepoint), and only then answered. A claim's answer goes out only
after its device, claim row, slot and audit row are committed, as with one transaction per claim; what the batch
saves is the commit (most of a claim's cost on SQLite). Two claims of the last slot in one batch are decided by the
same conditional UPDATE one after the other, so still only one wins."""

import asyncio

MAX_BATCH = 256


class ClaimWriter:
    def __init__(self, storage):
        self.storage = storage
        self._items = []          # (item, future)
        self._scheduled = False
        self.batches = self.written = 0

    def submit(self, item):
        """Queue one new claim; the future resolves to None (committed) or the refusal (an exception instance)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._items.append((item, fut))
        if len(self._items) >= MAX_BATCH:
            self._run()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._run)
        return fut

    def _run(self):
        self._scheduled = False
        items, self._items = self._items, []
        if not items:
            return
        try:
            outcomes = self.storage.commit_new_claims([i for i, _ in items])
        except Exception as e:                 # the transaction failed: none of them is committed
            for _, fut in items:
                if not fut.done():
                    fut.set_exception(e)
            return
        self.batches += 1
        self.written += len(items)
        for (_, fut), out in zip(items, outcomes):
            if not fut.done():
                fut.set_result(out)
