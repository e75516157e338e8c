"""What each prop kind is, for the code that treats kinds differently (one table).

==================================  ====  ========  ======  =====
kind                                lock  actuator  reader  relay
==================================  ====  ========  ======  =====
keypad
maglock                             yes   yes               yes
button, reed_switch, pressure_mat
led, buzzer                               yes
relay                                     yes               yes
mfrc522, rdm6300, sorting                           yes
==================================  ====  ========  ======  =====

* **lock** — holds a door shut: locked at the start of a run, opened when a game ends,
  by the emergency, and never locked by a node on its own.
* **actuator** — its self-test moves, lights or sounds something: refused while a game is
  played.
* **reader** — reads RFID tags: a tag can be enrolled on it.
* **relay** — switches a relay coil: on a pin high while the Pi boots it may click.

The start state of each kind (what the pre-game check wants, and the command or hand
that brings it back) is the other table about kinds: :data:`props.start.START_RULES`.
Both cover every kind of :data:`props.models.PropConfig` (tests/props/test_kinds.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Kind:
    lock: bool = False
    actuator: bool = False
    reader: bool = False
    relay: bool = False


KINDS: dict[str, Kind] = {
    "keypad": Kind(),
    "maglock": Kind(lock=True, actuator=True, relay=True),
    "button": Kind(),
    "reed_switch": Kind(),
    "pressure_mat": Kind(),
    "led": Kind(actuator=True),
    "relay": Kind(actuator=True, relay=True),
    "buzzer": Kind(actuator=True),
    "mfrc522": Kind(reader=True),
    "rdm6300": Kind(reader=True),
    "sorting": Kind(reader=True),
}

LOCK_KINDS = frozenset(k for k, facts in KINDS.items() if facts.lock)
ACTUATOR_KINDS = frozenset(k for k, facts in KINDS.items() if facts.actuator)
RFID_KINDS = frozenset(k for k, facts in KINDS.items() if facts.reader)
RELAY_KINDS = frozenset(k for k, facts in KINDS.items() if facts.relay)
