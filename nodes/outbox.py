"""The node's outbox: its events the controller has not acknowledged yet, on disk.

Every event a node emits while a controller is known goes through here, oldest first:

* while the node can deliver (broker connected, a live controller), the event is written
  here *and* published at once; it stays until the controller's status acknowledges it
  (``acks``: the last ``(boot_id, seq)`` it handled), so an event that vanished with a
  broker restart or a dying controller is sent again rather than lost;
* while it cannot, the event only waits here, and the agent publishes the whole backlog,
  in order and marked ``replayed``, once the controller is back.

It is bounded (events and bytes): when full, the oldest tenth is dropped at once (one
rewrite of the file rather than one per event) and counted in :attr:`Outbox.dropped`.
The controller then sees a ``seq`` gap and asks for a resync: the states are right
again, and what was dropped is in the node's log.

The file is JSON lines, appended with a flush and no fsync (an SD card would not live
long with one fsync per key press, and a power cut opens every lock anyway). It is
rewritten (temporary file + ``os.replace``) when acknowledged events leave it. Events
left over by a previous run of the agent are handed back by :meth:`Outbox.take_leftovers`.

Not thread-safe: the agent calls it under its event lock.

>>> box = Outbox(path=Path("/tmp/hall.outbox.jsonl"))
>>> box.append("mailbox_keypad", event, sent=False)
>>> [e.event.seq for e in box.unsent()]
[1]
>>> box.ack(boot_id=event.boot_id, seq=1)
1
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from protocol.contract import ContractError, PropEvent, decode

log = logging.getLogger(__name__)

DEFAULT_MAX_EVENTS = 10_000
DEFAULT_MAX_BYTES = 4 * 1024 * 1024


@dataclass(slots=True)
class Entry:
    """One queued event: which prop it is about, the event, and whether it was sent."""

    prop: str
    event: PropEvent
    size: int
    sent: bool = False
    #: ``(boot_id, seq)`` it had in an earlier run of the agent, when it was re-stamped
    origin: tuple[str, int] | None = None


class Outbox:
    """Events not yet acknowledged by the controller, oldest first, mirrored in a file."""

    def __init__(self, *, path: Path, max_events: int = DEFAULT_MAX_EVENTS,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_events < 1 or max_bytes < 1024:
            msg = f"outbox limits too small: {max_events} events, {max_bytes} bytes"
            raise ValueError(msg)
        self.path = Path(path)
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.dropped = 0
        self.corrupt_lines = 0
        self._entries: deque[Entry] = deque()
        self._bytes = 0
        self._file: IO[bytes] | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)

    # -- reading ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def unsent(self) -> list[Entry]:
        return [e for e in self._entries if not e.sent]

    def has_unsent(self) -> bool:
        return any(not e.sent for e in self._entries)

    # -- writing ----------------------------------------------------------------------
    def append(self, prop: str, event: PropEvent, *, sent: bool,
               origin: tuple[str, int] | None = None) -> Entry:
        """Queue *event* (and write it to the file); drop the oldest if over the limits."""
        line = self._line(prop, event, origin)
        entry = Entry(prop, event, len(line), sent, origin)
        self._entries.append(entry)
        self._bytes += entry.size
        if len(self._entries) > self.max_events or self._bytes > self.max_bytes:
            self._drop_oldest()
            self._rewrite()
        else:
            handle = self._handle()
            handle.write(line)
            handle.flush()
        return entry

    def ack(self, *, boot_id: str, seq: int) -> int:
        """Forget the events of *boot_id* up to *seq* (the controller handled them)."""
        removed = 0
        while self._entries and self._entries[0].event.boot_id == boot_id \
                and self._entries[0].event.seq <= seq:
            self._bytes -= self._entries.popleft().size
            removed += 1
        if removed:
            self._rewrite()
        return removed

    def discard(self, predicate: Callable[[Entry], bool]) -> int:
        """Forget every entry for which ``predicate(entry)`` is true (rare: leftovers)."""
        keep = deque(e for e in self._entries if not predicate(e))
        removed = len(self._entries) - len(keep)
        if removed:
            self._entries = keep
            self._bytes = sum(e.size for e in keep)
            self._rewrite()
        return removed

    def mark_all_unsent(self) -> None:
        """Send everything again at the next flush (we cannot know what arrived)."""
        for entry in self._entries:
            entry.sent = False

    def take_leftovers(self) -> list[tuple[str, PropEvent, tuple[str, int] | None]]:
        """Read what an earlier run of the agent left in the file, and empty the file.

        Call once, before :meth:`append`. Lines that cannot be read (a write cut short by
        a crash) are skipped and counted in :attr:`corrupt_lines`.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        found: list[tuple[str, PropEvent, tuple[str, int] | None]] = []
        for line in raw.splitlines():
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                prop = data["prop"]
                event = decode(json.dumps(data["event"]).encode(), PropEvent)
                raw_origin = data.get("origin")
                origin = (str(raw_origin[0]), int(raw_origin[1])) if raw_origin else None
            except (ValueError, KeyError, TypeError, IndexError, ContractError):
                self.corrupt_lines += 1
                continue
            if not isinstance(prop, str):
                self.corrupt_lines += 1
                continue
            found.append((prop, event, origin))
        self._rewrite()
        return found

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    # -- internals --------------------------------------------------------------------
    @staticmethod
    def _line(prop: str, event: PropEvent, origin: tuple[str, int] | None) -> bytes:
        record: dict[str, object] = {"prop": prop,
                                     "event": event.model_dump(mode="json", exclude_none=True)}
        if origin is not None:
            record["origin"] = list(origin)
        return json.dumps(record, separators=(",", ":")).encode() + b"\n"

    def _handle(self) -> IO[bytes]:
        if self._file is None:
            self._file = self.path.open("ab")
        return self._file

    def _drop_oldest(self) -> None:
        # Drop down to 90 % of the limits in one go: one rewrite per tenth of the outbox,
        # not one per event, while a long outage keeps it full.
        target_events = max(1, self.max_events * 9 // 10)
        target_bytes = self.max_bytes * 9 // 10
        dropped = 0
        while len(self._entries) > 1 and (len(self._entries) > target_events
                                           or self._bytes > target_bytes):
            self._bytes -= self._entries.popleft().size
            dropped += 1
        self.dropped += dropped
        log.warning("outbox %s full: dropped the %d oldest events (%d dropped so far)",
                    self.path.name, dropped, self.dropped)

    def _rewrite(self) -> None:
        self.close()
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with tmp.open("wb") as out:
            for entry in self._entries:
                out.write(self._line(entry.prop, entry.event, entry.origin))
        os.replace(tmp, self.path)
