"""Cache invalidation between verifier instances that share a PostgreSQL database (issue #15).

Each instance keeps device state in memory (binary auth's cache, and the caches that listen to it: DTLS keys,
the health ingest's rows). When an admin change on one instance drops an entry (`BinAuthCore.forget`,
`forget_tenant`, `forget_all`), the others must drop theirs too, within a bounded time. The bus is one of the
core's listeners: it publishes every drop with PostgreSQL's NOTIFY on channel `janua_cache`, and a task of each
instance LISTENs on its own connection and applies what other instances published to its core (never echoing
it back). A payload is `<instance id> d <device hex>`, `<instance id> t <tenant id>` or `<instance id> *`.

How long a stale entry can live: from the change's commit to the NOTIFY (the handler calls forget right after
it commits), plus delivery to the listening connection (PostgreSQL delivers at once to idle listeners), plus
one turn of the other instance's event loop. bench/pg_scale.py measures it (`verifier.pg.invalidation_ms`). If the
listening connection drops, the instance cannot know what it missed: it drops its whole cache once it is back.
"""

import asyncio
import logging
import os
import sqlite3

import psycopg

from verifier import pgconn

log = logging.getLogger("janua.verifier.cachebus")
CHANNEL = "janua_cache"
RECONNECT_S = 1.0


class CacheBus:
    def __init__(self, url, core):
        self._url = url
        self._core = core
        self.instance = os.urandom(6).hex()
        self._pub = None            # a sync autocommit connection: a NOTIFY from the handler's own thread
        self._task = None
        self._applying = False      # set while a remote drop is applied: the core tells its listeners, us too
        self.received = 0           # drops applied from other instances (tests, /metrics later)
        self.ready = asyncio.Event()

    async def start(self):
        self._pub = pgconn.PGConnection(self._url)   # opened again after a cut (pgconn)
        self._core.listeners.append(self)
        self._task = asyncio.get_running_loop().create_task(self._listen())
        await asyncio.wait_for(self.ready.wait(), 10)
        return self

    async def close(self):
        if self in self._core.listeners:
            self._core.listeners.remove(self)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._pub is not None:
            self._pub.close()

    # the core's listener interface: publish what this instance drops
    def forget(self, device_id):
        self._publish(f"d {device_id.hex()}")

    def forget_tenant(self, tenant_id):
        self._publish(f"t {tenant_id}")

    def forget_all(self):
        self._publish("*")

    def _publish(self, what):
        if self._applying or self._pub is None:
            return
        try:
            self._pub.execute("SELECT pg_notify(?, ?)", (CHANNEL, f"{self.instance} {what}"))
        except sqlite3.Error as e:
            # the others keep a stale entry until their listener reconnects (and drops everything) or the entry is
            # evicted: say so; the change itself is committed
            log.warning("cache bus: could not notify the other instances (%s)", str(e).strip())

    def apply(self, payload):
        """Apply one payload published by any instance (ours are skipped)."""
        parts = payload.split(" ", 2)
        if len(parts) < 2 or parts[0] == self.instance:
            return
        self._applying = True
        try:
            kind = parts[1]
            if kind == "d" and len(parts) == 3:
                self._core.forget(bytes.fromhex(parts[2]))
            elif kind == "t" and len(parts) == 3:
                self._core.forget_tenant(parts[2])
            elif kind == "*":
                self._core.forget_all()
            else:
                return
            self.received += 1
        except ValueError:
            log.warning("cache bus: a payload that is not janua's: %r", payload[:80])
        finally:
            self._applying = False

    async def _listen(self):
        first = True
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                try:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if not first:          # what was published while we were away is lost: start clean
                        self._applying = True
                        try:
                            self._core.forget_all()
                        finally:
                            self._applying = False
                    first = False
                    self.ready.set()
                    async for n in conn.notifies():
                        self.apply(n.payload)
                finally:
                    await conn.close()
            except asyncio.CancelledError:
                raise
            except psycopg.Error as e:
                log.warning("cache bus: listening connection lost (%s); again in %.0f s", str(e).strip(), RECONNECT_S)
                await asyncio.sleep(RECONNECT_S)
