"""Journey files: what a valid one becomes, and errors that name the file, the line and
what is wrong."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.journeys.conftest import SIMPLE, journey_file
from winback.journeys.catalog import parse_journey_file
from winback.journeys.definition import JourneyError, dump_definition, journey_from_data
from winback.journeys.render import STARTER_DIR
from winback.workspace import Workspace


def test_the_issue_example_parses_with_its_branches(ws: Workspace) -> None:
    journey, _ = parse_journey_file(ws, journey_file(ws, SIMPLE))
    assert [step.id for step in journey.steps] == ["miss-you", "offer", "bigger-offer", "goodbye"]
    # `on:` is a key here, not the YAML 1.1 boolean true.
    assert journey.steps[0].on == {"opened_not_clicked": "bigger-offer"}
    assert journey.steps[0].wait == timedelta(days=30)
    assert journey.steps[2].offer is not None and journey.steps[2].offer.percent == 40
    assert journey.channels == frozenset({"email"})
    assert journey.after_last_step == "sunset"


def test_the_stored_definition_round_trips(ws: Workspace) -> None:
    journey, _ = parse_journey_file(ws, STARTER_DIR / "journeys" / "winback.yaml")
    assert journey_from_data(dump_definition(journey)) == journey
    assert dump_definition(journey)["steps"][0]["wait"] == "30d"


def error_of(ws: Workspace, text: str) -> str:
    with pytest.raises(JourneyError) as caught:
        parse_journey_file(ws, journey_file(ws, text))
    return str(caught.value)


def test_an_unknown_step_in_a_branch_is_named_with_its_line(ws: Workspace) -> None:
    message = error_of(
        ws,
        SIMPLE.replace(
            "on: {opened_not_clicked: bigger-offer}", "on: {opened_not_clicked: biger-offer}"
        ),
    )
    path = ws.path / "journey.yaml"
    assert f"{path}:9: steps[0].on.opened_not_clicked: unknown step id 'biger-offer'" in message
    assert "miss-you, offer, bigger-offer, goodbye" in message


def test_a_wait_that_is_not_a_duration_is_named_with_its_line(ws: Workspace) -> None:
    message = error_of(ws, SIMPLE.replace("wait: 14d", "wait: two weeks"))
    assert f"{ws.path / 'journey.yaml'}:20: steps[3].wait: 'two weeks' is not a duration" in message


def test_an_unknown_template_is_named_with_its_line(ws: Workspace) -> None:
    message = error_of(ws, SIMPLE.replace("template: goodbye", "template: farewell"))
    assert (
        f"{ws.path / 'journey.yaml'}:19: steps[3].template: unknown template 'farewell'" in message
    )
    assert "miss_you, offer, survey, goodbye" in message


def test_every_problem_is_reported_at_once(ws: Workspace) -> None:
    text = SIMPLE.replace("holdout: 0", "holdout: 1.5").replace("wait: 14d", "wait: 0d")
    text = text.replace("after_last_step: sunset", "after_last_step: sunset\n    colour: red")
    lines = error_of(ws, text).splitlines()
    assert any(":3: holdout: Input should be less than 1" in line for line in lines)
    assert any(":20: steps[3].wait: a wait must be longer than zero" in line for line in lines)
    assert any(":22: colour: unknown key" in line for line in lines)


def test_a_branch_may_not_go_back(ws: Workspace) -> None:
    text = SIMPLE.replace(
        "        offer: {percent: 40, valid_days: 30}\n        wait: 30d",
        "        offer: {percent: 40, valid_days: 30}\n        wait: 30d\n"
        "        on: {not_opened: miss-you}",
    )
    assert "branch to 'miss-you' goes back: a branch may only jump forward" in error_of(ws, text)


def test_a_branch_that_an_exit_always_wins_is_refused(ws: Workspace) -> None:
    text = SIMPLE.replace("{opened_not_clicked: bigger-offer}", "{clicked: bigger-offer}")
    assert "never taken: a click is in exit_on" in error_of(ws, text)


def test_an_offer_template_without_an_offer_is_refused(ws: Workspace) -> None:
    # The starter offer template prints the code: a step without an offer cannot use it.
    text = SIMPLE.replace("        offer: {percent: 20, valid_days: 30}\n", "")
    assert "steps[1].template:" in error_of(ws, text)


def test_yaml_that_does_not_parse_names_the_line(ws: Workspace) -> None:
    message = error_of(ws, "name: x\nsteps:\n  - id: [unclosed\n")
    assert f"{ws.path / 'journey.yaml'}:4: not valid YAML" in message


def test_exit_on_accepts_only_interactions(ws: Workspace) -> None:
    text = SIMPLE.replace("exit_on: [click,", "exit_on: [delivered, click,")
    assert "delivered is not a reaction that proves interest" in error_of(ws, text)


def test_the_starter_journey_is_valid(ws: Workspace) -> None:
    journey, _ = parse_journey_file(ws, STARTER_DIR / "journeys" / "winback.yaml")
    offers = [step.offer.percent for step in journey.steps if step.offer]
    assert offers == [20, 40, 50]
    assert [s.template for s in journey.steps][-2:] == ["survey", "goodbye"]
