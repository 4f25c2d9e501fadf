"""Signed links: the open pixel, click tracking, one-click unsubscribe, the preference
centre, surveys and the retention question's "keep me" page, all under the workspace's
``public_url``.

One module builds the tokens (the renderer and the channels) and verifies them (the
tracking server), so the two sides cannot drift apart. A token is

    base64url(compact JSON payload) "." base64url(HMAC-SHA256(key, first part)[:16])

The payload names its purpose (``"p"``), so a token made for one page is refused by
another; a click token carries the exact target URL, so the redirect can only go where the
message itself pointed. The key is derived from the workspace secret (``secret.key``): a
token from another workspace, an edited one or a made-up one fails the signature check.
Unsubscribe tokens never expire: the link in a two-year-old email still works.

    links = Links(secret=workspace.secret, public_url="https://news.example.com")
    url = links.click_url("<m1@example.com>", "https://shop.example.com/sale")
    links.verify_click(url.rsplit("/", 1)[1], now=now).url  # the sale page
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from winback.domain import Channel
from winback.errors import WinbackError

if TYPE_CHECKING:
    from winback.workspace import Workspace

# 128 bits of HMAC-SHA256: far beyond forging, and short enough for links in an SMS.
_SIGNATURE_BYTES = 16
_KEY_LABEL = b"winback signed links v1"


class BadToken(WinbackError):
    """A link token that is malformed, tampered with, forged, signed by another
    workspace, meant for another page, or expired. The web app answers 400."""

    exit_code = 6


class Purpose(StrEnum):
    """What a token opens; the value is also the first segment of the link's path."""

    OPEN = "o"
    CLICK = "c"
    UNSUBSCRIBE = "u"
    PREFERENCES = "p"
    SURVEY = "s"
    STAY = "k"


@dataclass(frozen=True)
class OpenToken:
    message_id: str


@dataclass(frozen=True)
class ClickToken:
    message_id: str
    url: str


@dataclass(frozen=True)
class UnsubscribeToken:
    contact_id: int
    channel: Channel


@dataclass(frozen=True)
class PreferencesToken:
    contact_id: int


@dataclass(frozen=True)
class SurveyToken:
    contact_id: int
    survey: str
    message_id: str | None


@dataclass(frozen=True)
class StayToken:
    contact_id: int


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# Absolute http(s) links in a text body; trailing punctuation belongs to the sentence.
_TEXT_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}»"
_ANCHOR_TAG = re.compile(r"<a\b[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"""(\bhref\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)

_MALFORMED_PAYLOAD = "malformed link token payload"
# One encoder for every token: json.dumps with options builds a new one per call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Links:
    """Builds and verifies the signed links of one workspace."""

    secret: bytes
    public_url: str

    @property
    def base(self) -> str:
        return self.public_url.rstrip("/")

    @classmethod
    def of(cls, workspace: Workspace) -> Links:
        """The links of a workspace: its secret and its ``public_url``."""
        return cls(secret=workspace.secret, public_url=workspace.config.workspace.public_url)

    @cached_property
    def _key(self) -> bytes:
        # A key of its own for links, so a signature can never double as an address hash.
        return hmac.new(self.secret, _KEY_LABEL, hashlib.sha256).digest()

    def _signature(self, body: str) -> str:
        # hmac.new, not the one-shot hmac.digest: that one lets go of the GIL on every
        # call and waits for it back behind the sending thread.
        digest = hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest()
        return _b64encode(digest[:_SIGNATURE_BYTES])

    # -- tokens -----------------------------------------------------------------------

    def sign(
        self, purpose: Purpose, data: dict[str, Any], *, expires_at: datetime | None = None
    ) -> str:
        """A token for ``purpose`` carrying ``data`` (short keys, JSON values). The same
        input gives the same token, so a link can be rebuilt instead of stored."""
        payload: dict[str, Any] = {"p": purpose.value, **data}
        if expires_at is not None:
            payload["e"] = int(expires_at.timestamp())
        body = _b64encode(_COMPACT_JSON.encode(payload).encode("utf-8"))
        return f"{body}.{self._signature(body)}"

    def verify(self, token: str, purpose: Purpose, *, now: datetime) -> dict[str, Any]:
        """The data of a token made by :meth:`sign` for ``purpose``; raises
        :class:`BadToken` for any token this workspace did not sign for that purpose,
        or whose expiry is past at ``now``."""
        body, dot, signature = token.partition(".")
        # Both halves are base64url text: anything else (a non-ASCII character from a
        # mangled link) is refused here, before it reaches the encoders of the check.
        if not (dot and body and signature and body.isascii() and signature.isascii()):
            raise BadToken("malformed link token: the link is incomplete or was cut")
        # Comparing the encoded text (not decoded bytes) rejects every altered character.
        if not hmac.compare_digest(self._signature(body), signature):
            raise BadToken(
                "link token signature does not match: it was altered, made up, or comes "
                "from another workspace"
            )
        try:
            payload = json.loads(_b64decode(body).decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise BadToken(_MALFORMED_PAYLOAD) from None
        if not isinstance(payload, dict) or "p" not in payload:
            raise BadToken(_MALFORMED_PAYLOAD)
        if payload["p"] != purpose.value:
            raise BadToken(
                f"this token was made for another kind of link ({payload['p']!r}), "
                f"not for the {purpose.name.lower()} link"
            )
        expires = payload.get("e")
        if expires is not None and now.timestamp() >= expires:
            when = datetime.fromtimestamp(expires, UTC).isoformat()
            raise BadToken(f"this link expired on {when}")
        return payload

    def _link(
        self, purpose: Purpose, data: dict[str, Any], *, expires_at: datetime | None = None
    ) -> str:
        """The address of the page of ``purpose``, with a token signed for it."""
        return self._address(purpose, self.sign(purpose, data, expires_at=expires_at))

    def _address(self, purpose: Purpose, token: str) -> str:
        return f"{self.base}/{purpose.value}/{token}"

    # -- builders ---------------------------------------------------------------------

    def open_url(self, message_id: str) -> str:
        """The open pixel's address for one message."""
        return self._link(Purpose.OPEN, {"m": message_id})

    def click_url(self, message_id: str, target: str) -> str:
        """A tracked link that redirects to ``target``, and only there."""
        if not _is_web_link(target):
            raise ValueError(f"only http(s) links are tracked, not {target!r}")
        return self._link(Purpose.CLICK, {"m": message_id, "u": target})

    def unsubscribe_token(self, contact_id: int, channel: Channel) -> str:
        """An unsubscribe token for one contact and channel; it never expires."""
        return self.sign(Purpose.UNSUBSCRIBE, {"c": contact_id, "ch": channel.value})

    def unsubscribe_url(self, contact_id: int, channel: Channel) -> str:
        """The one-click unsubscribe link (List-Unsubscribe and the footer)."""
        return self._address(Purpose.UNSUBSCRIBE, self.unsubscribe_token(contact_id, channel))

    def preferences_url(self, contact_id: int, *, expires_at: datetime | None = None) -> str:
        return self._link(Purpose.PREFERENCES, {"c": contact_id}, expires_at=expires_at)

    def survey_url(
        self,
        contact_id: int,
        survey: str,
        *,
        message_id: str | None = None,
        expires_at: datetime | None = None,
    ) -> str:
        data: dict[str, Any] = {"c": contact_id, "s": survey}
        if message_id is not None:
            data["m"] = message_id
        return self._link(Purpose.SURVEY, data, expires_at=expires_at)

    def stay_url(self, contact_id: int) -> str:
        """The page where a person asked before the retention purge says "keep me"."""
        return self._link(Purpose.STAY, {"c": contact_id})

    # -- verifiers --------------------------------------------------------------------

    def verify_open(self, token: str, *, now: datetime) -> OpenToken:
        payload = self.verify(token, Purpose.OPEN, now=now)
        return OpenToken(message_id=_text(payload, "m"))

    def verify_click(self, token: str, *, now: datetime) -> ClickToken:
        """The message and target of a click link. Only :meth:`click_url` signs click
        tokens and it takes http(s) links only; the target is checked again here, so no
        signed value can ever send a reader to ``javascript:`` or ``//``."""
        payload = self.verify(token, Purpose.CLICK, now=now)
        url = _text(payload, "u")
        if not _is_web_link(url):
            raise BadToken(f"a click link leads to http(s) addresses only, not {url[:40]!r}")
        return ClickToken(message_id=_text(payload, "m"), url=url)

    def verify_unsubscribe(self, token: str, *, now: datetime) -> UnsubscribeToken:
        payload = self.verify(token, Purpose.UNSUBSCRIBE, now=now)
        try:
            channel = Channel(_text(payload, "ch"))
        except ValueError:
            raise BadToken(_MALFORMED_PAYLOAD) from None
        return UnsubscribeToken(contact_id=_number(payload, "c"), channel=channel)

    def verify_preferences(self, token: str, *, now: datetime) -> PreferencesToken:
        payload = self.verify(token, Purpose.PREFERENCES, now=now)
        return PreferencesToken(contact_id=_number(payload, "c"))

    def verify_survey(self, token: str, *, now: datetime) -> SurveyToken:
        payload = self.verify(token, Purpose.SURVEY, now=now)
        message_id = payload.get("m")
        return SurveyToken(
            contact_id=_number(payload, "c"),
            survey=_text(payload, "s"),
            message_id=message_id if isinstance(message_id, str) else None,
        )

    def verify_stay(self, token: str, *, now: datetime) -> StayToken:
        payload = self.verify(token, Purpose.STAY, now=now)
        return StayToken(contact_id=_number(payload, "c"))

    # -- rewriting bodies -------------------------------------------------------------

    def _tracked(self, url: str, message_id: str, utm: Mapping[str, str] | None) -> str:
        """The click link for ``url`` (with the ``utm`` parameters it does not have yet),
        or ``url`` itself when it is not to be tracked: mailto:, tel:, sms:, anchors and
        relative links, and the workspace's own pages (unsubscribe, preferences, survey,
        stay), which carry their own tokens."""
        if not _is_web_link(url):
            return url
        if url == self.base or url.startswith(self.base + "/"):
            return url
        return self.click_url(message_id, with_utm(url, utm) if utm else url)

    def track_html(
        self,
        body: str,
        message_id: str,
        *,
        pixel: bool = True,
        utm: Mapping[str, str] | None = None,
    ) -> str:
        """Rewrite the ``href`` of every ``<a>`` into a click link (its target given the
        ``utm`` parameters) and, with ``pixel``, add the open pixel before ``</body>`` (or
        at the end)."""

        def rewrite_href(match: re.Match[str]) -> str:
            raw = next(group for group in match.groups()[1:] if group is not None)
            url = html.unescape(raw).strip()
            tracked = self._tracked(url, message_id, utm)
            if tracked == url:
                return match.group(0)
            return f'{match.group(1)}"{html.escape(tracked, quote=True)}"'

        def rewrite_tag(match: re.Match[str]) -> str:
            return _HREF.sub(rewrite_href, match.group(0), count=1)

        tracked = _ANCHOR_TAG.sub(rewrite_tag, body)
        if not pixel:
            return tracked
        image = (
            f'<img src="{html.escape(self.open_url(message_id), quote=True)}" width="1" '
            'height="1" alt="" style="display:block;border:0;width:1px;height:1px">'
        )
        ends = list(_BODY_END.finditer(tracked))
        if not ends:
            return tracked + image
        at = ends[-1].start()
        return tracked[:at] + image + tracked[at:]

    def track_text(
        self, body: str, message_id: str, *, utm: Mapping[str, str] | None = None
    ) -> str:
        """Rewrite every absolute http(s) link of a text body (email text part or SMS)
        into a click link; punctuation that ends the sentence stays outside the link."""

        def rewrite(match: re.Match[str]) -> str:
            url = match.group(0)
            stripped = url.rstrip(_TRAILING)
            return self._tracked(stripped, message_id, utm) + url[len(stripped) :]

        return _TEXT_URL.sub(rewrite, body)


def with_utm(url: str, utm: Mapping[str, str]) -> str:
    """``url`` with the UTM parameters of ``utm`` that its query does not set already (the
    marketer's own ``utm_campaign`` on a link wins), so analytics tools credit the visit.

    >>> with_utm("https://shop.example.com/sale?utm_campaign=spring#top",
    ...          {"utm_source": "winback", "utm_campaign": "winback"})
    'https://shop.example.com/sale?utm_campaign=spring&utm_source=winback#top'
    """
    parts = urlsplit(url)
    present = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    added = [(name, value) for name, value in utm.items() if value and name not in present]
    if not added:
        return url
    query = "&".join(filter(None, [parts.query, urlencode(added)]))
    return urlunsplit(parts._replace(query=query))


def _is_web_link(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def _text(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str):
        raise BadToken(_MALFORMED_PAYLOAD)
    return value


def _number(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadToken(_MALFORMED_PAYLOAD)
    return value
