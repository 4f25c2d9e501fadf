"""Recognising columns by the names users' files give them, in English and French, and
as the sending services export them (Mailchimp, Brevo, Klaviyo, Shopify...).

Headers are compared folded (lower case, no accents, no punctuation), so ``E-mail``,
``Email Address`` and ``EMAIL`` all mean ``email``. ``--map source=field`` wins over them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from winback.errors import InputFileError
from winback.words import fold

CONTACT_ALIASES: dict[str, tuple[str, ...]] = {
    "email": (
        "email",
        "e-mail",
        "mail",
        "courriel",
        "email address",
        "adresse email",
        "adresse e-mail",
        "adresse mail",
        "email_address",
        "emailaddress",
        "e_mail",
    ),
    "phone": (
        "phone",
        "mobile",
        "sms",
        "téléphone",
        "telephone",
        "tel",
        "portable",
        "phone number",
        "phone_number",
        "mobile phone",
        "numero",
        "numéro",
        "numero de telephone",
        "cell",
        "gsm",
    ),
    "first_name": (
        "first name",
        "firstname",
        "first_name",
        "prénom",
        "prenom",
        "given name",
        "fname",
    ),
    "last_name": (
        "last name",
        "lastname",
        "last_name",
        "nom",
        "nom de famille",
        "surname",
        "family name",
        "lname",
    ),
    "country": ("country", "pays", "country code", "country_code", "code pays"),
    "language": ("language", "langue", "lang", "locale"),
    "timezone": ("timezone", "time zone", "tz", "fuseau", "fuseau horaire"),
    "birth_year": (
        "birth year",
        "birth_year",
        "année de naissance",
        "annee naissance",
        "birthday",
        "birthdate",
        "date of birth",
        "date de naissance",
        "dob",
    ),
    "city": ("city", "ville"),
    "gender": ("gender", "sexe", "genre", "civilité", "civilite"),
    "interests": ("interests", "intérêts", "interets", "centres d'intérêt"),
    "tags": ("tags", "tag", "étiquettes", "etiquettes", "labels"),
    "source": ("source", "origine", "acquisition source", "signup source"),
    "created_at": (
        "created_at",
        "created",
        "created at",
        "creation date",
        "date de création",
        "date creation",
        "signup date",
        "sign up date",
        "signup_date",
        "date_inscription",
        "date inscription",
        "inscription",
        "subscribed_at",
        "date added",
        "date ajout",
        "added_time",
    ),
    # The evidence of consent: when the person opted in, and when they confirmed it.
    "optin_at": ("optin_time", "opt-in time", "optin date", "date optin"),
    "consent_at": ("confirm_time", "consent_at", "consent date", "date du consentement"),
    # When the source last changed the record: the newest record wins a merge.
    "modified_at": (
        "last_changed",
        "modified_time",
        "updated_at",
        "updated at",
        "last updated",
        "last_updated",
        "modified at",
        "date de modification",
        "date modification",
    ),
    # The person's id at the service a file comes from (each kind names its column).
    "source_id": (),
    # A contact export's purchase summary (see winback.ingest.summaries).
    "last_order_at": (
        "dernier_achat",
        "dernier achat",
        "date dernier achat",
        "date du dernier achat",
        "last order date",
        "last_order_date",
        "last order",
        "last purchase date",
        "last_purchase_date",
    ),
    "total_spent": (
        "montant_total",
        "montant total",
        "montant total des achats",
        "total spent",
        "total_spent",
    ),
    "subscription_active": (
        "subscription_active",
        "active subscription",
        "abonnement actif",
        "paid subscriber",
        "subscriber",
    ),
    "email_status": (
        "status",
        "email_status",
        "email status",
        "statut",
        "statut email",
        "member status",
    ),
    "sms_status": ("sms_status", "sms status", "statut sms"),
    "email_blacklisted": ("email_blacklisted", "emailblacklisted", "blacklisted email"),
    "sms_blacklisted": ("sms_blacklisted", "smsblacklisted", "blacklisted sms"),
    "email_optin": (
        "email_optin",
        "optin_email",
        "opt-in email",
        "email opt-in",
        "email consent",
        "consent_email",
        "accepts marketing",
        "accepts email marketing",
        "newsletter",
        "optin",
    ),
    "sms_optin": (
        "sms_optin",
        "optin_sms",
        "opt-in sms",
        "sms opt-in",
        "sms consent",
        "consent_sms",
        "accepts sms marketing",
    ),
}

EVENT_ALIASES: dict[str, tuple[str, ...]] = {
    "email": CONTACT_ALIASES["email"] + ("recipient", "destinataire", "to"),
    "phone": CONTACT_ALIASES["phone"],
    "type": (
        "type",
        "event",
        "event_type",
        "event type",
        "evenement",
        "événement",
        "action",
        "activity",
        "metric",
    ),
    "occurred_at": (
        "occurred_at",
        "timestamp",
        "time",
        "date",
        "datetime",
        "event time",
        "event_time",
        "event date",
        "created_at",
        "horodatage",
        "date heure",
    ),
    "channel": ("channel", "canal", "medium", "source channel"),
    "amount": (
        "amount",
        "montant",
        "value",
        "revenue",
        "total",
        "price",
        "prix",
        "order total",
        "chiffre d'affaires",
    ),
    "currency": ("currency", "devise", "monnaie"),
    "campaign": ("campaign", "campagne", "campaign_id", "campaign id", "campaign name"),
    "message_id": ("message_id", "message id", "messageid", "msg_id", "smtp-id", "sg_message_id"),
    "machine_open": (
        "machine_open",
        "machine open",
        "is_machine_open",
        "mpp",
        "apple_mpp",
        "bot_open",
    ),
    "user_agent": ("user_agent", "user agent", "useragent", "ua"),
    "url": ("url", "link", "lien"),
    "body": ("body", "text", "reply_text", "reply text", "message_text", "texte", "reponse"),
    # Compared folded: ``Discount Code`` and ``discount-code`` are ``discount_code``.
    "discount_code": ("discount_code", "code", "coupon", "coupon_code", "promo_code", "code promo"),
}


@dataclass(frozen=True)
class ColumnMap:
    """Which position of a row holds which field, and which columns are kept as free
    attributes (contacts) because no field claims them."""

    fields: dict[str, int]
    extras: dict[str, int]
    header: tuple[str, ...]

    def has(self, field: str) -> bool:
        return field in self.fields

    def cells(self, values: Sequence[Any]) -> dict[str, Any]:
        """The row's value of each mapped field, leaving out blank cells: an empty or
        all-space cell says nothing, so it never erases or fails anything."""
        found = {}
        for field, position in self.fields.items():
            value = values[position]
            if value is not None and (not isinstance(value, str) or value.strip()):
                found[field] = value
        return found


def map_columns(
    header: Sequence[str],
    aliases: Mapping[str, tuple[str, ...]],
    overrides: Mapping[str, str],
    *,
    source: str,
) -> ColumnMap:
    """Match a header to fields. ``overrides`` maps a source column to a field
    (``--map "Adresse électronique=email"``), or to ``""`` to ignore it; every other
    column is matched by alias. A column no field claims is an extra; a field two
    columns claim takes the first."""
    folded_aliases = {field: {fold(name) for name in names} for field, names in aliases.items()}
    folded_header = [fold(name) for name in header]
    fields: dict[str, int] = {}
    ignored: set[int] = set()
    for source_column, field in overrides.items():
        if field and field not in aliases:
            known = ", ".join(sorted(aliases))
            raise InputFileError(
                f"--map {source_column}={field}: unknown field {field!r} (known: {known})"
            )
        try:
            position = folded_header.index(fold(source_column))
        except ValueError:
            raise InputFileError(
                f"--map {source_column}={field}: {source} has no column {source_column!r} "
                f"(columns found: {', '.join(header)})"
            ) from None
        if field:
            fields[field] = position
        else:
            ignored.add(position)
    claimed = set(fields.values()) | ignored
    for position, name in enumerate(folded_header):
        if position in claimed:
            continue
        for field, names in folded_aliases.items():
            if field not in fields and name in names:
                fields[field] = position
                claimed.add(position)
                break
    extras = {
        header[position].strip(): position
        for position in range(len(header))
        if position not in claimed and header[position].strip()
    }
    return ColumnMap(fields=fields, extras=extras, header=tuple(header))


def require(columns: ColumnMap, groups: Sequence[Sequence[str]], *, source: str) -> None:
    """Fail at once when a required field is missing: each group needs one of its fields
    (a contact needs an email or a phone)."""
    for group in groups:
        if not any(columns.has(field) for field in group):
            wanted = " or ".join(group)
            found = ", ".join(repr(name) for name in columns.header) or "none"
            raise InputFileError(
                f"{source}: no {wanted} column (columns found: {found}); "
                f"rename the column or pass --map COLUMN={group[0]}"
            )
