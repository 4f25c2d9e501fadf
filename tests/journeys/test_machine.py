"""The pure state machine: given a step, the reactions and the reachable channels, what
comes next. Hand-picked cases, then properties over random journeys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from winback.journeys.definition import CHANNEL_REACTIONS, Journey, journey_from_data
from winback.journeys.machine import (
    NO_REACTION,
    Advance,
    Exit,
    Finish,
    Reactions,
    decide,
    next_free_slot,
)

NOW = datetime(2025, 3, 3, 9, tzinfo=UTC)


def spring() -> Journey:
    return journey_from_data(
        {
            "name": "spring",
            "steps": [
                {"id": "miss-you", "template": "miss_you", "wait": "30d",
                 "on": {"opened_not_clicked": "bigger-offer"}},
                {"id": "offer", "template": "offer", "wait": "30d",
                 "offer": {"percent": 20}},
                {"id": "bigger-offer", "template": "offer", "wait": "30d",
                 "offer": {"percent": 40}},
                {"id": "sms-goodbye", "channel": "sms", "template": "goodbye", "wait": "14d"},
            ],
        }
    )  # fmt: skip


def test_the_first_step_goes_out_and_waits() -> None:
    assert decide(spring(), None, NO_REACTION, ["email"], None, NOW) == Advance(
        "miss-you", "email", NOW + timedelta(days=30)
    )


def test_opened_without_clicking_jumps_to_the_bigger_offer() -> None:
    seen = Reactions(opened=True)
    decision = decide(spring(), "miss-you", seen, ["email"], None, NOW)
    assert isinstance(decision, Advance) and decision.step_id == "bigger-offer"


def test_no_reaction_takes_the_next_step_in_the_list() -> None:
    decision = decide(spring(), "miss-you", NO_REACTION, ["email"], None, NOW)
    assert isinstance(decision, Advance) and decision.step_id == "offer"


def test_a_reaction_in_exit_on_ends_the_journey_as_reactivated() -> None:
    seen = Reactions(clicked=True, exit_event="click")
    assert decide(spring(), "miss-you", seen, ["email"], None, NOW) == Exit("reactivated", "click")


def test_a_step_on_a_channel_the_contact_lacks_is_passed_over_with_its_wait() -> None:
    # Only email: the SMS goodbye is passed over, its 14 days still run, then the end.
    passed = decide(spring(), "bigger-offer", NO_REACTION, ["email"], None, NOW)
    assert passed == Advance("sms-goodbye", None, NOW + timedelta(days=14))
    later = NOW + timedelta(days=14)
    assert decide(spring(), "sms-goodbye", NO_REACTION, ["email"], None, later, False, None) == (
        Finish("sunset")
    )
    decision = decide(spring(), "bigger-offer", NO_REACTION, ["email", "sms"], None, NOW)
    assert decision == Advance("sms-goodbye", "sms", NOW + timedelta(days=14))


def test_a_contact_without_email_gets_the_first_sms_when_the_calendar_says() -> None:
    journey = journey_from_data(
        {
            "name": "mixed",
            "steps": [
                {"id": "miss-you", "template": "miss_you", "wait": "30d",
                 "on": {"not_opened": "sms-offer"}},
                {"id": "email-offer", "template": "offer", "wait": "30d"},
                {"id": "sms-offer", "channel": "sms", "template": "offer", "wait": "30d"},
            ],
        }
    )  # fmt: skip
    first = decide(journey, None, NO_REACTION, ["sms"], None, NOW)
    assert first == Advance("miss-you", None, NOW + timedelta(days=30))
    # Nothing was sent, so no "not opened" either: the list goes on, a step at a time.
    day_30 = NOW + timedelta(days=30)
    second = decide(journey, "miss-you", NO_REACTION, ["sms"], None, day_30, False, None)
    assert second == Advance("email-offer", None, day_30 + timedelta(days=30))
    day_60 = day_30 + timedelta(days=30)
    third = decide(journey, "email-offer", NO_REACTION, ["sms"], None, day_60, False, None)
    assert third == Advance("sms-offer", "sms", day_60 + timedelta(days=30))


def test_an_sms_is_never_not_opened() -> None:
    journey = journey_from_data(
        {
            "name": "best",
            "steps": [
                {"id": "ask", "channel": "best", "template": "offer", "wait": "7d",
                 "on": {"not_opened": "last"}},
                {"id": "middle", "template": "offer", "wait": "7d"},
                {"id": "last", "template": "offer", "wait": "7d"},
            ],
        }
    )  # fmt: skip
    by_sms = decide(journey, "ask", NO_REACTION, ["email", "sms"], "sms", NOW, False, "sms")
    by_email = decide(journey, "ask", NO_REACTION, ["email", "sms"], "sms", NOW, False, "email")
    assert isinstance(by_sms, Advance) and by_sms.step_id == "middle"
    assert isinstance(by_email, Advance) and by_email.step_id == "last"


def test_no_channel_left_exits() -> None:
    assert decide(spring(), "offer", NO_REACTION, [], None, NOW) == Exit(
        "exited", "no channel left"
    )


def test_best_takes_the_channel_last_used() -> None:
    journey = journey_from_data(
        {"name": "b", "steps": [{"id": "a", "channel": "best", "template": "t", "wait": "1d"}]}
    )
    assert decide(journey, None, NO_REACTION, ["email", "sms"], "sms", NOW).channel == "sms"  # type: ignore[union-attr]
    assert decide(journey, None, NO_REACTION, ["email", "sms"], None, NOW).channel == "email"  # type: ignore[union-attr]
    assert decide(journey, None, NO_REACTION, ["email"], "sms", NOW).channel == "email"  # type: ignore[union-attr]


def test_the_frequency_cap_counts_a_rolling_week() -> None:
    three = [NOW - timedelta(days=6), NOW - timedelta(days=3), NOW - timedelta(hours=1)]
    assert next_free_slot(three, 3, NOW) == NOW + timedelta(days=1)
    assert next_free_slot(three, 4, NOW) is None
    assert next_free_slot([NOW - timedelta(days=8)] * 5, 1, NOW) is None


REACTIONS = ["clicked", "opened", "opened_not_clicked", "not_opened", "replied", "no_reaction"]


@st.composite
def journeys(draw: st.DrawFn) -> Journey:
    """Random valid journeys: branches only forward, no branch on an exit event."""
    count = draw(st.integers(1, 6))
    steps = []
    for index in range(count):
        branches = {}
        channel = draw(st.sampled_from(["email", "sms", "best"]))
        # No branch on a click (it exits), nor on what the channel cannot have.
        allowed = [
            reaction
            for reaction in REACTIONS
            if reaction != "clicked"
            and (channel == "best" or reaction in CHANNEL_REACTIONS[channel])
        ]
        if index < count - 1:
            for reaction in draw(st.lists(st.sampled_from(allowed), max_size=2, unique=True)):
                branches[reaction] = f"s{draw(st.integers(index + 1, count - 1))}"
        steps.append(
            {
                "id": f"s{index}",
                "channel": channel,
                "template": "t",
                "wait": f"{draw(st.integers(1, 40))}d",
                "on": branches,
            }
        )
    return journey_from_data({"name": "random", "steps": steps, "exit_on": ["click", "purchase"]})


@settings(max_examples=200, deadline=None)
@given(
    journey=journeys(),
    reachable=st.sampled_from([["email"], ["sms"], ["email", "sms"]]),
    reactions=st.lists(
        st.builds(Reactions, opened=st.booleans(), replied=st.booleans()), min_size=8, max_size=8
    ),
)
def test_every_path_moves_forward_and_ends(
    journey: Journey, reachable: list[str], reactions: list[Reactions]
) -> None:
    """Whatever the contact does, each step is sent at most once, on a channel that can
    reach them, time only moves forward, and the journey ends within its step count."""
    now, step_id, channel, visited = NOW, None, None, []
    for seen in reactions:
        decision = decide(journey, step_id, seen, reachable, None, now, False, channel)
        if isinstance(decision, Finish):
            break
        assert isinstance(decision, Advance)
        assert decision.channel is None or decision.channel in reachable
        assert decision.step_id not in visited
        assert decision.due_at == now + journey.step(decision.step_id).wait
        visited.append(decision.step_id)
        step_id, channel, now = decision.step_id, decision.channel, decision.due_at
    else:
        raise AssertionError(f"no end after {len(reactions)} decisions: {visited}")
    indexes = [journey.index(step) for step in visited]
    assert indexes == sorted(indexes)


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 3 * 24 * 60), min_size=1, max_size=40),
    cap=st.integers(1, 5),
)
def test_following_the_slots_never_exceeds_the_cap(gaps: list[int], cap: int) -> None:
    """A sender that waits for each free slot never puts more than ``cap`` messages in
    any 7-day window."""
    sent: list[datetime] = []
    now = NOW
    for gap in gaps:
        now += timedelta(minutes=gap)
        slot = next_free_slot(sent, cap, now)
        if slot is not None:
            assert slot > now
            now = slot
            assert next_free_slot(sent, cap, now) is None
        sent.append(now)
    for start in sent:
        in_window = [t for t in sent if start <= t < start + timedelta(days=7)]
        assert len(in_window) <= cap
