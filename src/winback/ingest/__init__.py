"""Ingest: read contacts and events from CSV (any common dialect and encoding), JSON
Lines and Parquet; validate and normalise them; quarantine what cannot be imported."""

from winback.ingest.contacts import import_contact_files, import_contacts
from winback.ingest.events import import_events
from winback.ingest.pipeline import ImportReport

__all__ = ["ImportReport", "import_contact_files", "import_contacts", "import_events"]
