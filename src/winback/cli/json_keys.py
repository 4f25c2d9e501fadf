"""The keys each ``--json`` command prints, with what they mean: the one source of the
JSON part of the command reference (``docs/gen_reference.py``), and what
``tests/test_json_keys.py`` holds every command's real output to.

A key is a path: ``steps[].sent`` is the ``sent`` of each item of the list ``steps``;
``[]`` alone is an item of a top-level list. ``<stage>`` stands for any one key (a stage,
a status, a reason...), and a path ending in ``.*`` covers anything below it (an object
whose keys depend on the record).

>>> covers(("stages", "<stage>", "count"), ("stages", "dormant", "count"))
True
>>> covers(("details", "*"), ("details", "breakpoints", "recency", "[]"))
True
>>> key_path("steps[].sent")
('steps', '[]', 'sent')
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Keys = dict[str, str]


def key_path(key: str) -> tuple[str, ...]:
    """The segments of a documented key: ``a.b[].c`` is ``('a', 'b', '[]', 'c')``."""
    segments: list[str] = []
    for part in key.split("."):
        name = part.removesuffix("[]" * part.count("[]"))
        segments += ([name] if name else []) + ["[]"] * part.count("[]")
    return tuple(segments)


def covers(documented: tuple[str, ...], printed: tuple[str, ...]) -> bool:
    """Whether the documented key ``documented`` names the printed key ``printed``."""
    if documented and documented[-1] == "*":
        head = documented[:-1]
        return len(printed) > len(head) and covers(head, printed[: len(head)])
    return len(documented) == len(printed) and all(
        doc == seen or (doc.startswith("<") and seen != "[]")
        for doc, seen in zip(documented, printed, strict=True)
    )


def printed_keys(data: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key path of a JSON value, an empty object or list included as itself."""
    if isinstance(data, dict):
        if not data:
            yield path
        for key, value in data.items():
            yield from printed_keys(value, (*path, str(key)))
    elif isinstance(data, list):
        if not data:
            yield (*path, "[]")
        for value in data:
            yield from printed_keys(value, (*path, "[]"))
    else:
        yield path


def undocumented(command: str, data: Any) -> list[str]:
    """The keys of ``data``, printed by ``winback COMMAND --json``, that :data:`JSON_KEYS`
    does not list (an empty object or list is listed when a key below it is)."""
    documented = [key_path(key) for key in JSON_KEYS[command]]
    missing = []
    for printed in dict.fromkeys(printed_keys(data)):
        if any(covers(doc, printed) for doc in documented):
            continue
        empty = printed[:-1] if printed[-1:] == ("[]",) else printed
        if any(covers(doc[: len(empty)], empty) for doc in documented if len(doc) > len(empty)):
            continue
        missing.append(".".join(printed).replace(".[]", "[]"))
    return missing


def _under(prefix: str, keys: Keys) -> Keys:
    return {f"{prefix}.{key}": meaning for key, meaning in keys.items()}


IMPORT: Keys = {
    "file": "The file read.",
    "kind": "`contacts` or `events`.",
    "recognised": "The kind of export recognised from the columns (Mailchimp, Shopify...), "
    "when one was.",
    "read": "Rows read.",
    "imported": "Rows stored as new.",
    "merged": "Contacts merged with a stored one; for events, rows already stored.",
    "rejected": "Rows quarantined.",
    "by_reason.<reason>": "Rows quarantined for each reason.",
    "quarantine": "The file of the rejected rows with their line and reason (null when none).",
    "warnings": "Rows kept with a field left empty.",
    "warnings_by_reason.<reason>": "Rows kept with a warning, for each reason.",
    "warnings_file": "The file of the fields left empty (null when none).",
    "seconds": "How long the import took.",
    "rows_per_second": "Rows read per second.",
}
COUNT_SHARE: Keys = {"count": "Contacts.", "share": "Their share of the base, 0 to 1."}
TICK: Keys = {
    "due": "Enrollments due at this moment.",
    "queued": "Messages written to the outbox.",
    "holdout_steps": "Steps the holdout group passed without a message.",
    "passed_over": "Steps passed over: no channel would reach the contact.",
    "postponed": "Messages postponed by the frequency cap.",
    "waiting": "Enrollments waiting for their last message to go out.",
    "reactivated": "Contacts who came back: they leave the journey as reactivated.",
    "exited": "Contacts who met an exit condition.",
    "completed": "Enrollments that reached the end of the journey.",
    "sunset": "Contacts sunset at the end: suppressed, marked lost.",
}
DISPATCH: Keys = {
    "sent": "Messages handed to their channel.",
    "failed": "Messages refused for good.",
    "retry": "Messages to try again later.",
    "unknown": "Messages whose fate is unknown (see `winback outbox --unknown`).",
    "cancelled": "Messages cancelled: the contact refused or left meanwhile.",
    "recovered": "Messages a stopped dispatcher had claimed, settled from its flight log.",
    "recovered_unknown": "Of those, messages being sent when it stopped: not resent.",
    "stopped": "Why the dispatch stopped early (a channel failing), or null.",
}
CONTROL: Keys = {
    "journey": "The journey.",
    "status": "Its status now: `active`, `paused` or `stopped`.",
    "enrollments_ended": "Enrollments this change ended.",
    "messages_cancelled": "Queued messages this change cancelled.",
}
LIFT: Keys = {
    "treated": "The rate (or revenue per contact) of the contacts who got the messages.",
    "holdout": "The same for the holdout group, or null without one.",
    "difference": "treated - holdout, or null.",
    "ci_low": "Low end of the 95 % confidence interval of the difference, or null.",
    "ci_high": "High end of that interval, or null.",
    "relative": "The difference relative to the holdout, or null.",
    "significant": "Whether the interval excludes zero.",
    "more_contacts_needed": "Contacts per group needed to tell, when not significant yet.",
}
MODEL_FIT: Keys = {
    "id": "The stored fit's id (null for a calibration fit, not stored).",
    "kind": "The models fitted (BG/NBD with Gamma-Gamma).",
    "time_unit": "The time unit of the parameters.",
    "fitted_at": "When it was fitted.",
    "customers": "Customers the fit used.",
    "params.<name>": "BG/NBD parameters (r, alpha, a, b).",
    "spend_params.<name>": "Gamma-Gamma parameters (p, q, gamma).",
    "log_likelihood": "Log-likelihood of the fit.",
    "quality.repeat_buyers": "Customers with repeat purchases.",
    "quality.log_likelihood_per_customer": "Log-likelihood divided by the customers.",
    "quality.spend_customers": "Customers the spend model used.",
    "quality.spend_left_out": "Customers left out of the spend model.",
    "error": "Why the fit failed, or null.",
}

#: ``winback COMMAND --json`` → each key it prints and its meaning.
JSON_KEYS: dict[str, Keys] = {
    "import contacts": {
        **IMPORT,
        "[].*": "With a ZIP of several files: a list of the objects above, one a file.",
    },
    "import events": IMPORT,
    "contact show": {
        "contact.<column>": "Each column of the contact's row: addresses, names, consent "
        "per channel with its date, attributes, source...",
        "contact.<column>.*": "The items of a list or object column (interests, tags, "
        "topics, attributes, source ids).",
        "stage": "The contact's stage, or null when not scored.",
        "scores.<column>": "Each column of the contact's scores: last interaction per "
        "channel, days inactive, purchases, RFM scores, spend level, stage and since when, "
        "model estimates, the day of the next threshold.",
        "stage_history[].from": "The stage before (null for the first).",
        "stage_history[].to": "The stage after.",
        "stage_history[].on": "When it changed.",
        "events[].<column>": "Each column of one of the contact's latest events.",
        "events[].<column>.*": "The items of an object column of the event.",
    },
    "events export": {
        "path": "The folder (or object-store URL) written.",
        "events": "Events written.",
        "months[]": "The month partitions written again (`YYYY-MM`).",
        "since": "The first day exported again (`--since`), or null for everything.",
        "high_water": "The highest event id in the export.",
        "machine_open_seconds": "The machine-open window the flags were resolved with.",
    },
    "events compact": {
        "path": "The workspace's history folder ([engine] events_path).",
        "mode": "`full` (written again whole), `incremental` or `none` (nothing new).",
        "reason": "Why it was written again whole, or empty.",
        "added": "Events moved into the history.",
        "months_rewritten[]": "The months written again as one file (`YYYY-MM`).",
        "high_water": "The highest event id the history holds.",
        "events": "Events the history holds.",
    },
    "score": {
        "now": "The moment scored.",
        "mode": "`full` or `incremental`.",
        "reason": "Why that mode.",
        "contacts": "Contacts scored.",
        "rewritten": "Score rows written.",
        "stage_changes": "Contacts whose stage changed.",
        "new_events": "Events new since the last run (null on a full run).",
        "stages.<stage>": "Contacts in each stage.",
        "models": "What the purchase models did, or null.",
    },
    "status": {
        "now": "The moment of the report.",
        "contacts": "Contacts in the base.",
        **_under("stages.<stage>", COUNT_SHARE),
        **_under("channels.<channel>.statuses.<status>", COUNT_SHARE),
        "channels.<channel>.reachable": "Contacts that channel may write to.",
        **_under("channels.reachable_any", COUNT_SHARE),
        **_under("inactivity_buckets.<months>", COUNT_SHARE),
        "erosion.since": "Start of the 12 months.",
        "erosion.base_12_months_ago": "Reachable, not lost contacts 12 months ago.",
        "erosion.became_lost": "Of those, contacts lost since.",
        "erosion.became_unreachable": "Of those, contacts no channel reaches any more.",
        "erosion.eroded": "became_lost + became_unreachable.",
        "erosion.rate": "eroded / base_12_months_ago.",
        "cost.currency": "Currency of the costs.",
        "cost.period_days": "The period, in days.",
        "cost.<stage>.email_sent": "Emails sent to contacts of that stage (dormant, lost).",
        "cost.<stage>.sms_sent": "SMS sent to them.",
        "cost.<stage>.cost": "What those messages cost.",
        "cost.total": "The cost of both stages.",
    },
    "segment list": {
        "[].name": "The segment.",
        "[].where": "Its expression.",
        "[].created_at": "When it was saved first.",
        "[].updated_at": "When it was saved last.",
    },
    "segment count": {
        "segment": "The saved segment, or null.",
        "where": "The expression counted.",
        "count": "Contacts it holds.",
    },
    "journey list": {
        "[].name": "The journey.",
        "[].status": "`active`, `paused` or `stopped`.",
        "[].steps[]": "Its step ids, in order.",
        "[].channels[]": "The channels its steps use.",
        "[].enrollments.<status>": "Its enrollments by status.",
    },
    "journey show": {
        "name": "The journey.",
        "status": "`active`, `paused` or `stopped`.",
        "enrolled": "Contacts enrolled, holdout included.",
        "holdout": "Contacts in the holdout group (they receive nothing).",
        "waiting_to_start": "Enrolled contacts whose first step is not due yet.",
        "reactivated.<group>": "Contacts reactivated, `treated` and `holdout`.",
        "steps[].id": "The step.",
        "steps[].channel": "Its channel.",
        "steps[].template": "Its template.",
        "steps[].waiting": "Contacts waiting at this step.",
        "steps[].queued": "Messages queued.",
        "steps[].sent": "Messages sent.",
        "steps[].failed": "Messages failed.",
        "steps[].unknown": "Messages whose fate is unknown.",
        "steps[].delivered": "Messages delivered.",
        "steps[].bounced": "Messages bounced.",
        "steps[].unsubscribed": "Unsubscribes from this step's messages.",
        "steps[].complained": "Complaints about them.",
        "steps[].opened": "Contacts who opened (human opens only).",
        "steps[].clicked": "Contacts who clicked.",
        "steps[].conversions": "Purchases attributed to the step.",
        "steps[].revenue": "Their revenue.",
        "steps[].redeemed": "Coupon codes of the step used.",
        "steps[].cost": "What the step's messages cost.",
        "conversions": "Purchases attributed to the journey (attribution_days after a message).",
        "revenue": "Their revenue.",
        "redeemed": "Coupon codes used.",
        "cost": "What the messages cost.",
        "discounts": "What the used codes took off.",
        "incremental_revenue": "Revenue above the holdout's, or null without a holdout.",
        "roi": "(incremental revenue - cost - discounts) / (cost + discounts), or null.",
        "currency": "The currency of the amounts.",
        "attribution_days": "The attribution window, in days.",
        **_under("lift", LIFT),
        **_under("revenue_lift", LIFT),
        "verdict.lift": "The reactivation lift, in words.",
        "verdict.revenue_lift": "The revenue per contact lift, in words.",
    },
    **{f"journey {verb}": CONTROL for verb in ("pause", "resume", "stop", "unenroll")},
    "journey enroll": {
        "journey": "The journey.",
        "audience": "Contacts of its audience now.",
        "enrolled": "Contacts enrolled.",
        "holdout": "Of those, contacts in the holdout group.",
        "skipped.<reason>": "Contacts of the audience not enrolled, for each reason.",
    },
    "tick": TICK,
    "dispatch": DISPATCH,
    "run": {**_under("tick", TICK), **_under("dispatch", DISPATCH)},
    "simulate": {
        "journey": "The journey played.",
        "days": "How long.",
        "audience": "Contacts enrolled at the start.",
        "skipped.<reason>": "Contacts of the audience left out, for each reason.",
        "outcomes.<group>.<outcome>": "Contacts of each group (`treated`, `holdout`) by how "
        "their enrollment ended.",
        "steps.<step>.sent.<channel>": "Messages of the step, by channel.",
        "steps.<step>.opened": "Simulated opens.",
        "steps.<step>.clicked": "Simulated clicks.",
        "messages.<channel>": "Messages by channel.",
        "cost": "What they would cost.",
        "currency": "Its currency.",
        "reactivation_rate.<group>": "Share of each group reactivated (null when empty).",
        "lift": "treated - holdout reactivation rate, or null without a holdout.",
        "reactivations": "Contacts reactivated.",
    },
    "outbox": {
        "<status>": "Messages of the outbox in each status.",
        "[].id": "With --unknown: the message's outbox id.",
        "[].journey": "Its journey.",
        "[].step_id": "Its step.",
        "[].channel": "Its channel.",
        "[].to_address": "Where it was going.",
        "[].message_id": "The message id to ask the provider about.",
        "[].due_at": "When it was due.",
        "[].error": "What is known.",
    },
    "survey": {
        "answers": "Answers so far.",
        "reasons.<reason>": "Answers that gave each reason (every reason, zero included).",
        "texts[].contact_id": "Who wrote a free-text answer.",
        "texts[].text": "The answer, as written.",
        "texts[].answered_at": "When.",
    },
    "suppress list": {
        "[].channel": "`email` or `sms`.",
        "[].address": "The address, or null when no contact holds it any more.",
        "[].hash": "Its keyed hash.",
        "[].reason": "Why it is suppressed (the first reason).",
        "[].suppressed_at": "When.",
        "[].refused_at": "When the person refused, when known.",
    },
    "suppress import": {
        "added": "Addresses added to the list.",
        "already": "Addresses already on it.",
        "skipped": "Rows that are not refusals.",
        "rejected[][]": "Each rejected row as [line, problem].",
    },
    "purge": {
        "cutoff": "Contacts with no contact from the person since this moment are due.",
        "due": "Contacts due.",
        "with_email": "Of those, with an email.",
        "with_phone": "Of those, with a phone.",
        "asked": "Contacts asked whether they want to stay (retention.ask_before_erase).",
        "waiting": "Due contacts waiting for their answer.",
        "erased": "Contacts erased.",
        "dry_run": "Whether nothing was erased.",
        "log_emptied": "Whether the SQLite write-ahead log was emptied of the erased rows.",
    },
    "gdpr erase": {
        "contact_erased": "Whether a contact had the address.",
        "log_emptied": "Whether the SQLite write-ahead log was emptied of the erased rows.",
        "files_rewritten[]": "Files of the workspace rewritten without the person.",
        "files_deleted[]": "Files deleted.",
        "files_left[]": "Binary files naming the person, left unchanged.",
    },
    "audit": {
        "[].id": "The record.",
        "[].at": "When.",
        "[].actor": "Who decided: a command, the tick, a webhook, a user.",
        "[].action": "What was decided (enrol, suppress, stage change, erase...).",
        "[].contact_id": "The contact, or null.",
        "[].contact_key": "The contact's keyed hash (what stays once erased), or null.",
        "[].address": "The contact's email (or phone), or null once erased.",
        "[].reason": "Why, or null.",
        "[].details": "Null when the action records nothing more.",
        "[].details.*": "What the action recorded (its keys depend on the action).",
    },
    "doctor": {
        "findings[].check": "What was checked.",
        "findings[].level": "`ok`, `warning` or `error`.",
        "findings[].message": "What was found.",
        "findings[].fix": "What to do, when not ok.",
    },
    "models fit": MODEL_FIT,
    "models report": {
        **_under("fit", MODEL_FIT),
        "calibration.holdout_from": "Start of the holdout period the check predicts.",
        "calibration.until": "Its end.",
        "calibration.holdout_length": "Its length, in time units.",
        "calibration.time_unit": "The time unit.",
        **_under("calibration.fit", MODEL_FIT),
        "calibration.classes[].frequency": "A class of customers by repeat purchases.",
        "calibration.classes[].customers": "Customers in it.",
        "calibration.classes[].actual": "Their mean purchases in the holdout period.",
        "calibration.classes[].expected": "What the model predicted.",
        "calibration.total.customers": "All customers.",
        "calibration.total.actual": "Their purchases in the holdout period.",
        "calibration.total.expected": "What the model predicted.",
    },
}
