"""An ISO/IEC 14443-3 type A card, as a simulated MFRC522 sees it in its field.

Its state machine (IDLE, READY, ACTIVE, HALT; cascade levels for 4, 7 and 10-byte UIDs),
the CRC_A and the UIDs a game may give, written from the standard again on purpose rather
than imported from the driver: a shared mistake would otherwise pass every test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Card", "crc_a", "parse_uid"]

# ISO/IEC 14443-3 type A
_REQA = 0x26
_WUPA = 0x52
_HLTA = bytes((0x50, 0x00))
_SEL = (0x93, 0x95, 0x97)
_CT = 0x88


def crc_a(data: bytes | Sequence[int], *, preset: int = 0x6363) -> bytes:
    """ISO/IEC 14443-3 CRC_A of *data*, low byte first (as transmitted).

        >>> crc_a(b"\\x50\\x00").hex()
        '57cd'
    """
    crc = preset
    for value in data:
        b = value ^ (crc & 0xFF)
        b = (b ^ (b << 4)) & 0xFF
        crc = (crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)
    return bytes((crc & 0xFF, (crc >> 8) & 0xFF))


def parse_uid(uid_hex: Any) -> bytes:
    """A UID given as 8, 14 or 20 hex digits (4, 7 or 10 bytes); ValueError otherwise."""
    if not isinstance(uid_hex, str):
        msg = f"a UID is a hex string, got {type(uid_hex).__name__}"
        raise TypeError(msg)
    try:
        uid = bytes.fromhex(uid_hex)
    except ValueError:
        msg = f"not a hex UID: {uid_hex!r}"
        raise ValueError(msg) from None
    if len(uid) not in (4, 7, 10):
        msg = f"a UID has 4, 7 or 10 bytes, {uid_hex!r} has {len(uid)}"
        raise ValueError(msg)
    if uid[0] == _CT or (len(uid) == 10 and uid[3] == _CT):
        msg = f"{uid_hex!r}: 0x88 is the cascade tag, not a valid first UID byte"
        raise ValueError(msg)
    return uid


@dataclass
class Card:
    """An ISO/IEC 14443-3 type A card: its UID and where it is in its state machine."""

    uid: bytes
    state: str = "idle"  # idle, ready, active, halt
    woken: bool = False  # READY*/ACTIVE*: came from HALT, goes back there on error
    level: int = 0  # cascade level being resolved while READY

    @property
    def parts(self) -> list[bytes]:
        """UID CLn of each cascade level (cascade tag 0x88 first on all but the last)."""
        uid = self.uid
        if len(uid) == 4:
            return [uid]
        if len(uid) == 7:
            return [bytes((_CT,)) + uid[0:3], uid[3:7]]
        return [bytes((_CT,)) + uid[0:3], bytes((_CT,)) + uid[3:6], uid[6:10]]

    @property
    def atqa(self) -> bytes:
        # bits 7..6 of the first byte: UID size single / double / triple; bit 2: anticollision
        return bytes(({4: 0x04, 7: 0x44, 10: 0x84}[len(self.uid)], 0x00))

    @property
    def sak(self) -> int:
        return 0x08 if len(self.uid) == 4 else 0x00  # MIFARE Classic 1K / Ultralight

    def error(self) -> None:
        """An unexpected frame: back to IDLE (or HALT if woken from it), no answer."""
        if self.state in ("ready", "active"):
            self.state = "halt" if self.woken else "idle"

    def receive(self, frame: bytes, last_bits: int) -> bytes | None:
        """The card's answer to *frame*, or :data:`None` when it stays silent."""
        answer = None
        if last_bits == 7 and len(frame) == 1:  # short frame: REQA / WUPA
            answer = self._request(frame[0])
        elif last_bits == 0 and self.state == "ready" and frame[:1] == bytes((_SEL[self.level],)):
            answer = self._anticollision_or_select(frame)
        elif last_bits == 0 and self.state == "active" and frame == _HLTA + crc_a(_HLTA):
            self.state = "halt"
            return None  # HLTA is never answered
        if answer is None:
            self.error()
        return answer

    def _request(self, command: int) -> bytes | None:
        if (command == _REQA and self.state == "idle") or (
            command == _WUPA and self.state in ("idle", "halt")
        ):
            self.woken = self.state == "halt"
            self.state, self.level = "ready", 0
            return self.atqa
        return None

    def _anticollision_or_select(self, frame: bytes) -> bytes | None:
        part = self.parts[self.level]
        part_bcc = part + bytes((part[0] ^ part[1] ^ part[2] ^ part[3],))
        if frame[1:] == b"\x20":  # ANTICOLLISION with no UID bit known yet
            return part_bcc
        if frame[1:2] == b"\x70" and frame[2:7] == part_bcc and crc_a(frame[:7]) == frame[7:]:
            # SELECT, and it is me
            if self.level + 1 < len(self.parts):
                self.level += 1
                sak = 0x04  # cascade bit: UID not complete
            else:
                self.state = "active"
                sak = self.sak
            return bytes((sak,)) + crc_a((sak,))
        return None
