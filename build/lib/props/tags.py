"""What an RFID reader remembers of tags, shared by the MFRC522 and RDM6300 drivers.

The tag in the field, the names a game gives to known tags, and the technician waiting
for "the next tag shown" (enroll). The readers differ in how they *see* a tag (SPI polls,
serial frames) and when they decide it left; this part is the same for both.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

#: (event type, tag uid) pairs to emit once the lock is released
TagEvents = list[tuple[str, str]]


class TagMemory:
    """Mixin for a reader :class:`~props.base.Prop`: call :meth:`_init_tags` first thing.

    ``_tag_lock`` guards the tag fields; a reader may keep its own counters under it.
    Listeners are called outside the lock (:meth:`_emit_all`): they may read the state
    or call :meth:`reset`.
    """

    if TYPE_CHECKING:  # provided by props.base.Prop and gpiozero's Device
        closed: bool

        def _emit(self, event_type: str, value: Any) -> None: ...

        def _state_changed(self) -> None: ...

    def _init_tags(self, tags: Mapping[str, str] | None) -> None:
        self._tag_lock = threading.Lock()
        self._tag_presented = threading.Condition(self._tag_lock)
        self._tags = {uid.lower(): name for uid, name in (tags or {}).items()}
        self._tag: str | None = None
        self._presentations = 0
        self._last_presented: str | None = None

    @property
    def value(self) -> str | None:
        """The UID of the tag in the field, or :data:`None`."""
        return self._tag

    #: the room's word for :attr:`value`
    tag = value

    def tag_name(self, uid: str | None) -> str | None:
        """The configured name of *uid*, or :data:`None` for an unknown tag."""
        return None if uid is None else self._tags.get(uid)

    def _tag_state(self) -> dict[str, Any]:
        """The tag part of the prop state; call with ``_tag_lock`` held."""
        return {"tag": self._tag, "tag_name": self.tag_name(self._tag)}

    def reset(self) -> None:
        """Forget the current tag: if it is still in the field, it is reported again."""
        with self._tag_lock:
            changed = self._tag is not None
            self._tag = None
            self._forget()
        if changed:
            self._state_changed()

    def _forget(self) -> None:
        """Reader-specific part of :meth:`reset` (``_tag_lock`` held)."""

    def wait_for_tag(self, timeout: float | None = None) -> str | None:
        """Wait for the next tag presented and return its UID (:data:`None` on timeout).

        A tag already in the field does not count: lift it and show it again. This is
        the technician's "enroll" helper.
        """
        with self._tag_presented:
            before = self._presentations
            self._tag_presented.wait_for(lambda: self._presentations != before or self.closed, timeout)
            return self._last_presented if self._presentations != before else None

    def _present(self, uid: str, events: TagEvents) -> None:
        """*uid* is in the field (``_tag_lock`` held): a new tag, or a swap faster than the
        reader could see the first one leave."""
        if uid == self._tag:
            return
        if self._tag is not None:
            events.append(("removed", self._tag))
        events.append(("tag", uid))
        self._tag = uid
        self._presentations += 1
        self._last_presented = uid
        self._tag_presented.notify_all()

    def _wake_waiters(self) -> None:
        """On close: :meth:`wait_for_tag` callers return at once."""
        with self._tag_presented:
            self._tag_presented.notify_all()

    def _emit_all(self, events: TagEvents) -> None:
        for event_type, value in events:
            self._emit(event_type, value)
        if events:
            self._state_changed()
