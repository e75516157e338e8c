"""Typed configuration of every prop kind, as written in the game's YAML.

Each model is one ``kind`` of a discriminated union (:data:`PropConfig`), names its pins
(BCM numbers) and lists them through :meth:`pin_uses`, which the pin validation and the
technician's wiring sheet read. Building the device is :func:`props.factory.build_prop`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

#: BCM GPIO numbers usable on the 40-pin header
BcmPin = Annotated[int, Field(ge=2, le=27, description="BCM GPIO number (2–27)")]
PropId = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="lower_snake_case, unique in its node"),
]


@dataclass(frozen=True, slots=True)
class PinUse:
    """One GPIO pin as a prop uses it: for conflicts and the wiring sheet."""

    pin: int
    role: str
    direction: Literal["in", "out", "bus"]
    pull_up: bool | None = None
    connect: str = ""


class _PropBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: PropId
    label: str = Field(default="", description="what the players or technicians call it")

    def pin_uses(self) -> list[PinUse]:
        return []


class KeypadConfig(_PropBase):
    """Matrix keypad, 3×4 (phone layout) or 4×4 (with A–D)."""

    kind: Literal["keypad"] = "keypad"
    layout: Literal["3x4", "4x4"] = "3x4"
    rows: list[BcmPin] = Field(min_length=4, max_length=4, description="row pins, top to bottom")
    cols: list[BcmPin] = Field(min_length=3, max_length=4, description="column pins, left to right")
    code_length: int | None = Field(
        default=None, ge=1, le=16, description="submit the code after this many digits"
    )
    enter_key: str = "#"
    clear_key: str = "*"
    entry_timeout: float = Field(default=10.0, gt=0, description="seconds before a half-typed code clears")
    debounce: float = Field(default=0.02, ge=0, le=0.5)
    led: BcmPin | None = Field(default=None, description="feedback LED")
    buzzer: BcmPin | None = Field(default=None, description="feedback buzzer")

    @model_validator(mode="after")
    def _cols_match_layout(self) -> KeypadConfig:
        want = 3 if self.layout == "3x4" else 4
        if len(self.cols) != want:
            msg = f"a {self.layout} keypad has {want} column pins, got {len(self.cols)}"
            raise ValueError(msg)
        return self

    def pin_uses(self) -> list[PinUse]:
        uses = [PinUse(p, f"row {i + 1}", "out", connect=f"keypad row {i + 1}")
                for i, p in enumerate(self.rows)]
        uses += [PinUse(p, f"column {i + 1}", "in", pull_up=True, connect=f"keypad column {i + 1}")
                 for i, p in enumerate(self.cols)]
        if self.led is not None:
            uses.append(PinUse(self.led, "feedback LED", "out", connect="LED + 330 Ω to GND"))
        if self.buzzer is not None:
            uses.append(PinUse(self.buzzer, "buzzer", "out", connect="active buzzer + to pin, − to GND"))
        return uses


class MaglockConfig(_PropBase):
    """Magnetic lock on a relay, with an optional reed switch on the door."""

    kind: Literal["maglock"] = "maglock"
    relay: BcmPin
    active_high: bool = Field(
        default=True, description="relay board input: True if a high pin energises the coil"
    )
    door: BcmPin | None = Field(default=None, description="reed switch, closed = door closed")
    door_closed_level: Literal["low", "high"] = Field(
        default="low", description="pin level when the door is closed (reed to GND, pull-up on)"
    )
    relock_after_restart: bool = Field(
        default=False,
        description="may the controller relock it by itself after its node rebooted "
        "(a box may; a door on the way out may not)",
    )
    exit_door: bool = Field(default=False, description="a door people walk through to leave")

    def pin_uses(self) -> list[PinUse]:
        level = "high" if self.active_high else "low"
        uses = [PinUse(self.relay, "maglock relay", "out",
                       connect=f"relay board IN (energised when {level}); maglock on NO contact")]
        if self.door is not None:
            uses.append(PinUse(self.door, "door reed switch", "in", pull_up=True,
                               connect="reed switch between pin and GND"))
        return uses


#: the start state a contact may be declared in, per kind (the first is the default): a
#: button released, a window or door shut (its reed closed), nobody on a mat
CONTACT_STARTS: dict[str, tuple[str, str]] = {
    "button": ("released", "pressed"),
    "reed_switch": ("closed", "open"),
    "pressure_mat": ("free", "occupied"),
}
#: the start states in which the contact is active (gpiozero's ``is_active``)
_ACTIVE_STARTS = frozenset({"pressed", "closed", "occupied"})


class ButtonConfig(_PropBase):
    """Push button, reed switch or pressure mat: one debounced contact to ground."""

    kind: Literal["button", "reed_switch", "pressure_mat"] = "button"
    pin: BcmPin
    pull_up: bool = True
    bounce_time: float | None = Field(default=0.02, ge=0, le=1)
    hold_time: float = Field(default=1.0, gt=0, le=60)
    start: Literal["released", "pressed", "closed", "open", "free", "occupied"] | None = Field(
        default=None,
        description="the state the pre-game check expects: button released (default) or "
        "pressed; reed switch closed (default: window or door shut) or open; pressure mat "
        "free (default) or occupied",
    )

    @field_validator("start")
    @classmethod
    def _start_fits_kind(cls, start: str | None, info: ValidationInfo) -> str | None:
        # NOTE: a field validator, so that the error points at the ``start`` key itself
        allowed = CONTACT_STARTS.get(info.data.get("kind", ""), ())
        if start is not None and allowed and start not in allowed:
            msg = f"a {info.data['kind']} starts {' or '.join(allowed)}, not {start}"
            raise ValueError(msg)
        return start

    @property
    def start_state(self) -> str:
        """The declared start state, or its kind's default."""
        return self.start or CONTACT_STARTS[self.kind][0]

    @property
    def start_active(self) -> bool:
        """Whether the contact is active (pressed, closed, occupied) in its start state."""
        return self.start_state in _ACTIVE_STARTS

    def pin_uses(self) -> list[PinUse]:
        what = {"button": "push button", "reed_switch": "reed switch", "pressure_mat": "pressure mat"}
        ground = "GND" if self.pull_up else "3V3"
        return [PinUse(self.pin, what[self.kind], "in", pull_up=self.pull_up,
                       connect=f"{what[self.kind]} between pin and {ground}")]


class OutputConfig(_PropBase):
    """LED, relay (lamp, fan) or buzzer on one output pin."""

    kind: Literal["led", "relay", "buzzer"] = "relay"
    pin: BcmPin
    active_high: bool = True
    initial_value: bool = False

    def pin_uses(self) -> list[PinUse]:
        connect = {
            "led": "LED anode via 330 Ω, cathode to GND",
            "relay": "relay board IN",
            "buzzer": "active buzzer + to pin, − to GND",
        }[self.kind]
        return [PinUse(self.pin, self.kind, "out", connect=connect)]


class SpiBus(BaseModel):
    """An SPI bus: hardware SPI0 (port 0, device 0/1) or software pins."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clock: BcmPin = 11
    mosi: BcmPin = 10
    miso: BcmPin = 9
    select: BcmPin = Field(default=8, description="chip select (CE0 = 8, CE1 = 7, or any free pin)")


class MFRC522Config(_PropBase):
    """13.56 MHz MIFARE reader on SPI."""

    kind: Literal["mfrc522"] = "mfrc522"
    spi: SpiBus = Field(default_factory=SpiBus)
    reset_pin: BcmPin | None = Field(default=25, description="RST pin of the module")
    poll_interval: float = Field(default=0.1, gt=0, le=5)
    tags: dict[str, str] = Field(default_factory=dict, description="known tags: UID hex -> name")

    def pin_uses(self) -> list[PinUse]:
        bus = self.spi
        uses = [PinUse(bus.clock, "SPI SCLK", "bus", connect="MFRC522 SCK"),
                PinUse(bus.mosi, "SPI MOSI", "bus", connect="MFRC522 MOSI"),
                PinUse(bus.miso, "SPI MISO", "bus", connect="MFRC522 MISO"),
                PinUse(bus.select, "SPI chip select", "out", connect="MFRC522 SDA/SS")]
        if self.reset_pin is not None:
            uses.append(PinUse(self.reset_pin, "MFRC522 reset", "out", connect="MFRC522 RST"))
        return uses


class RDM6300Config(_PropBase):
    """125 kHz EM4100 reader on a serial port (9600 baud)."""

    kind: Literal["rdm6300"] = "rdm6300"
    port: str = "/dev/serial0"
    removal_timeout: float = Field(default=0.5, gt=0, le=10)
    tags: dict[str, str] = Field(default_factory=dict)

    def pin_uses(self) -> list[PinUse]:
        if self.port in ("/dev/serial0", "/dev/ttyAMA0", "/dev/ttyS0"):
            return [PinUse(15, "UART RX", "bus", connect="RDM6300 TX")]
        return []


class SortingConfig(_PropBase):
    """Several MFRC522 readers, one per bin, sharing SPI clock/MOSI/MISO."""

    kind: Literal["sorting"] = "sorting"
    clock: BcmPin = 11
    mosi: BcmPin = 10
    miso: BcmPin = 9
    bins: dict[str, BcmPin] = Field(min_length=1, description="bin name -> chip select pin")
    reset_pin: BcmPin | None = 25
    poll_interval: float = Field(default=0.1, gt=0, le=5)
    tags: dict[str, str] = Field(default_factory=dict, description="known tags: UID hex -> name")

    def pin_uses(self) -> list[PinUse]:
        uses = [PinUse(self.clock, "SPI SCLK (shared)", "bus", connect="every reader's SCK"),
                PinUse(self.mosi, "SPI MOSI (shared)", "bus", connect="every reader's MOSI"),
                PinUse(self.miso, "SPI MISO (shared)", "bus", connect="every reader's MISO")]
        uses += [PinUse(p, f"chip select, bin {name}", "out", connect=f"SDA/SS of the {name} reader")
                 for name, p in self.bins.items()]
        if self.reset_pin is not None:
            uses.append(PinUse(self.reset_pin, "readers' reset (shared)", "out", connect="every RST"))
        return uses


PropConfig = Annotated[
    KeypadConfig | MaglockConfig | ButtonConfig | OutputConfig | MFRC522Config
    | RDM6300Config | SortingConfig,
    Field(discriminator="kind"),
]
