"""refusals: when a refusal happened, and emails in their one canonical form

``suppressions.refused_at`` keeps when the person refused (an ESP export's unsubscribe
time, a webhook event's time) apart from ``created_at``, when the entry reached the list;
the entries already there get their ``created_at``, the best that was known.

An email's canonical form now writes its domain in IDNA (punycode) ASCII
(:mod:`winback.addresses`): the stored emails with a non-ASCII domain are rewritten. An
address whose canonical spelling another contact already has stays as it was (two
contacts for one person, as before this change; merging them is the user's call) and is
reported on the console. Suppression hashes cannot be rewritten (a hash is not reversed):
lookups check both spellings instead (``winback.addresses.hashed_forms``).

Revision ID: 0005_refusals
Revises: 0005_kinds
Create Date: 2026-12-07 01:30:00
"""

import sqlalchemy as sa
from alembic import op
from email_validator import EmailNotValidError, validate_email

revision = "0005_refusals"
down_revision = "0005_kinds"
branch_labels = None
depends_on = None


def _ascii_domain(email: str) -> str | None:
    """The email with its domain in IDNA ASCII, or None when it needs no change."""
    if email.isascii():
        return None
    try:
        checked = validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return None
    canonical = f"{checked.local_part}@{checked.ascii_domain}".lower()
    return None if canonical == email else canonical


def upgrade() -> None:
    with op.batch_alter_table("suppressions") as batch:
        batch.add_column(sa.Column("refused_at", sa.DateTime(), nullable=True))
    op.execute("UPDATE suppressions SET refused_at = created_at")
    connection = op.get_bind()
    contacts = sa.table("contacts", sa.column("id"), sa.column("email"))
    rows = connection.execute(
        sa.select(contacts.c.id, contacts.c.email).where(contacts.c.email.is_not(None))
    )
    rewrites = {cid: new for cid, email in rows if (new := _ascii_domain(email))}
    taken: set[str] = set()
    if rewrites:
        for batch_start in range(0, len(rewrites), 500):
            wanted = list(rewrites.values())[batch_start : batch_start + 500]
            taken.update(
                connection.execute(
                    sa.select(contacts.c.email).where(contacts.c.email.in_(wanted))
                ).scalars()
            )
    kept = 0
    for contact_id, email in rewrites.items():
        if email in taken:
            kept += 1
            continue
        taken.add(email)
        connection.execute(contacts.update().where(contacts.c.id == contact_id).values(email=email))
    if kept:
        print(
            f"0005_refusals: {kept} emails with a non-ASCII domain kept as they were: "
            "another contact has their canonical spelling (see `winback contact show`)"
        )


def downgrade() -> None:
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_column("refused_at")
