"""Release files in PostgreSQL (verifier/ota/store_pg.py): a release uploaded through one verifier instance is
downloaded from another with a --state-dir of its own, byte for byte, whole and by ranges across chunk
boundaries; identical files are stored once; an upload cut short, or a write that fails halfway, leaves no part
of a file visible."""

import pytest

from tests.ota_verifier.conftest import Tenant, trust
from tests.ota_verifier.test_downloads import IMAGE, check_ranges, cut_upload_short, file_url, image_bundle, released
from tests.pgcluster import fresh_database
from tests.support import KEK, clock  # noqa: F401 (fixture)
from verifier.app import create_app
from verifier.appkeys import OTA, STORAGE
from verifier.config import Config
from verifier.ota.core import BlobStore
from verifier.ota.store_pg import PGBlobStore


@pytest.fixture(scope="module")
def signing(tmp_path_factory):
    from tools import ota as host
    k, p, kid = host.keygen(tmp_path_factory.mktemp("keys"), "release")
    return {"release": {"key": k, "pub": p, "kid": kid, "pub_hex": host.load_public(p)[1].hex()}}


@pytest.fixture
async def pair(pg_url, tmp_path, clock, aiohttp_client):
    url = fresh_database(pg_url)
    clients = []
    for name in ("a", "b"):
        cfg = Config(db_path=url, state_dir=str(tmp_path / name), kek=KEK, clock=clock, http_port=0, udp_port=None,
                     dtls_port=None)
        clients.append(await aiohttp_client(create_app(cfg)))
    return clients


async def test_uploaded_through_a_downloaded_from_b(pair, clock, signing, tmp_path):
    a, b = pair
    assert type(a.app[OTA].blobs) is PGBlobStore and type(b.app[OTA].blobs) is PGBlobStore
    _, rel, did = await released(a, clock, signing, tmp_path)
    assert [f["size"] for f in rel["files"]] == [524544]
    r = await b.get(file_url(b.app, rel, did, clock))
    body = await r.read()
    assert r.status == 200 and len(body) == 524544 and body == IMAGE
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["ETag"] == '"%s"' % rel["files"][0]["sha256"]
    # neither instance keeps the file in its state dir (<state dir>/janua.releases): the database has it, in 3 rows
    for name in ("a", "b"):
        assert [p for p in (tmp_path / name / "janua.releases").rglob("*") if p.is_file()] == []
    rows = a.app[STORAGE]._db.execute("SELECT chunk_no, length(data) FROM release_blobs ORDER BY chunk_no").fetchall()
    assert [tuple(r) for r in rows] == [(0, 262144), (1, 262144), (2, 256)]


async def test_ranges_from_the_other_instance(pair, clock, signing, tmp_path):
    a, b = pair
    _, rel, did = await released(a, clock, signing, tmp_path)
    await check_ranges(b, file_url(b.app, rel, did, clock), rel["files"][0]["sha256"])


async def test_identical_files_are_stored_once(pair, clock, signing, tmp_path):
    a, b = pair
    await released(a, clock, signing, tmp_path / "1", "1.0", 1)
    await released(b, clock, signing, tmp_path / "2", "2.0", 2)        # the same image, through the other one
    n = a.app[STORAGE]._db.execute("SELECT count(*) FROM release_blobs").fetchone()[0]
    assert n == 3 and len(a.app[OTA].blobs.digests()) == 1


async def test_an_upload_cut_short_leaves_nothing_on_either(pair, clock, signing, tmp_path):
    a, b = pair
    tenant = Tenant(a.app, "cut", clock)
    await trust(a, tenant, signing)
    tmp = await cut_upload_short(a, tenant, image_bundle(tmp_path, signing, "1.0", 1), 300000)
    assert tmp.is_dir() and list(tmp.iterdir()) == []          # the spooled part was removed
    assert a.app[OTA].blobs.digests() == [] and b.app[OTA].blobs.digests() == []
    assert b.app[STORAGE].list_releases(tenant.id) == []


def test_a_write_failing_halfway_stores_no_part(pg_url, tmp_path, monkeypatch):
    from verifier.store_pg import PGStorage
    st = PGStorage(fresh_database(pg_url))
    try:
        blobs = st.release_blobs(tmp_path / "rel")
        tmp, f = blobs.new_temp()
        f.write(IMAGE)
        f.close()
        real, puts = st._db.execute, []

        def execute(sql, args=()):
            if sql.startswith("INSERT INTO release_blobs"):
                puts.append(args[1])
                if len(puts) == 2:
                    raise OSError("the line dropped")
            return real(sql, args)
        monkeypatch.setattr(st._db, "execute", execute)
        with pytest.raises(OSError):
            blobs.commit(tmp, "ab" * 32)
        monkeypatch.undo()
        assert puts == [0, 1]
        assert st._db.execute("SELECT count(*) FROM release_blobs").fetchone()[0] == 0
        assert blobs.digests() == [] and not tmp.exists()
    finally:
        st.close()


def test_sqlite_keeps_the_files_on_disk(tmp_path):
    from verifier.store import SQLiteStorage
    st = SQLiteStorage(str(tmp_path / "j.db"))
    try:
        assert type(st.release_blobs(tmp_path / "rel")) is BlobStore
    finally:
        st.close()


async def test_reads_chunk_by_chunk(pg_url, tmp_path):
    from verifier.store_pg import PGStorage
    st = PGStorage(fresh_database(pg_url))
    blobs = st.release_blobs(tmp_path / "rel")

    def put(data, sha):
        tmp, f = blobs.new_temp()
        f.write(data)
        f.close()
        blobs.commit(tmp, sha)

    async def read(sha, start, stop):
        return [c async for c in blobs.read(sha, start, stop)]
    try:
        put(IMAGE, "11" * 32)
        put(b"", "22" * 32)                      # an empty file is stored too (one empty chunk)
        assert blobs.digests() == ["11" * 32, "22" * 32]
        assert [len(c) for c in await read("11" * 32, 0, 524544)] == [262144, 262144, 256]
        assert await read("11" * 32, 262140, 262151) == [bytes([252, 253, 254, 255]), bytes(range(7))]
        assert await read("11" * 32, 524543, 524544) == [bytes([255])]
        assert await read("22" * 32, 0, 0) == []
        with pytest.raises(FileNotFoundError):
            await read("33" * 32, 0, 1)
        with pytest.raises(FileNotFoundError):
            await read("11" * 32, 524000, 524545)             # past the end of what is stored
    finally:
        await blobs.close()
        st.close()
