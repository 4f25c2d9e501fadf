"""Play a journey on a virtual clock, without writing or sending anything: the expected
funnel, messages, cost and reactivations of enrolling its audience today.

Each contact of the audience (the same rules as ``enrol``, the same holdout split) walks
through :func:`winback.journeys.machine.decide`, the function the real tick uses, and
reacts to each message at random with the rates of ``[simulate]`` in ``winback.toml``.
When the scoring models have given a contact an expected number of purchases over 90
days, that contact's chance of buying during a step's wait comes from it instead
(a Poisson rate), so the simulation leans on each contact's own history.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from winback.config import SimulateSection
from winback.journeys.catalog import load_journeys
from winback.journeys.definition import Journey, Step
from winback.journeys.engine import spared
from winback.journeys.enrolment import Candidate, select_audience
from winback.journeys.machine import Advance, Exit, Reactions, decide
from winback.workspace import Workspace


@dataclass
class StepFunnel:
    sent: Counter[str] = field(default_factory=Counter)
    opened: int = 0
    clicked: int = 0


@dataclass
class Simulation:
    journey: str
    days: int
    audience: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    outcomes: dict[str, Counter[str]] = field(
        default_factory=lambda: {"treated": Counter(), "holdout": Counter()}
    )
    steps: dict[str, StepFunnel] = field(default_factory=lambda: defaultdict(StepFunnel))
    messages: Counter[str] = field(default_factory=Counter)
    cost: float = 0.0
    currency: str = "EUR"

    def rate(self, group: str) -> float | None:
        total = sum(self.outcomes[group].values())
        return self.outcomes[group]["reactivated"] / total if total else None

    def as_dict(self) -> dict[str, Any]:
        treated, holdout = self.rate("treated"), self.rate("holdout")
        lift = treated - holdout if treated is not None and holdout is not None else None
        return {
            "journey": self.journey,
            "days": self.days,
            "audience": self.audience,
            "skipped": dict(self.skipped),
            "outcomes": {group: dict(counts) for group, counts in self.outcomes.items()},
            "steps": {
                step: {"sent": dict(f.sent), "opened": f.opened, "clicked": f.clicked}
                for step, f in self.steps.items()
            },
            "messages": dict(self.messages),
            "cost": round(self.cost, 2),
            "currency": self.currency,
            "reactivation_rate": {"treated": treated, "holdout": holdout},
            "lift": lift,
            "reactivations": self.outcomes["treated"]["reactivated"],
        }


def _purchase_chance(rates: SimulateSection, candidate: Candidate, wait: timedelta) -> float:
    if candidate.expected_purchases_90d is None:
        return rates.purchase_rate
    per_day = max(candidate.expected_purchases_90d, 0.0) / 90
    return 1 - math.exp(-per_day * wait.total_seconds() / 86400)


def _react(
    rng: random.Random, rates: SimulateSection, step: Step, channel: str | None, base: float
) -> tuple[Reactions, str | None]:
    """One draw of what a contact does during a step's wait: the reactions, and the exit
    event among those the journey listens to (chosen by the caller)."""
    boost = rates.offer_boost if step.offer is not None else 1.0
    purchased = rng.random() < min(1.0, base * (boost if channel else 1.0))
    if channel is None:  # the holdout gets nothing: only its own purchases count
        return Reactions(), "purchase" if purchased else None
    click_rate = rates.email_click_rate if channel == "email" else rates.sms_click_rate
    clicked = rng.random() < min(1.0, click_rate * boost)
    opened = channel == "email" and (clicked or rng.random() < rates.email_open_rate)
    replied = channel == "sms" and rng.random() < rates.sms_reply_rate
    if rng.random() < rates.unsubscribe_rate:
        return Reactions(opened=opened), "unsubscribe"
    first = next(
        (
            kind
            for kind, hit in (("click", clicked), ("reply", replied), ("purchase", purchased))
            if hit
        ),
        None,
    )
    return Reactions(opened=opened, clicked=clicked, replied=replied), first


def play(
    journey: Journey,
    candidate: Candidate,
    start: datetime,
    end: datetime,
    rates: SimulateSection,
    rng: random.Random,
    result: Simulation,
) -> None:
    """Walk one contact through the journey until it ends or the clock passes ``end``."""
    group = "holdout" if candidate.holdout else "treated"
    now, step_id, sent_on, seen = start, None, None, Reactions()
    reachable = list(candidate.reachable)
    spare = spared(journey, candidate.expected_value_12m)
    while now <= end:
        decision = decide(
            journey, step_id, seen, reachable, candidate.preferred, now, spare, sent_on
        )
        if isinstance(decision, Exit):
            result.outcomes[group][decision.status] += 1
            return
        if not isinstance(decision, Advance):
            result.outcomes[group][decision.status(candidate.holdout)] += 1
            return
        step = journey.step(decision.step_id)
        channel = None if candidate.holdout else decision.channel
        if channel is not None:
            funnel = result.steps[step.id]
            funnel.sent[channel] += 1
            result.messages[channel] += 1
        reactions, event = _react(
            rng, rates, step, channel, _purchase_chance(rates, candidate, step.wait)
        )
        if channel is not None:
            funnel.opened += reactions.opened or reactions.clicked
            funnel.clicked += reactions.clicked
        if event == "unsubscribe":
            reachable = [ch for ch in reachable if ch != channel]
            event = None
        exit_event = event if event in journey.exit_on else None
        seen = Reactions(reactions.opened, reactions.clicked, reactions.replied, exit_event)
        step_id, sent_on, now = step.id, decision.channel, decision.due_at
    result.outcomes[group]["active"] += 1


def simulate(
    workspace: Workspace, name: str, days: int, *, now: datetime, seed: int = 0
) -> Simulation:
    """The expected funnel of enrolling the journey's audience at ``now`` and playing it
    for ``days``. Reads the store, writes nothing; the same ``seed`` gives the same
    figures."""
    config = workspace.config
    result = Simulation(journey=name, days=days, currency=config.cost.currency)
    rng = random.Random(seed)
    end = now + timedelta(days=days)
    with workspace.engine.connect() as connection:
        journey_id, journey = load_journeys(connection, name)[name]
        for candidate in select_audience(
            connection, workspace, journey_id, journey, result.skipped, now
        ):
            result.audience += 1
            play(journey, candidate, now, end, config.simulate, rng, result)
    result.audience += sum(result.skipped.values())
    result.cost = sum(
        count * (config.cost.email if channel == "email" else config.cost.sms)
        for channel, count in result.messages.items()
    )
    return result
