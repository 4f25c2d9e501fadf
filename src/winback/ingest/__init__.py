"""Ingest: read contacts and events from CSV (any common dialect and encoding), JSON
Lines and Parquet, and suppression lists (winback's own export or an ESP's); validate and
normalise them; quarantine what cannot be imported."""

from winback.ingest.contacts import import_contact_files, import_contacts
from winback.ingest.events import import_events
from winback.ingest.pipeline import ImportReport
from winback.ingest.suppressions import SuppressionImport, import_suppressions

__all__ = [
    "ImportReport",
    "SuppressionImport",
    "import_contact_files",
    "import_contacts",
    "import_events",
    "import_suppressions",
]
