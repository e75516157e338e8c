"""An erased follow-up number is gone from the disk, not only from the answers: after the
call, on request, after 3 months (the controller's clock moved), no byte of it is left in
``escape.db``, ``escape.db-wal`` or ``escape.db-shm`` while the controller runs on; a reader
holding an old snapshot (a backup) or a full disk delays that to the next round, never fails
the request."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from config.game import Game
from controller.followup import Followup, purge_every
from controller.main import create_app
from protocol.mqtt import BrokerAddress
from tests.conftest import BrokerHandle
from tests.controller.conftest import FakeClocks
from tests.controller.test_planning import played_session

DAY = 24 * 3600
CLIENT_HEADERS = {"Content-Type": "application/json"}   # for the conftest's client
KEPT, ERASED = "0611223344", "0699887766"


def forms(number: str) -> list[bytes]:
    """The number as stored (digits), as typed with spaces, and in the +33 form."""
    spaced = " ".join(number[i:i + 2] for i in range(0, 10, 2))
    return [number.encode(), spaced.encode(), f"+33 {spaced[1:]}".encode(), f"+33{number[1:]}".encode()]


def on_disk(tmp_path: Path, number: str) -> list[str]:
    """The store's files holding any form of *number*, read byte for byte."""
    return [f"{p.name}: {form!r}" for p in sorted(tmp_path.glob("escape.db*")) if p.is_file()
            for form in forms(number) if form in p.read_bytes()]


def give(client: TestClient, number: str) -> int:
    session = played_session(client)
    spaced = " ".join(number[i:i + 2] for i in range(0, 10, 2))
    reply = client.post(f"/api/followup/sessions/{session}/contacts", json={"phone": spaced, "consent": True})
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def erase(client: TestClient, clocks: FakeClocks, contact: int, way: str) -> None:
    if way == "called":
        clocks.advance(31 * DAY)
        reply = client.post(f"/api/followup/contacts/{contact}/call", json={"answers": {"useful": 4}})
    elif way == "request":
        reply = client.delete(f"/api/followup/contacts/{contact}")
    else:
        clocks.advance(31 * DAY)   # 91 days after the first number: the reading erases it
        reply = client.get("/api/followup/calls")
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("way", ["called", "request", "retention"])
def test_an_erased_number_leaves_no_byte_in_the_store_files(client: TestClient, clocks: FakeClocks,
                                                            tmp_path: Path, way: str):
    contact = give(client, ERASED)
    if way == "retention":
        clocks.advance(60 * DAY)
    kept = give(client, KEPT)   # in the same page: nothing written after the erasure hides it
    assert on_disk(tmp_path, ERASED), "the byte search finds a number kept"
    erase(client, clocks, contact, way)

    assert on_disk(tmp_path, ERASED) == [], f"erased ({way}), yet on disk"
    assert on_disk(tmp_path, KEPT), "a number still kept stays (the search is not blind)"
    exported = client.get(f"/api/followup/contacts/{contact}").json()["contact"]
    assert exported["phone"] is None and exported["erased_why"] == way
    assert client.get(f"/api/followup/contacts/{kept}").json()["contact"]["phone"] == KEPT
    assert client.get("/api/state").status_code == 200, "the controller runs on"


def test_a_reader_holding_an_old_snapshot_delays_the_scrub_to_the_next_round(
        client: TestClient, clocks: FakeClocks, tmp_path: Path):
    contact = give(client, ERASED)
    store = client.app.state.service.store
    reader = sqlite3.connect(f"{(tmp_path / 'escape.db').as_uri()}?mode=ro", uri=True)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM followup_contacts").fetchone()   # a backup's snapshot
        reply = client.delete(f"/api/followup/contacts/{contact}")
        assert reply.status_code == 200, "the erasure never fails on the disk's account"
        assert client.get(f"/api/followup/contacts/{contact}").json()["contact"]["phone"] is None
        assert store.scrub_pending, "the -wal file could not be emptied under the reader"
    finally:
        reader.close()

    async def one_round() -> None:
        with pytest.raises(TimeoutError):   # the hourly loop never ends on its own: one round, then cut
            await asyncio.wait_for(purge_every(Followup(store, wall=clocks.wall)), 1.0)

    asyncio.run(one_round())
    assert not store.scrub_pending
    assert on_disk(tmp_path, ERASED) == [], "the hourly round emptied the -wal file"


def test_a_full_disk_fails_no_erasure_and_the_next_round_empties_the_wal(
        embedded_broker: BrokerHandle, tmp_path: Path, game: Game, clocks: FakeClocks):
    from tests.support.diskfull import fill, small_tmpfs

    with small_tmpfs(tmp_path / "data", size_kb=4096) as data:
        app = create_app(game=game, broker=BrokerAddress(embedded_broker.host, embedded_broker.port),
                         db_path=data / "escape.db", clock=clocks.monotonic, wall=clocks.wall)
        with TestClient(app, headers={"Content-Type": "application/json"}) as client:
            contact = give(client, ERASED)
            store = client.app.state.service.store
            kept = give(client, KEPT)
            # every frame copied, the -wal file keeps its size and is written again from its
            # start: a game's log (new pages) and the erasure fit in it; copying those new
            # pages into the database file needs space the full disk does not have
            other = sqlite3.connect(data / "escape.db")
            other.execute("PRAGMA wal_checkpoint(PASSIVE)")
            other.close()
            store.add_journal([("note", {"session": None, "wall": clocks.wall(), "at": None,
                                         "kind": "note", "text": "x" * 200})] * 300)
            fill(data / "ballast")
            reply = client.delete(f"/api/followup/contacts/{contact}")
            assert reply.status_code == 200, reply.text
            assert store.scrub_pending, "the full disk failed the checkpoint, not the erasure"
            assert client.get(f"/api/followup/contacts/{contact}").json()["contact"]["phone"] is None
            assert client.get(f"/api/followup/contacts/{kept}").json()["contact"]["phone"] == KEPT
            assert client.get("/api/state").status_code == 200, "the controller runs on"
            (data / "ballast").unlink()

            async def one_round() -> None:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(purge_every(Followup(store, wall=clocks.wall)), 1.0)

            asyncio.run(one_round())
            assert not store.scrub_pending
            assert on_disk(data, ERASED) == [], "the round after the disk was freed emptied the -wal file"
