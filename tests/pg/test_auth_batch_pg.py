"""The PostgreSQL auth batch is one message (verifier/store_pg.py record_auth_async): a writer of the same process on
the event loop's thread (BEGIN IMMEDIATE, the writer lock taken exclusively) while the batch is in flight gets its
lock once the server has finished the batch by itself; a batch transaction left open across awaits would make that
writer wait for a loop it blocks (the instance hangs; here: the lock timeout)."""

import asyncio

import psycopg

from tests.pgcluster import fresh_database
from verifier.store_pg import PGStorage

DID = bytes(range(8))
HELD = "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ShareLock' AND granted"


def test_a_sync_writer_during_an_auth_batch_gets_the_lock(pg_url):
    st = PGStorage(fresh_database(pg_url))
    st._db.execute("SET lock_timeout = '5s'")
    watch = psycopg.connect(st.url, autocommit=True)

    async def go():
        await st.aopen()
        try:
            batch = asyncio.get_running_loop().create_task(st.record_auth_async([(7, 100, DID)], [], []))
            for _ in range(200):              # until the batch holds the shared lock (or is done), loop frozen each look
                await asyncio.sleep(0)
                if batch.done() or watch.execute(HELD).fetchone():
                    break
            with st.transaction():            # on the loop's thread: blocks it until the lock is free
                st._db.execute("UPDATE change_counter SET seq = seq WHERE id = 1")
            return await batch
        finally:
            await st.aclose()

    assert asyncio.run(go()) == set()
    assert st._db.execute("SELECT last_ts, last_authenticated_at FROM auth_state").fetchall() == [(7, 100)]
    st.close()
    watch.close()
