"""Journey files: the YAML a user writes, validated into a :class:`Journey`.

Errors name the file, the line and what is wrong (an unknown step id in a branch, a wait
that is not a duration, an unknown template), because a journey is edited by hand and a
mistake found at ``journey add`` costs nothing while one found mid-campaign costs a
message to thousands of people.

    name: winback-spring
    audience: {stages: [dormant]}
    holdout: 0.10
    exit_on: [click, purchase, visit, login, reply]
    steps:
      - {id: miss-you, channel: email, template: miss_you, wait: 30d,
         on: {opened_not_clicked: bigger-offer}}
      - {id: offer, template: offer, offer: {percent: 20, valid_days: 30}, wait: 30d}
      - {id: bigger-offer, template: offer, offer: {percent: 40, valid_days: 30}, wait: 30d}
      - {id: goodbye, template: goodbye, wait: 14d}
    after_last_step: sunset

The audience may also keep only the contacts worth the effort and take the best first:
``audience: {stages: [dormant], min_expected_value: 50, order_by: expected_value,
limit: 10000}``. ``min_expected_value`` compares ``expected_value_12m`` (filled by
``winback score`` once ``winback models fit`` has run), so a contact without an expected
value is left out by it; ``order_by: expected_value`` enrols the highest values first
(contacts without one last), and ``limit`` caps how many are enrolled (holdout included;
by contact id when there is no ``order_by``).

A sunset may spare valuable customers: with ``sunset: {spare_above_value: 200,
spare_step: {id: last-chance, template: offer, offer: {percent: 50}, wait: 14d}}``, a
contact whose expected value is above 200 gets that one more step when the last one is
over, and only then ``after_last_step`` (``sunset`` or ``flag``) applies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from winback.domain import INTERACTIONS, EventType, Stage
from winback.durations import format_duration, parse_duration
from winback.errors import WinbackError

StepChannel = Literal["email", "sms", "best"]
# What a contact did with the last step's message; a step's ``on`` maps one to a step id.
Reaction = Literal[
    "clicked", "opened", "opened_not_clicked", "not_opened", "replied", "no_reaction"
]
REACTIONS: tuple[str, ...] = Reaction.__args__  # type: ignore[attr-defined]
# The reactions a message on each channel can have: an email is opened (its pixel) and
# clicked; an SMS is clicked (its tracked links) and replied to, never opened.
CHANNEL_REACTIONS: dict[str, frozenset[str]] = {
    "email": frozenset({"clicked", "opened", "opened_not_clicked", "not_opened", "no_reaction"}),
    "sms": frozenset({"clicked", "replied", "no_reaction"}),
}
# The event each reaction needs: a branch on it is dead when that event ends the journey.
_REACTION_EVENT = {"clicked": "click", "opened": "open", "replied": "reply"}
AfterLastStep = Literal["sunset", "flag", "nothing"]
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,99}$"


class JourneyError(WinbackError):
    """A journey file is not valid, or a journey cannot be added or run as asked."""

    exit_code = 2


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_duration(value)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Offer(_Model):
    """A discount carried by a step: a percentage or an amount, valid for some days. With
    ``pool: true`` codes come from an imported pool instead of being generated."""

    percent: float | None = Field(None, gt=0, le=100)
    amount: float | None = Field(None, gt=0)
    valid_days: int = Field(30, ge=1, le=3650)
    pool: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Offer:
        if (self.percent is None) == (self.amount is None):
            raise ValueError("give exactly one of percent or amount")
        return self


class Step(_Model):
    id: str = Field(pattern=NAME_PATTERN)
    channel: StepChannel = "email"
    template: str = Field(pattern=r"^[A-Za-z0-9_-]{1,100}$")
    offer: Offer | None = None
    wait: Annotated[
        timedelta, BeforeValidator(_duration), PlainSerializer(format_duration, when_used="json")
    ]
    on: dict[Reaction, str] = Field(default_factory=dict)

    @field_validator("wait")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("a wait must be longer than zero: the reaction needs time")
        return value


class Audience(_Model):
    """Who a journey enrols: contacts of ``stages``, narrowed by a saved ``segment`` and
    by ``min_expected_value`` (contacts without an expected value are left out by it),
    highest expected value first with ``order_by: expected_value``, at most ``limit``."""

    stages: list[Stage] = Field(default_factory=lambda: [Stage.DORMANT], min_length=1)
    segment: str | None = None
    min_expected_value: float | None = Field(None, ge=0)
    order_by: Literal["expected_value"] | None = None
    limit: int | None = Field(None, ge=1)


class Sunset(_Model):
    """Spare the valuable: a contact whose expected value (``expected_value_12m``) is
    above ``spare_above_value`` gets ``spare_step`` once the last step is over, instead of
    being let go at once; ``after_last_step`` applies when that step's wait is over."""

    spare_above_value: float = Field(ge=0)
    spare_step: Step

    @field_validator("spare_step")
    @classmethod
    def _no_branches(cls, value: Step) -> Step:
        if value.on:
            raise ValueError("the spare step is the very last one: it cannot branch (remove on:)")
        return value


class Journey(_Model):
    """A validated journey. Branches only jump forward, so every path ends."""

    name: str = Field(pattern=NAME_PATTERN)
    audience: Audience = Audience()
    holdout: float = Field(0.10, ge=0, lt=1)
    exit_on: list[EventType] = Field(
        default_factory=lambda: [
            EventType.CLICK,
            EventType.PURCHASE,
            EventType.VISIT,
            EventType.LOGIN,
            EventType.REPLY,
        ]
    )
    steps: list[Step] = Field(min_length=1)
    after_last_step: AfterLastStep = "sunset"
    sunset: Sunset | None = None

    @field_validator("exit_on")
    @classmethod
    def _interactions_only(cls, value: list[EventType]) -> list[EventType]:
        for kind in value:
            if kind not in INTERACTIONS:
                allowed = ", ".join(sorted(INTERACTIONS))
                raise ValueError(f"{kind.value} is not a reaction that proves interest ({allowed})")
        return value

    @property
    def spare_step(self) -> Step | None:
        """The step a spared customer gets after the last one (see :class:`Sunset`)."""
        return self.sunset.spare_step if self.sunset is not None else None

    def is_spare(self, step_id: str | None) -> bool:
        """Whether ``step_id`` is the spare step (see :class:`Sunset`)."""
        spare = self.spare_step
        return spare is not None and step_id == spare.id

    @property
    def all_steps(self) -> list[Step]:
        """The steps, then the spare step when there is one."""
        spare = self.spare_step
        return [*self.steps, spare] if spare is not None else list(self.steps)

    def step(self, step_id: str) -> Step:
        for step in self.all_steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def index(self, step_id: str) -> int:
        for number, step in enumerate(self.steps):
            if step.id == step_id:
                return number
        raise KeyError(step_id)

    @property
    def channels(self) -> frozenset[str]:
        """The sending channels the journey may use (``best`` may use either)."""
        used: set[str] = set()
        for step in self.all_steps:
            used.update(("email", "sms") if step.channel == "best" else (step.channel,))
        return frozenset(used)


def _semantic_errors(journey: Journey) -> list[tuple[tuple[Any, ...], str]]:
    """Rules across fields, each with the location of the value at fault."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    seen: dict[str, int] = {}
    for number, step in enumerate(journey.steps):
        if step.id in seen:
            problems.append(
                (
                    ("steps", number, "id"),
                    f"step id {step.id!r} is used twice (also step {seen[step.id] + 1})",
                )
            )
        seen.setdefault(step.id, number)
    spare = journey.spare_step
    if spare is not None:
        if spare.id in seen:
            problems.append(
                (
                    ("sunset", "spare_step", "id"),
                    f"step id {spare.id!r} is used by step {seen[spare.id] + 1} already",
                )
            )
        if journey.after_last_step == "nothing":
            problems.append(
                (
                    ("sunset",),
                    "sparing needs after_last_step: sunset or flag (nothing lets no one go)",
                )
            )
    for number, step in enumerate(journey.steps):
        for reaction, target in step.on.items():
            where = ("steps", number, "on", reaction)
            if target not in seen:
                known = ", ".join(s.id for s in journey.steps)
                problems.append((where, f"unknown step id {target!r} (the steps are: {known})"))
            elif seen[target] <= number:
                problems.append(
                    (where, f"branch to {target!r} goes back: a branch may only jump forward")
                )
            channels = ("email", "sms") if step.channel == "best" else (step.channel,)
            if not any(reaction in CHANNEL_REACTIONS[channel] for channel in channels):
                possible = ", ".join(sorted(CHANNEL_REACTIONS[step.channel]))
                problems.append(
                    (
                        where,
                        f"an {step.channel} message has no {reaction!r} reaction (an SMS "
                        f"is never opened, an email never replied to); an {step.channel} "
                        f"step may branch on {possible}",
                    )
                )
            event = _REACTION_EVENT.get(reaction)
            if event in journey.exit_on:
                problems.append(
                    (where, f"never taken: a {event} is in exit_on and ends the journey first")
                )
    return problems


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 reads the key ``on:`` (and yes, no,
    off) as a boolean, which would turn every step's branches into ``True:``."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def journey_from_data(data: Any) -> Journey:
    """A journey from already parsed data (the stored definition). Raises ValidationError
    or JourneyError without locations; :func:`parse_journey` adds them for files."""
    journey = Journey.model_validate(data)
    problems = _semantic_errors(journey)
    if problems:
        raise JourneyError("; ".join(f"{_dotted(loc)}: {message}" for loc, message in problems))
    return journey


# (step, channel) -> None when the step's template exists and renders, else the problem.
TemplateCheck = Callable[[Step, str], str | None]


def parse_journey(text: str, source: str, check_template: TemplateCheck | None = None) -> Journey:
    """Validate a journey file's text. ``check_template(step, channel)`` returns None when
    the step's template is usable, else what is wrong. Every problem is reported at once, each as
    ``file:line: key: what is wrong``."""
    try:
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise JourneyError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise JourneyError(f"{source}:1: a journey is a mapping with name, audience and steps")
    problems: list[tuple[tuple[Any, ...], str]] = []
    try:
        journey = Journey.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = _clean_loc(error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            elif error["type"] == "missing":
                message = "missing (required)"
            problems.append((loc, message))
        raise JourneyError(_format(problems, root, source)) from None
    problems.extend(_semantic_errors(journey))
    if check_template is not None:
        places: list[tuple[tuple[Any, ...], Step]] = [
            (("steps", number, "template"), step) for number, step in enumerate(journey.steps)
        ]
        if journey.spare_step is not None:
            places.append((("sunset", "spare_step", "template"), journey.spare_step))
        for location, step in places:
            channels = ("email", "sms") if step.channel == "best" else (step.channel,)
            for channel in channels:
                missing = check_template(step, channel)
                if missing:
                    problems.append((location, missing))
    if problems:
        raise JourneyError(_format(problems, root, source))
    return journey


def _clean_loc(loc: Sequence[Any]) -> tuple[Any, ...]:
    # pydantic adds the validator's name ("function-after[...]") and union branches.
    return tuple(part for part in loc if not (isinstance(part, str) and "[" in part))


def _dotted(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _format(problems: list[tuple[tuple[Any, ...], str]], root: Any, source: str) -> str:
    return "\n".join(
        f"{source}:{_line(root, loc)}: {_dotted(loc)}: {message}" for loc, message in problems
    )


def _line(node: Any, loc: Sequence[Any]) -> int:
    """The 1-based line of the YAML node at ``loc``, or of its nearest existing parent."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    # Reported at the key's line, where the user looks for it.
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def dump_definition(journey: Journey) -> dict[str, Any]:
    """The journey as JSON-ready data, as the store keeps it."""
    return journey.model_dump(mode="json")
