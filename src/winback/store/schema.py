"""The operational schema, in SQLAlchemy Core. Alembic migrations under ``migrations/``
create and change it; a test checks that the migrations and this file agree.

Times are stored as naive UTC datetimes (SQLite has no zones; PostgreSQL columns are
``timestamp without time zone``), converted at the edges.

Personal data lives in ``contacts`` (and message bodies in ``outbox``); everything else
points at a contact by id, so erasure blanks one row and keeps the counts.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

# BigInteger ids on PostgreSQL, INTEGER PRIMARY KEY (the rowid) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # Canonical keys (winback.addresses): lower-case email with an IDNA domain, E.164
    # phone. NULL after erasure.
    Column("email", String(320), unique=True),
    Column("phone", String(20), unique=True),
    Column("first_name", String(200)),
    Column("last_name", String(200)),
    Column("country", String(2)),
    Column("language", String(8)),
    Column("timezone", String(64)),
    Column("birth_year", Integer),
    Column("city", String(200)),
    Column("gender", String(20)),
    Column("interests", JSON),
    Column("tags", JSON),
    Column("attributes", JSON),
    Column("source", String(200)),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    # When the source (an ESP or shop export) last changed the record: the newest wins.
    Column("modified_at", DateTime),
    # The evidence of the email opt-in: when it was given (or confirmed).
    Column("email_consent_at", DateTime),
    # The ids the services gave the person, "mailchimp:<LEID>"..., every one merged.
    Column("source_ids", JSON),
    Column("email_status", String(12), nullable=False, server_default="none"),
    Column("email_status_at", DateTime),
    Column("sms_status", String(12), nullable=False, server_default="none"),
    Column("sms_status_at", DateTime),
    # An active paid subscription (protected from win-back under protect_subscribers).
    Column("subscription_active", Boolean, nullable=False, server_default="0"),
    # Preference centre: normal | monthly, a pause, chosen topics.
    Column("frequency", String(12), nullable=False, server_default="normal"),
    Column("paused_until", DateTime),
    Column("topics", JSON),
    # Set when a finished win-back journey lets the contact go; cleared by an interaction.
    Column("lost_by_journey_at", DateTime),
    Column("erased_at", DateTime),
    # HMAC of the email (or phone) kept after erasure to name the person in the audit log.
    Column("key_hash", String(64)),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contact_id", Id, ForeignKey("contacts.id"), nullable=False),
    Column("type", String(16), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("occurred_at", DateTime, nullable=False),
    Column("amount", Float),
    Column("currency", String(3)),
    Column("campaign", String(200)),
    Column("message_id", String(200)),
    # True: a proxy prefetch (Apple MPP...); NULL: unknown, decided by the scoring rule.
    Column("machine_open", Boolean),
    # True: a click by a link-scanning security gateway.
    Column("bot", Boolean),
    Column("user_agent", String(500)),
    Column("url", Text),
    # Where a tracking hit came from (personal data: erased with the contact).
    Column("ip", String(45)),
    # What the person wrote: the text of an SMS reply (STOP...) or of a form.
    Column("body", Text),
    Column("outbox_id", Id),
    Column("source", String(200)),
    # The discount code a purchase used (a shop's order export): what a coupon's
    # redemption is matched on (``offers.code``).
    Column("discount_code", String(200)),
    # A digest of what makes two events the same one: importing a file twice, or a
    # webhook delivered twice, adds nothing the second time.
    Column("dedup_key", LargeBinary(16), nullable=False, unique=True),
    Index("ix_events_contact_time", "contact_id", "occurred_at"),
    Index("ix_events_message_id", "message_id"),
    # A journey's results count the events tied to its messages; only those events have
    # an outbox_id, so the index stays small and a bulk import of plain events cheap.
    Index(
        "ix_events_outbox",
        "outbox_id",
        sqlite_where=text("outbox_id IS NOT NULL"),
        postgresql_where=text("outbox_id IS NOT NULL"),
    ),
)

# Tracking hits on the links of an erased contact: a count per day, journey, step,
# channel and kind, and nothing that names or locates the person (web.events).
erased_hits = Table(
    "erased_hits",
    metadata,
    Column("day", Date, primary_key=True),
    Column("journey", String(200), primary_key=True),
    Column("step_id", String(100), primary_key=True),
    Column("channel", String(8), primary_key=True),
    Column("type", String(16), primary_key=True),
    Column("hits", Integer, nullable=False),
)

# The hit journal of ``winback serve`` (web.journal): per segment file, the last hit
# recorded, committed with the hits, so a replay after a crash records each hit once.
hit_journal = Table(
    "hit_journal",
    metadata,
    Column("segment", String(100), primary_key=True),
    Column("recorded_through", BigInteger, nullable=False),
)

contact_scores = Table(
    "contact_scores",
    metadata,
    Column("contact_id", Id, ForeignKey("contacts.id"), primary_key=True),
    Column("scored_at", DateTime, nullable=False),
    Column("last_event_id", Id),
    Column("last_interaction_at", DateTime),
    Column("last_email_at", DateTime),
    Column("last_sms_at", DateTime),
    Column("last_web_at", DateTime),
    Column("last_app_at", DateTime),
    Column("last_store_at", DateTime),
    Column("days_inactive", Integer),
    Column("first_purchase_at", DateTime),
    Column("last_purchase_at", DateTime),
    Column("purchases", Integer, nullable=False, server_default="0"),
    Column("total_spend", Float, nullable=False, server_default="0"),
    Column("avg_spend", Float),
    Column("recency_score", Integer),
    Column("frequency_score", Integer),
    Column("monetary_score", Integer),
    Column("spend_level", String(8)),
    Column("clock_days", Integer),
    Column("stage", String(16), nullable=False),
    Column("stage_since", Date, nullable=False),
    Column("dormant_subscriber", Boolean, nullable=False, server_default="0"),
    Column("p_alive", Float),
    Column("expected_purchases_90d", Float),
    Column("expected_value_12m", Float),
    # The day the dormancy clock reaches the policy's next threshold: an incremental
    # rescore finds the contacts whose stage moved with time through this index.
    Column("next_threshold_on", Date),
    Index("ix_contact_scores_stage", "stage"),
    Index("ix_contact_scores_next_threshold", "next_threshold_on"),
)

# Contacts whose record changed (or that were added) since the last score: filled by
# triggers on ``contacts`` (migration 0004), read and emptied by ``winback score``.
score_changes = Table(
    "score_changes",
    metadata,
    Column("contact_id", Id, primary_key=True, autoincrement=False),
)

stage_history = Table(
    "stage_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contact_id", Id, ForeignKey("contacts.id"), nullable=False),
    Column("from_stage", String(16)),
    Column("to_stage", String(16), nullable=False),
    Column("changed_on", Date, nullable=False),
    Index("ix_stage_history_contact", "contact_id", "changed_on"),
    Index("ix_stage_history_changed_on", "changed_on"),
)

segments = Table(
    "segments",
    metadata,
    Column("name", String(100), primary_key=True),
    # Segments saved before the segment language: JSON filters (see from_filters).
    Column("filters", JSON),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    # The expression in the segment language (scoring/segment_language.py), kept as text:
    # relative dates (180 days ago) are resolved each time the segment is counted.
    Column("expression", Text),
)

journeys = Table(
    "journeys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("source", Text, nullable=False),
    Column("definition", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    # active | paused (nothing moves or goes out until resumed) | stopped (for good)
    Column("status", String(10), nullable=False, server_default="active"),
)

enrollments = Table(
    "enrollments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("journey_id", Id, ForeignKey("journeys.id"), nullable=False),
    Column("contact_id", Id, ForeignKey("contacts.id"), nullable=False),
    Column("holdout", Boolean, nullable=False),
    # active | reactivated | completed | sunset | exited
    Column("status", String(12), nullable=False),
    Column("step_id", String(100)),
    # The channel the current step's message went out on; NULL when it was passed over.
    Column("step_channel", String(8)),
    Column("step_sent_at", DateTime),
    Column("next_due_at", DateTime),
    Column("channels", JSON),
    Column("enrolled_at", DateTime, nullable=False),
    Column("ended_at", DateTime),
    Column("outcome", String(40)),
    Index("ix_enrollments_due", "status", "next_due_at"),
    Index("ix_enrollments_contact", "contact_id", "status"),
    Index("ix_enrollments_journey", "journey_id", "status"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # (enrollment, step): the at-most-once guarantee rests on this unique key.
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("enrollment_id", Id, ForeignKey("enrollments.id")),
    Column("contact_id", Id, ForeignKey("contacts.id"), nullable=False),
    Column("journey", String(100)),
    Column("step_id", String(100)),
    Column("channel", String(8), nullable=False),
    # queued -> sending -> sent | failed | unknown; cancelled when suppressed first.
    Column("status", String(10), nullable=False),
    Column("to_address", String(320)),
    Column("subject", Text),
    Column("body_text", Text),
    Column("body_html", Text),
    Column("headers", JSON),
    Column("message_id", String(200), unique=True),
    Column("provider_id", String(200)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime, nullable=False),
    Column("due_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    Column("error", Text),
    Index("ix_outbox_status_due", "status", "due_at"),
    Index("ix_outbox_contact", "contact_id", "created_at"),
)

offers = Table(
    "offers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("contact_id", Id, ForeignKey("contacts.id")),
    Column("enrollment_id", Id, ForeignKey("enrollments.id")),
    Column("journey", String(100)),
    Column("step_id", String(100)),
    Column("percent", Float),
    Column("amount", Float),
    Column("from_pool", Boolean, nullable=False, server_default="0"),
    Column("created_at", DateTime, nullable=False),
    Column("assigned_at", DateTime),
    Column("expires_at", DateTime),
    Column("redeemed_at", DateTime),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(8), nullable=False),
    # HMAC-SHA256 (workspace secret) of the canonical email or E.164 phone, hex.
    Column("address_hash", String(64), nullable=False),
    # unsubscribe | bounce_hard | bounce_soft | complaint | sunset | erased | manual
    Column("reason", String(16), nullable=False),
    # When the entry reached the list; when the person refused (an ESP export's or a
    # webhook's own time; the same as created_at when nothing says otherwise).
    Column("created_at", DateTime, nullable=False),
    Column("refused_at", DateTime),
    UniqueConstraint("channel", "address_hash"),
)

# Mailgun's signature tokens seen within ``web.webhook_max_age``: a token seen before with
# another body is a replayed request (Mailgun signs only the timestamp and token, not the
# event); with the same body, Mailgun's own retry. Kept in the
# store so that a restart or a second server process knows them too; rows past
# ``expires_at`` are pruned as new tokens come.
webhook_tokens = Table(
    "webhook_tokens",
    metadata,
    Column("provider", String(16), primary_key=True),
    Column("token", String(128), primary_key=True),
    # SHA-256 of the body the token came with, hex: the same body again is a retry.
    Column("digest", String(64), nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Index("ix_webhook_tokens_expires_at", "expires_at"),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("contact_id", Id),
    Column("contact_key", String(64)),
    Column("action", String(40), nullable=False),
    Column("reason", Text),
    Column("details", JSON),
    Index("ix_audit_contact", "contact_id"),
    Index("ix_audit_at", "at"),
)

survey_answers = Table(
    "survey_answers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contact_id", Id, ForeignKey("contacts.id"), nullable=False),
    Column("outbox_id", Id),
    Column("reason", String(40), nullable=False),
    Column("text", Text),
    Column("answered_at", DateTime, nullable=False),
)

model_fits = Table(
    "model_fits",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("time_unit", String(8), nullable=False),
    Column("params", JSON, nullable=False),
    Column("log_likelihood", Float),
    Column("customers", Integer, nullable=False),
    Column("fitted_at", DateTime, nullable=False),
    Column("calibration_end", DateTime, nullable=False),
    Column("quality", JSON),
)

import_runs = Table(
    "import_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(10), nullable=False),
    Column("file", Text, nullable=False),
    Column("sha256", String(64)),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("counts", JSON),
)

# The people who may open the dashboard: an email and an Argon2 hash of the password.
users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

# The figures of the dashboard and the report, kept by ``winback score``
# (reports/aggregates.py) so that a page reads a few hundred rows, not the history:
# the net change of each stage's contacts per day and the moves between stages per day
# (from stage_history), bounces and complaints per day (from events), where each refresh
# stopped, and the base's health as of the last score.
stage_days = Table(
    "stage_days",
    metadata,
    Column("day", Date, primary_key=True),
    Column("stage", String(16), primary_key=True),
    Column("change", Integer, nullable=False),
)

stage_flow_days = Table(
    "stage_flow_days",
    metadata,
    Column("day", Date, primary_key=True),
    Column("from_stage", String(16), primary_key=True),
    Column("to_stage", String(16), primary_key=True),
    Column("changes", Integer, nullable=False),
)

delivery_days = Table(
    "delivery_days",
    metadata,
    Column("day", Date, primary_key=True),
    Column("type", String(16), primary_key=True),
    Column("channel", String(8), primary_key=True),
    Column("events", Integer, nullable=False),
)

# name: the table a refresh reads; mark: the highest id of it the figures hold.
figure_marks = Table(
    "figure_marks",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("mark", Id, nullable=False),
)

figure_snapshots = Table(
    "figure_snapshots",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("computed_at", DateTime, nullable=False),
    Column("data", JSON, nullable=False),
)
