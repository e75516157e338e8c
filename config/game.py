"""The game definition: the apartment, its nodes and props, puzzles, actions and clues.

A game is data (config/apartment.yaml), validated by these pydantic models and then run
by one engine (controller/engine). Cross-checks that span the whole file (pins used twice
on a node, a puzzle naming an unknown prop, a dependency cycle, an unreachable puzzle,
no final puzzle) are in :func:`semantic_issues`, each with the path it is about, so the
loader can name the file and line.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    Tag,
    model_serializer,
    model_validator,
)

from props.kinds import LOCK_KINDS, RELAY_KINDS
from props.models import BcmPin, PropConfig
from protocol import contract

Parcours = Literal["primo", "locataire"]
PARCOURS: tuple[Parcours, ...] = ("primo", "locataire")
Theme = Literal["upkeep", "waste", "budget", "rights", "diy", "story"]
Id = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
#: a prop named as ``node.prop`` (e.g. ``hall.mailbox_lock``)
PropRef = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}\.[a-z][a-z0-9_]{0,39}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    #: fields a technician may write as a plain string, meaning French text
    _text_fields: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _plain_strings_are_french(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls._text_fields:
            data = {k: _as_text(v) if k in cls._text_fields else v for k, v in data.items()}
        return data


#: the serialisation context of a node's part (:meth:`NodePart.as_data`)
FOR_NODE: dict[str, bool] = {"for_node": True}


class _ScreenOnly(_Model):
    """A model some of whose fields only the screens use: a node's part leaves them out, so
    a node whose software predates them takes the part, with the hash it had."""

    #: the fields a node's part leaves out (a node shows no text and plays no media)
    _screen_only: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _without_screen_only(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        if isinstance(data, dict) and isinstance(info.context, dict) and info.context.get("for_node"):
            for key in self._screen_only:
                data.pop(key, None)
        return data


#: the languages a text of the game may carry, French first and required (docs/media.md)
LANGUAGES = ("fr", "en", "ar", "pt", "tr")
#: the languages written right to left
RTL_LANGUAGES = frozenset({"ar"})
#: the languages of a text a node's part keeps: those its software knew first
NODE_LANGUAGES = ("fr", "en")


class Text(_ScreenOnly):
    """A text shown to people: French first, its translations optional."""

    _screen_only = tuple(lang for lang in LANGUAGES if lang not in NODE_LANGUAGES)

    fr: str = Field(min_length=1)
    en: str | None = None
    ar: str | None = None
    pt: str | None = None
    tr: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_languages(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [k for k in data if k not in LANGUAGES]
            if unknown:
                msg = (f"unknown language {unknown[0]!r} (a text is {{fr: …, en: …, ar: …, pt: …, "
                       "tr: …}, fr required)")
                raise ValueError(msg)
        return data

    def get(self, lang: str = "fr") -> str:
        return (getattr(self, lang) if lang in LANGUAGES else None) or self.fr

    def has(self, lang: str) -> bool:
        """Whether it is written in *lang* (French always is)."""
        return lang in LANGUAGES and getattr(self, lang) is not None

    def languages(self) -> frozenset[str]:
        return frozenset(lang for lang in LANGUAGES if getattr(self, lang) is not None)


def _as_text(value: Any) -> Any:
    return {"fr": value} if isinstance(value, str) else value


class PerParcours(_Model):
    """A value that differs per parcours (``primo`` / ``locataire``)."""

    primo: JsonValue
    locataire: JsonValue


# -- apartment and nodes ---------------------------------------------------------------
class Obligation(_Model):
    """A bill the household owes this month (rent, energy, insurance…).

    A puzzle's ``budget`` action pays it (``pays: <id>``, its amount is what is due). When
    the game ends with that puzzle unsolved, the bill is charged all the same, with its late
    fee: what is due is due (``controller/engine.py``, ``Engine.bills``).
    """

    id: Id
    label: Text = Field(description="the bill as the family reads it: « Loyer »")
    icon: str = Field(default="🧾", min_length=1, max_length=8,
                      description="a pictogram for the room screens (an emoji)")
    late_fee: int | PerParcours = Field(default=0, union_mode="left_to_right",
                                        description="euros added when it is paid late (at the end)")
    late_fee_label: Text = Field(
        default_factory=lambda: Text(fr="relance, frais de retard", en="reminder, late fees"),
        description="what the late fee is: « relance du bailleur, frais de retard »")
    consequence: Text | None = Field(default=None,
                                     description="what an unpaid bill leads to, said at the debrief")

    _text_fields: ClassVar[tuple[str, ...]] = ("label", "late_fee_label", "consequence")

    @model_validator(mode="after")
    def _fee_not_negative(self) -> Obligation:
        fees = (self.late_fee.primo, self.late_fee.locataire) if isinstance(self.late_fee, PerParcours) \
            else (self.late_fee,)
        if any(not isinstance(f, int) or isinstance(f, bool) or f < 0 for f in fees):
            msg = "late_fee: whole euros, 0 or more (per parcours or one for both)"
            raise ValueError(msg)
        return self


class Budget(_Model):
    """The household budget: the common thread of the game."""

    start: int | PerParcours = Field(description="monthly budget at start, in euros",
                                     union_mode="left_to_right")
    currency: str = "EUR"
    label: Text = Field(default_factory=lambda: Text(fr="Budget du foyer", en="Household budget"))
    obligations: list[Obligation] = Field(
        default_factory=list, description="the month's bills: charged at the end when left unpaid")

    _text_fields: ClassVar[tuple[str, ...]] = ("label",)

    def obligation(self, obligation_id: str) -> Obligation | None:
        return next((o for o in self.obligations if o.id == obligation_id), None)


class Apartment(_Model):
    id: Id
    name: Text
    duration_min: int = Field(default=60, ge=5, le=240)
    max_players: int = Field(default=6, ge=1, le=12)
    budget: Budget | None = None
    inactivity_warning_min: float = Field(default=3, gt=0)
    inactivity_alert_min: float = Field(default=5, gt=0)
    hint_after_min: float = Field(
        default=8, gt=0,
        description="the console suggests a clue (never sends it) when the group has made no "
                    "progress on an open puzzle for this long")
    autonomy_after_s: float = Field(
        default=20, gt=0, description="a node runs its local puzzles after this long without the controller"
    )

    _text_fields: ClassVar[tuple[str, ...]] = ("name",)

    @model_validator(mode="after")
    def _hint_within_the_game(self) -> Apartment:
        if self.hint_after_min >= self.duration_min:
            msg = (f"hint_after_min ({self.hint_after_min:g}) must be shorter than the game "
                   f"(duration_min: {self.duration_min})")
            raise ValueError(msg)
        return self


class EmergencyInput(_Model):
    """A physical emergency button on a node: opens that node's locks locally."""

    pin: BcmPin
    pull_up: bool = True


class Node(_Model):
    """One room and the Raspberry Pi that runs its props."""

    id: Id
    label: Text
    props: list[PropConfig] = Field(default_factory=list)
    emergency: EmergencyInput | None = None

    _text_fields: ClassVar[tuple[str, ...]] = ("label",)

    def prop(self, prop_id: str) -> PropConfig | None:
        return next((p for p in self.props if p.id == prop_id), None)


# -- puzzles ---------------------------------------------------------------------------
class EventCondition(_Model):
    """Solved when *prop* emits an event of *event* type whose value matches."""

    when: Literal["event"] = "event"
    prop: PropRef
    event: str = Field(min_length=1)
    equals: PerParcours | JsonValue = Field(
        default=None, union_mode="left_to_right", description="the value must equal this")
    any_of: PerParcours | list[JsonValue] | None = Field(default=None, union_mode="left_to_right",
                                                         description="value in this set")
    min_value: float | None = Field(default=None, description="numeric value at least (e.g. held seconds)")

    @model_validator(mode="after")
    def _any_of_lists(self) -> EventCondition:
        if isinstance(self.any_of, PerParcours) and any(
                not isinstance(v, list | None) for v in (self.any_of.primo, self.any_of.locataire)):
            msg = "any_of per parcours: a list of values for each parcours (or null: any value)"
            raise ValueError(msg)
        return self


class Condition(_Model):
    """Wrapper so one puzzle may need several events: all (any order) or in sequence."""

    when: Literal["all", "sequence"]
    of: list[EventCondition] = Field(min_length=1)


SolveCondition = Annotated[EventCondition | Condition, Field(discriminator="when")]


class PropAction(_Model):
    """Command a prop: ``lock``/``unlock`` a lock, ``on``/``off``/``blink`` an output..."""

    do: Literal["lock", "unlock", "command"]
    target: PropRef
    action: str | None = Field(default=None, description="with do: command, the prop's action")
    params: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _action_for_command(self) -> PropAction:
        if self.do == "command" and not self.action:
            msg = "do: command needs an 'action' (e.g. on, off, blink, pulse)"
            raise ValueError(msg)
        return self

    @property
    def command(self) -> str:
        """What the prop is told: ``lock``, ``unlock``, or with ``do: command`` its action."""
        return (self.action or "") if self.do == "command" else self.do


class BudgetAction(_Model):
    do: Literal["budget"]
    amount: int | PerParcours = Field(union_mode="left_to_right")
    label: Text
    pays: Id | None = Field(default=None,
                            description="the obligation (apartment.budget.obligations) this pays")

    _text_fields: ClassVar[tuple[str, ...]] = ("label",)


class MessageAction(_Model):
    do: Literal["message"]
    text: Text
    room: Id | None = Field(default=None, description="node id of the room screen; none = all")
    sound: str | None = None

    _text_fields: ClassVar[tuple[str, ...]] = ("text",)


#: a file of the media library (controller/media.py) as a game file names it
MEDIA_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,59}\.[a-z0-9]{2,4}$"
MediaName = Annotated[str, Field(pattern=MEDIA_NAME_PATTERN,
                                 description="a file of the media library, e.g. chime.wav")]


class MediaAction(_Model):
    """Play a file of the media library on room screens (docs/media.md)."""

    file: MediaName
    room: Id | list[Id] | None = Field(default=None, description="node id(s) of the room screens; "
                                                                 "none = every screen")
    volume: float = Field(default=1.0, ge=0, le=1, description="0 to 1, of the screen's volume")
    loop: bool = False

    @property
    def rooms(self) -> tuple[str, ...] | None:
        """The rooms it plays in; None: every room."""
        if self.room is None:
            return None
        return (self.room,) if isinstance(self.room, str) else tuple(self.room)


class SoundAction(MediaAction):
    do: Literal["sound"]


class VideoAction(MediaAction):
    do: Literal["video"]


#: the moments of a game that each have their music on a room screen
MUSIC_MOMENTS = ("welcome", "game", "last_minutes", "victory", "defeat")
#: the music of the last minutes starts when this many seconds are left
LAST_MINUTES_S = 300


class Music(_Model):
    """A file of the media library a room screen plays in a loop (docs/media.md)."""

    file: MediaName
    volume: float = Field(default=0.5, ge=0, le=1, description="0 to 1, of the screen's volume")


class RoomMusic(_Model):
    """A room's music per moment of the game; a moment left out is silent."""

    welcome: Music | None = Field(default=None, description="before the run: check and briefing")
    game: Music | None = None
    last_minutes: Music | None = Field(default=None, description="the last 5 minutes of the run")
    victory: Music | None = None
    defeat: Music | None = None


#: a WebVTT file of subtitles in the media library
SubtitlesName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,59}\.vtt$",
                                     description="a WebVTT file of the media library, e.g. intro-fr.vtt")]
#: a language as a subtitles track names it (BCP 47 primary tag: fr, en, ar…)
Lang = Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]
#: what a clue shows big when its data gives no pictogram
DEFAULT_CLUE_ICON = "💡"


class Intro(_Model):
    """The introduction video the game master starts at the briefing (docs/media.md)."""

    file: MediaName = Field(description="a video of the media library, e.g. intro.webm")
    room: Id | None = Field(default=None, description="node id of the screen that plays it (the "
                                                      "hall); none = every screen")
    volume: float = Field(default=1.0, ge=0, le=1)
    subtitles: dict[Lang, SubtitlesName] = Field(
        default_factory=dict, description="a WebVTT file per language, French first (shown by default)")
#: the game events that play a sound on the room screens with no action of the game file
EVENT_SOUNDS = ("solved", "wrong_code", "unlock", "budget_up", "budget_down", "clue_chime")


class EventSound(_Model):
    """A file of the media library a room screen plays on a game event (docs/media.md)."""

    file: MediaName
    volume: float = Field(default=1.0, ge=0, le=1, description="0 to 1, of the screen's volume")


class EventSounds(_Model):
    """The sound of each game event on the room screens; an event left out is silent."""

    solved: EventSound | None = Field(default=None, description="a puzzle of the room solved")
    wrong_code: EventSound | None = Field(default=None, description="a wrong code on a keypad of the room")
    unlock: EventSound | None = Field(default=None, description="a lock of the room confirmed open")
    budget_up: EventSound | None = Field(default=None, description="the budget goes up (every screen)")
    budget_down: EventSound | None = Field(default=None, description="the budget goes down (every screen)")
    clue_chime: EventSound | None = Field(default=None, description="a clue arrives (instead of the beep)")


class TimerAction(_Model):
    do: Literal["timer"]
    op: Literal["pause", "resume", "add"]
    seconds: int = 0


class EndAction(_Model):
    do: Literal["end_game"]
    result: Literal["won", "lost"] = "won"


Action = Annotated[
    PropAction | BudgetAction | MessageAction | SoundAction | VideoAction | TimerAction | EndAction,
    Field(discriminator="do")
]


class TextPerParcours(_Model):
    """A text that differs per parcours; each may be a plain French string or ``{fr, en}``."""

    primo: Text
    locataire: Text

    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {k: _as_text(v) if k in PARCOURS else v for k, v in data.items()}
        return data


def _per_parcours(value: Any) -> str:
    """Which form a clue's text is written in: ``{primo: …, locataire: …}`` or one text."""
    keys = value.keys() if isinstance(value, dict) else vars(value) if isinstance(value, BaseModel) else ()
    return "TextPerParcours" if any(k in PARCOURS for k in keys) else "Text"


#: a clue's wording: one text (French, or {fr, en, ar…}) or one per parcours
ClueText = Annotated[Annotated[Text, Tag("Text")] | Annotated[TextPerParcours, Tag("TextPerParcours")],
                     Discriminator(_per_parcours)]


class Clue(_ScreenOnly):
    """A pre-written clue the game master can send to a room screen."""

    _screen_only = ("icon", "voice", "short", "kids")

    text: ClueText
    cost: int = Field(default=0, ge=0, description="euros taken from the budget when sent (if it counts)")
    parcours: list[Parcours] = Field(default_factory=lambda: list(PARCOURS),
                                     description="the parcours this clue is for")
    icon: str | None = Field(default=None, min_length=1, max_length=8,
                             description=f"a pictogram (an emoji) shown big with the clue; "
                                         f"{DEFAULT_CLUE_ICON} otherwise")
    voice: MediaName | None = Field(default=None, description="a recorded voice (a sound of the media "
                                                              "library) played instead of speech synthesis")
    short: ClueText | None = Field(
        default=None, description="a shorter wording, shown when the group reads little")
    kids: ClueText | None = Field(
        default=None, description="a friendlier wording, shown when the group has children")

    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"text": {"fr": data}}
        if isinstance(data, dict):
            data = {**data, **{k: {"fr": data[k]} for k in ("text", "short", "kids")
                               if isinstance(data.get(k), str)}}
        return data

    def text_for(self, parcours: str) -> Text:
        """The clue's text in *parcours*."""
        if isinstance(self.text, TextPerParcours):
            return getattr(self.text, parcours)
        return self.text

    def variant_for(self, parcours: str, variant: str) -> Text | None:
        """Its ``short`` (low literacy) or ``kids`` (children) wording in *parcours*, if written."""
        value = getattr(self, variant)
        if isinstance(value, TextPerParcours):
            return getattr(value, parcours)
        return value


class Requires(_Model):
    any: list[Id] = Field(min_length=1)


class Puzzle(_Model):
    id: Id
    label: Text
    theme: Theme
    room: Id
    requires: list[Id] | Requires = Field(default_factory=list)
    solve: SolveCondition
    actions: list[Action] = Field(default_factory=list)
    clues: list[Clue] = Field(default_factory=list)
    final: bool = False
    parcours: list[Parcours] = Field(default_factory=lambda: list(PARCOURS))
    local: bool = Field(
        default=False,
        description="its node may solve it on its own (event on the node, locks on the node) "
        "when the controller is away",
    )

    _text_fields: ClassVar[tuple[str, ...]] = ("label",)

    def required_ids(self) -> list[str]:
        return list(self.requires.any if isinstance(self.requires, Requires) else self.requires)

    def conditions(self) -> list[EventCondition]:
        return list(self.solve.of) if isinstance(self.solve, Condition) else [self.solve]

    def requirements_met(self, solved: Collection[str]) -> bool:
        """Whether what it requires is solved: all of a list, one of ``{any: […]}``."""
        if isinstance(self.requires, Requires):
            return any(r in solved for r in self.requires.any)
        return all(r in solved for r in self.requires)


class Game(_Model):
    """The whole game file."""

    apartment: Apartment
    nodes: list[Node] = Field(min_length=1)
    puzzles: list[Puzzle] = Field(min_length=1)
    music: dict[Id, RoomMusic] = Field(default_factory=dict,
                                       description="each room's music per moment, by node id")
    intro: Intro | None = Field(default=None, description="the introduction video of the briefing")
    sounds: EventSounds = Field(default_factory=EventSounds,
                                description="the sound of each game event on the room screens")

    def node(self, node_id: str) -> Node | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    def puzzle(self, puzzle_id: str) -> Puzzle | None:
        return next((p for p in self.puzzles if p.id == puzzle_id), None)

    def prop(self, ref: str) -> tuple[Node, PropConfig] | None:
        node_id, _, prop_id = ref.partition(".")
        node = self.node(node_id)
        prop = node.prop(prop_id) if node else None
        return (node, prop) if node and prop else None

    def media_files(self, room: str | None = None) -> frozenset[str]:
        """Every file of the media library the game plays (in *room*: there or everywhere)."""
        cued = {a.file for p in self.puzzles for a in p.actions if isinstance(a, MediaAction)
                and (room is None or a.rooms is None or room in a.rooms)}
        music = {m.file for r, moments in self.music.items() if room is None or r == room
                 for name in MUSIC_MOMENTS if (m := getattr(moments, name)) is not None}
        return frozenset(cued | music | self.screen_media_files(room) | self.event_sound_files())

    def screen_media_files(self, room: str | None = None) -> frozenset[str]:
        """The intro video with its subtitles, and the clues' recorded voices (in *room*:
        there or everywhere)."""
        files: set[str] = set()
        intro = self.intro
        if intro is not None and (room is None or intro.room is None or intro.room == room):
            files |= {intro.file, *intro.subtitles.values()}
        files |= {c.voice for p in self.puzzles if room is None or p.room == room
                  for c in p.clues if c.voice is not None}
        return frozenset(files)

    def event_sounds(self) -> dict[str, EventSound]:
        """The game events that play a sound (:data:`EVENT_SOUNDS`), with their sound."""
        return {name: sound for name in EVENT_SOUNDS if (sound := getattr(self.sounds, name)) is not None}

    def event_sound_files(self) -> frozenset[str]:
        """The files the game events play: on every screen (each room has its events)."""
        return frozenset(s.file for s in self.event_sounds().values())

    def music_for(self, room: str | None, moment: str | None) -> Music | None:
        """What *room*'s screen plays at *moment* (one of :data:`MUSIC_MOMENTS`), if anything."""
        moments = self.music.get(room or "")
        return getattr(moments, moment) if moments is not None and moment in MUSIC_MOMENTS else None

    def player_texts(self) -> Iterator[Text]:
        """The texts of the game the players see on the room screens: the apartment's and
        rooms' names, the bills, the budget's lines, the messages and the clues (with their
        short and children's wordings)."""
        yield self.apartment.name
        yield from (n.label for n in self.nodes)
        if self.apartment.budget is not None:
            yield self.apartment.budget.label
            for bill in self.apartment.budget.obligations:
                yield from (bill.label, bill.late_fee_label)
        for puzzle in self.puzzles:
            yield puzzle.label
            for action in puzzle.actions:
                if isinstance(action, BudgetAction):
                    yield action.label
                elif isinstance(action, MessageAction):
                    yield action.text
            for clue in puzzle.clues:
                for value in (clue.text, clue.short, clue.kids):
                    if isinstance(value, TextPerParcours):
                        yield from (value.primo, value.locataire)
                    elif value is not None:
                        yield value

    def languages(self) -> tuple[str, ...]:
        """The languages other than French the game's texts are written in (at least one
        text), the choices of a group's profile; a text without one is shown in French."""
        found: set[str] = set()
        for text in self.player_texts():
            found |= text.languages()
        return tuple(lang for lang in LANGUAGES if lang != "fr" and lang in found)

    def part(self, node_id: str) -> NodePart:
        """What node *node_id* needs of this game (KeyError if it has no such node)."""
        node = self.node(node_id)
        if node is None:
            raise KeyError(node_id)
        # a node plays no media and shows no text: its sounds, videos and what only the
        # screens read (_ScreenOnly) stay on the controller, so a node whose software
        # predates them still takes the part, and its hash changes only with what it plays
        puzzles = [p.model_copy(update={"actions": [a for a in p.actions if not isinstance(a, MediaAction)]})
                   if any(isinstance(a, MediaAction) for a in p.actions) else p
                   for p in self.puzzles if p.local and p.room == node_id]
        part = NodePart(apartment=self.apartment, node=node, puzzles=puzzles)
        return NodePart.model_validate(part.as_data())


class NodePart(_Model):
    """One node's part of the game: what its Pi builds and plays on its own.

    The controller holds the game file and gives each node its part over MQTT
    (``protocol.contract.NodeGame``); the node validates it with these same models and
    :func:`node_part_issues` before it builds anything.
    """

    apartment: Apartment
    node: Node
    puzzles: list[Puzzle] = Field(default_factory=list, description="its local puzzles")

    def as_data(self) -> dict[str, Any]:
        """The part as it goes on the wire (``NodeGame.part``), and its hash is computed on:
        without what only the screens use (:class:`_ScreenOnly`)."""
        return self.model_dump(mode="json", context=FOR_NODE)

    def content_hash(self) -> str:
        """Its hash, as both the controller and the node compute it."""
        return contract.content_hash(self.as_data())


# -- whole-file checks -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem found in a game file: where (a path into the YAML) and what."""

    path: tuple[str | int, ...]
    message: str
    severity: Literal["error", "warning"] = "error"
    #: the BCM pin the issue is about, so the loader can point at the key that names it
    pin: int | None = None


@dataclass(frozen=True, slots=True)
class Unchecked:
    """What the file names but that failed validation and was left out of *game*: a
    reference to one of these is not an error of its own (its own errors are reported)."""

    nodes: frozenset[str] = frozenset()
    props: frozenset[str] = frozenset()     # "node.prop"
    puzzles: frozenset[str] = frozenset()

    @property
    def complete(self) -> bool:
        """True when no puzzle was left out, so the puzzle graph can be judged whole."""
        return not self.puzzles


#: the prop id of node-level events (``protocol.contract.NODE_PROP``); no prop may take it
RESERVED_PROP = "node"

# NOTE: BCM 2/3 have hard-wired 1.8 kΩ pull-ups and 4-8 default high at boot: a relay
# there may click (and a maglock engage) while the Pi boots, before our code runs.
HIGH_AT_BOOT = frozenset({2, 3, 4, 5, 6, 7, 8})
BUS_PINS = {"SPI0": frozenset({7, 8, 9, 10, 11}), "UART": frozenset({14, 15}), "I2C": frozenset({2, 3})}


def _pin_issues(base: tuple[str | int, ...], node: Node) -> Iterator[ConfigIssue]:  # noqa: PLR0912 - one pass, many checks
    seen: dict[int, tuple[int, str]] = {}
    buses_used = set()
    for p_index, prop in enumerate(node.props):
        uses = prop.pin_uses()
        if any(u.direction == "bus" and u.pin in BUS_PINS["SPI0"] for u in uses):
            buses_used.add("SPI0")
        if any(u.direction == "bus" and u.pin in BUS_PINS["UART"] for u in uses):
            buses_used.add("UART")
        shared_bus = {u.pin for u in uses if u.direction == "bus"}
        for use in uses:
            path = (*base, "props", p_index)
            owner = seen.get(use.pin)
            if owner is not None and owner[0] != p_index and not (
                use.pin in shared_bus and owner[1] == "bus" and prop.kind in ("mfrc522", "sorting")
            ):
                other = node.props[owner[0]].id
                yield ConfigIssue(path, f"pin BCM {use.pin} ({use.role}) is already used by "
                                        f"prop {other!r} of node {node.id!r}", pin=use.pin)
            elif owner is not None and owner[0] == p_index and use.direction != "bus":
                yield ConfigIssue(path, f"pin BCM {use.pin} is used twice by prop {prop.id!r}",
                                  pin=use.pin)
            seen.setdefault(use.pin, (p_index, use.direction))
            if use.direction == "out" and prop.kind in RELAY_KINDS and use.pin in HIGH_AT_BOOT:
                yield ConfigIssue(path, f"relay on BCM {use.pin}: this pin is high or pulled up "
                                        "while the Pi boots, the relay may click; prefer BCM 17, 22-27",
                                  "warning", pin=use.pin)
    if node.emergency is not None:
        pin = node.emergency.pin
        if pin in seen:
            yield ConfigIssue((*base, "emergency", "pin"),
                              f"emergency pin BCM {pin} is already used by prop "
                              f"{node.props[seen[pin][0]].id!r}")
        seen.setdefault(pin, (-1, "in"))
    for bus in sorted(buses_used):
        for pin, (p_index, direction) in seen.items():
            if pin in BUS_PINS[bus] and direction != "bus" and p_index >= 0:
                prop = node.props[p_index]
                if prop.kind in ("mfrc522", "sorting") and bus == "SPI0":
                    continue  # chip selects on CE0/CE1 are the bus's own
                yield ConfigIssue((*base, "props", p_index),
                                  f"pin BCM {pin} is reserved by the {bus} bus this node uses", pin=pin)


def _graph_issues(game: Game, unchecked: Unchecked) -> Iterator[ConfigIssue]:
    ids = [p.id for p in game.puzzles]
    index = {pid: i for i, pid in enumerate(ids)}
    for i, puzzle in enumerate(game.puzzles):
        for req in puzzle.required_ids():
            if req not in index and req not in unchecked.puzzles:
                yield ConfigIssue(("puzzles", i, "requires"), f"requires unknown puzzle {req!r}")
            elif req == puzzle.id:
                yield ConfigIssue(("puzzles", i, "requires"), "a puzzle cannot require itself")
    # cycles: depth-first search with colours
    colour: dict[str, int] = {}
    deps = {p.id: [r for r in p.required_ids() if r in index and r != p.id] for p in game.puzzles}

    def visit(pid: str, stack: list[str]) -> list[str] | None:
        colour[pid] = 1
        for dep in deps[pid]:
            if colour.get(dep) == 1:
                return [*stack[stack.index(dep):], dep] if dep in stack else [pid, dep]
            if colour.get(dep) is None:
                found = visit(dep, [*stack, dep])
                if found:
                    return found
        colour[pid] = 2
        return None

    reported: set[frozenset[str]] = set()
    for pid in ids:
        if colour.get(pid) is None:
            cycle = visit(pid, [pid])
            if cycle and frozenset(cycle) not in reported:
                reported.add(frozenset(cycle))
                yield ConfigIssue(("puzzles", index[cycle[0]], "requires"),
                                  "dependency cycle: " + " -> ".join(cycle))
    if unchecked.complete:   # finals and reachability are only judged on the whole graph
        yield from _completeness_issues(game)


def _completeness_issues(game: Game) -> Iterator[ConfigIssue]:
    finals = [p for p in game.puzzles if p.final]
    if not finals:
        yield ConfigIssue(("puzzles",), "no final puzzle: mark the last one with 'final: true'")
    for parcours in PARCOURS:
        reachable = _reachable(game, parcours)
        for i, puzzle in enumerate(game.puzzles):
            if parcours in puzzle.parcours and puzzle.id not in reachable:
                yield ConfigIssue(("puzzles", i),
                                  f"puzzle {puzzle.id!r} can never become available in parcours "
                                  f"{parcours!r} (it requires a puzzle that is not in it or in a cycle)")
        if not any(parcours in p.parcours for p in finals) and finals:
            yield ConfigIssue(("puzzles",), f"parcours {parcours!r} has no final puzzle")


def _reachable(game: Game, parcours: str) -> set[str]:
    done: set[str] = set()
    changed = True
    puzzles = [p for p in game.puzzles if parcours in p.parcours]
    while changed:
        changed = False
        for p in puzzles:
            if p.id in done:
                continue
            if p.requirements_met(done):
                done.add(p.id)
                changed = True
    return done


def _ref_issues(game: Game, unchecked: Unchecked,
                media: Collection[str] | None = None) -> Iterator[ConfigIssue]:
    node_ids = {n.id for n in game.nodes}
    rooms = node_ids | unchecked.nodes
    for i, puzzle in enumerate(game.puzzles):
        if puzzle.room not in rooms:
            yield ConfigIssue(("puzzles", i, "room"), f"unknown room {puzzle.room!r}")
        for c_index, cond in enumerate(puzzle.conditions()):
            path: tuple[str | int, ...] = ("puzzles", i, "solve")
            if isinstance(puzzle.solve, Condition):
                path = (*path, "of", c_index)
            found = game.prop(cond.prop)
            if found is None and cond.prop not in unchecked.props:
                yield ConfigIssue((*path, "prop"), f"unknown prop {cond.prop!r}")
            if puzzle.local and found and found[0].id != puzzle.room:
                yield ConfigIssue((*path, "prop"), "a local puzzle's event must come from its own room")
        yield from _action_issues(game, i, puzzle, rooms, unchecked, media=media)


def _action_issues(game: Game, i: int, puzzle: Puzzle, rooms: set[str],
                   unchecked: Unchecked, *, media: Collection[str] | None) -> Iterator[ConfigIssue]:
    for a_index, action in enumerate(puzzle.actions):
        path = ("puzzles", i, "actions", a_index)
        if isinstance(action, MediaAction):
            yield from _media_issues(path, action, rooms, media)
        if isinstance(action, PropAction):
            found = game.prop(action.target)
            if found is None:
                if action.target not in unchecked.props:
                    yield ConfigIssue((*path, "target"), f"unknown prop {action.target!r}")
            elif action.do in ("lock", "unlock") and found[1].kind not in LOCK_KINDS:
                yield ConfigIssue((*path, "target"),
                                  f"{action.target!r} is a {found[1].kind}, not a maglock")
            elif puzzle.local and found[0].id != puzzle.room:
                yield ConfigIssue((*path, "target"),
                                  "a local puzzle may only act on its own room's props")
        if isinstance(action, MessageAction) and action.room and action.room not in rooms:
            yield ConfigIssue((*path, "room"), f"unknown room {action.room!r}")
        if isinstance(action, BudgetAction) and action.pays is not None:
            budget = game.apartment.budget
            if budget is None or budget.obligation(action.pays) is None:
                yield ConfigIssue((*path, "pays"), f"unknown obligation {action.pays!r} "
                                                   "(apartment.budget.obligations)")
            amounts = (action.amount.primo, action.amount.locataire) \
                if isinstance(action.amount, PerParcours) else (action.amount,)
            if any(not isinstance(a, int) or a >= 0 for a in amounts):
                yield ConfigIssue((*path, "amount"), "a payment is a negative amount of euros")


def _media_issues(path: tuple[str | int, ...], action: MediaAction, rooms: set[str],
                  media: Collection[str] | None) -> Iterator[ConfigIssue]:
    """A sound or video names a file of the library and rooms of the game. *media*: the
    library's names (None: not known here, e.g. on a node, which plays no media)."""
    yield from _library_issues((*path, "file"), action.file, media)
    for room in action.rooms or ():
        if room not in rooms:
            yield ConfigIssue((*path, "room"), f"unknown room {room!r}")


def _music_issues(game: Game, media: Collection[str] | None) -> Iterator[ConfigIssue]:
    """Each room's music is in a room of the game and names a file of the library."""
    rooms = {n.id for n in game.nodes}
    for room, moments in game.music.items():
        if room not in rooms:
            yield ConfigIssue(("music", room), f"unknown room {room!r} (music is by node id)")
        for name in MUSIC_MOMENTS:
            music = getattr(moments, name)
            if music is not None:
                yield from _library_issues(("music", room, name, "file"), music.file, media)


def _screen_media_issues(game: Game, media: Collection[str] | None) -> Iterator[ConfigIssue]:
    """The intro video plays in a room of the game; it, its subtitles and the clues'
    voices are files of the library."""
    intro = game.intro
    if intro is not None:
        if intro.room is not None and game.node(intro.room) is None:
            yield ConfigIssue(("intro", "room"), f"unknown room {intro.room!r}")
        yield from _library_issues(("intro", "file"), intro.file, media)
        for lang, file in intro.subtitles.items():
            yield from _library_issues(("intro", "subtitles", lang), file, media)
    for p_index, puzzle in enumerate(game.puzzles):
        for c_index, clue in enumerate(puzzle.clues):
            if clue.voice is not None:
                yield from _library_issues(("puzzles", p_index, "clues", c_index, "voice"), clue.voice, media)
def _sound_issues(game: Game, media: Collection[str] | None) -> Iterator[ConfigIssue]:
    """Each game event's sound names a file of the library."""
    for name, sound in game.event_sounds().items():
        yield from _library_issues(("sounds", name, "file"), sound.file, media)


def _library_issues(path: tuple[str | int, ...], file: str,
                    media: Collection[str] | None) -> Iterator[ConfigIssue]:
    """*file* is in the media library (*media*: its names; None: not known here)."""
    if media is not None and file not in media:
        yield ConfigIssue(path, f"fichier absent de la médiathèque : {file!r} "
                                "(à téléverser sur la page du technicien, ou nom mal écrit)")


def _obligation_issues(game: Game, unchecked: Unchecked) -> Iterator[ConfigIssue]:
    budget = game.apartment.budget
    if budget is None:
        return
    seen: set[str] = set()
    for o_index, obligation in enumerate(budget.obligations):
        path = ("apartment", "budget", "obligations", o_index)
        if obligation.id in seen:
            yield ConfigIssue((*path, "id"), f"duplicate obligation id {obligation.id!r}")
        seen.add(obligation.id)
        if not unchecked.complete:
            continue   # the puzzle that pays it may be one left out
        for parcours in PARCOURS:
            if not any(parcours in p.parcours and any(
                    isinstance(a, BudgetAction) and a.pays == obligation.id for a in p.actions)
                       for p in game.puzzles):
                yield ConfigIssue(path, f"obligation {obligation.id!r} is paid by no puzzle of "
                                        f"parcours {parcours!r} (a budget action with pays: "
                                        f"{obligation.id})")


def _node_issues(base: tuple[str | int, ...], node: Node) -> Iterator[ConfigIssue]:
    """What one node's Pi could not build: prop ids twice or reserved, pins in conflict."""
    seen_props: set[str] = set()
    for p_index, prop in enumerate(node.props):
        if prop.id in seen_props:
            yield ConfigIssue((*base, "props", p_index, "id"),
                              f"duplicate prop id {prop.id!r} in node {node.id!r}")
        if prop.id == RESERVED_PROP:
            yield ConfigIssue((*base, "props", p_index, "id"),
                              f"prop id {RESERVED_PROP!r} is reserved for the node's own "
                              "events (emergency input, puzzles solved on its own)")
        seen_props.add(prop.id)
    yield from _pin_issues(base, node)


def node_part_issues(part: NodePart) -> list[ConfigIssue]:
    """Every problem of one node's part (errors and warnings): the node's own checks
    (:func:`_node_issues`), and its puzzles are its local ones, on its own props."""
    issues = list(_node_issues(("node",), part.node))
    node = part.node
    for i, puzzle in enumerate(part.puzzles):
        path: tuple[str | int, ...] = ("puzzles", i)
        if not puzzle.local or puzzle.room != node.id:
            issues.append(ConfigIssue(path, f"puzzle {puzzle.id!r} is not a local puzzle of {node.id!r}"))
            continue
        refs = [(("solve",), c.prop) for c in puzzle.conditions()]
        refs += [(("actions", a), action.target) for a, action in enumerate(puzzle.actions)
                 if isinstance(action, PropAction)]
        for where, ref in refs:
            node_id, _, prop_id = ref.partition(".")
            if node_id != node.id or node.prop(prop_id) is None:
                issues.append(ConfigIssue((*path, *where), f"prop {ref!r} is not a prop of {node.id!r}"))
    return issues


def semantic_issues(game: Game, unchecked: Unchecked | None = None,
                    media: Collection[str] | None = None) -> list[ConfigIssue]:
    """Every whole-file problem of *game* (errors and warnings).

    *media*: the names of the media library the sounds and videos must be in (None: not
    checked, where the library is not known).
    *unchecked*: what the file names but *game* lacks because it failed validation (the
    loader checks the valid parts of a file with errors); references to it are not errors.
    """
    unchecked = unchecked or Unchecked()
    issues: list[ConfigIssue] = []
    for kind, items in (("node", game.nodes), ("puzzle", game.puzzles)):
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.id in seen:
                issues.append(ConfigIssue((f"{kind}s", i, "id"), f"duplicate {kind} id {item.id!r}"))
            seen.add(item.id)
    for n_index, node in enumerate(game.nodes):
        issues.extend(_node_issues(("nodes", n_index), node))
    issues.extend(_ref_issues(game, unchecked, media))
    issues.extend(_music_issues(game, media))
    issues.extend(_screen_media_issues(game, media))
    issues.extend(_sound_issues(game, media))
    issues.extend(_obligation_issues(game, unchecked))
    issues.extend(_graph_issues(game, unchecked))
    return issues
