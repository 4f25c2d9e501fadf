"""Compliance: suppression, consent and refusals, quiet hours, the retention purge,
the rights of a person (export, erasure) and the audit log.

Public face (what the CLI and users call; each takes the workspace, and ``now`` when
time matters):

- the suppression list: :func:`add_suppression`, :func:`remove_suppression`,
  :func:`list_suppressions`, :func:`export_suppressions` (its import reads a file:
  :func:`winback.ingest.import_suppressions`);
- retention: :func:`purge` and :func:`write_purge_plan`;
- a person's rights: :func:`export_person`, :func:`erase_person`;
- the audit log: :func:`audit_log`;
- the rule every writer of events follows: :func:`apply_refusals` (through
  :func:`winback.events.record_events`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from winback.lazy import lazy_face

if TYPE_CHECKING:
    from winback.compliance.audit_query import AuditRecord, audit_log
    from winback.compliance.gdpr import EraseResult, erase_person, export_person
    from winback.compliance.refusals import apply_refusals
    from winback.compliance.retention import PurgeResult, purge, write_purge_plan
    from winback.compliance.suppression_list import (
        ListedSuppression,
        add_suppression,
        export_suppressions,
        list_suppressions,
        remove_suppression,
    )
    from winback.domain import SuppressionReason

# Loaded on first use, like the other parts' faces: the importers call the refusal rule
# and must not load the retention purge or the GDPR export with it.
_HOMES = {
    "AuditRecord": "audit_query",
    "audit_log": "audit_query",
    "EraseResult": "gdpr",
    "erase_person": "gdpr",
    "export_person": "gdpr",
    "apply_refusals": "refusals",
    "PurgeResult": "retention",
    "purge": "retention",
    "write_purge_plan": "retention",
    "SuppressionReason": "suppression",
    "ListedSuppression": "suppression_list",
    "add_suppression": "suppression_list",
    "export_suppressions": "suppression_list",
    "list_suppressions": "suppression_list",
    "remove_suppression": "suppression_list",
}
__all__ = [
    "AuditRecord",
    "EraseResult",
    "ListedSuppression",
    "PurgeResult",
    "SuppressionReason",
    "add_suppression",
    "apply_refusals",
    "audit_log",
    "erase_person",
    "export_person",
    "export_suppressions",
    "list_suppressions",
    "purge",
    "remove_suppression",
    "write_purge_plan",
]

__getattr__ = lazy_face(__name__, _HOMES)
