"""``winback doctor``: check a workspace and say what to fix before it sends real mail.

Each check gives one :class:`Finding`: ``ok``, ``warning`` or ``error``, what was found
and, when it is not ok, what to do. The checks run in order and a failed one does not
stop the others, except that nothing can be checked in a workspace whose configuration or
database cannot be opened.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from sqlalchemy import func, select

from winback.clock import from_db
from winback.errors import WinbackError
from winback.workspace import Workspace

Level = Literal["ok", "warning", "error"]

#: How old the last score may be before the doctor says so: stages drift by the day.
SCORE_MAX_AGE = timedelta(days=2)
#: How long the doctor waits for a server (SMTP, the tracking server, DNS).
TIMEOUT = 5.0


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    message: str
    fix: str = ""


def _is_local(host: str | None) -> bool:
    if not host or host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ip_address(host).is_loopback or ip_address(host).is_private
    except ValueError:
        return False


def _sends_real_mail(workspace: Workspace) -> bool:
    """Whether ``winback dispatch`` would hand email to a server beyond this machine."""
    from winback.channels import ENV_SMTP_URL

    if os.environ.get(ENV_SMTP_URL):
        return not _is_local(urlsplit(os.environ[ENV_SMTP_URL]).hostname)
    return not _is_local(workspace.config.email.host)


def check_database(workspace: Workspace) -> Finding:
    from winback.store import check_schema

    where = workspace.engine.url.render_as_string(hide_password=True)
    try:
        check_schema(workspace.engine)
    except WinbackError as exc:
        return Finding("database", "error", f"{where}: {exc}", "run `winback migrate`")
    except Exception as exc:  # any driver error: the server is down, refused, unknown
        return Finding(
            "database",
            "error",
            f"{where} cannot be reached: {type(exc).__name__}: {exc}".splitlines()[0],
            "check WINBACK_DATABASE_URL and that the server is running",
        )
    return Finding("database", "ok", f"{where} reachable, schema up to date")


def check_public_url(workspace: Workspace) -> Finding:
    url = workspace.config.workspace.public_url
    parts = urlsplit(url)
    real = _sends_real_mail(workspace)
    level: Level = "error" if real else "warning"
    fix = (
        "set workspace.public_url in winback.toml to the https address where "
        "`winback serve` is reached from the internet"
    )
    if _is_local(parts.hostname):
        return Finding(
            "public_url",
            level,
            f"{url} is a local address: every link and List-Unsubscribe header of a message "
            "would point at it, out of the recipients' reach",
            fix,
        )
    if parts.scheme != "https":
        return Finding(
            "public_url",
            level,
            f"{url} is not https: mailbox providers expect one-click unsubscribe over https",
            fix,
        )
    return Finding("public_url", "ok", f"{url}")


def check_shop_url(workspace: Workspace) -> Finding:
    url = workspace.config.workspace.shop_url
    host = urlsplit(url).hostname or ""
    if host == "example.com" or host.endswith(".example.com"):
        return Finding(
            "shop_url",
            "error" if _sends_real_mail(workspace) else "warning",
            f"{url} is the example shop: the starter templates' buttons would lead there",
            "set workspace.shop_url in winback.toml to your shop's address",
        )
    return Finding("shop_url", "ok", url)


async def _smtp_probe(workspace: Workspace) -> str:
    import aiosmtplib

    from winback.channels import SmtpSettings

    settings = SmtpSettings.resolve(workspace.config.email, os.environ)
    client = aiosmtplib.SMTP(
        hostname=settings.host,
        port=settings.port,
        use_tls=settings.tls == "tls",
        start_tls=settings.tls == "starttls",
        timeout=TIMEOUT,
    )
    await client.connect()
    try:
        said = "connected"
        if settings.username:
            await client.login(settings.username, settings.password or "")
            said = f"logged in as {settings.username}"
    finally:
        client.close()
    return f"{settings.where}: {said}"


def check_smtp(workspace: Workspace) -> Finding:
    try:
        said = asyncio.run(_smtp_probe(workspace))
    except WinbackError as exc:
        return Finding("smtp", "error", str(exc), "fix [email] in winback.toml")
    except Exception as exc:  # refused, timed out, TLS or authentication failed
        email = workspace.config.email
        return Finding(
            "smtp",
            "error",
            f"SMTP server {email.host}:{email.port}: {type(exc).__name__}: {exc}".splitlines()[0],
            "check [email] host, port, tls, username and password (or WINBACK_SMTP_URL)",
        )
    return Finding("smtp", "ok", said)


def _published_key_bits(domain: str, selector: str) -> int | None:
    """The size of the public key published at ``selector._domainkey.domain``, or None
    when the record cannot be read (no DNS here, or no record)."""
    import base64

    import dns.exception
    import dns.resolver
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        answer = dns.resolver.resolve(f"{selector}._domainkey.{domain}", "TXT", lifetime=TIMEOUT)
    except (dns.exception.DNSException, OSError):
        return None
    for record in answer:
        text = b"".join(record.strings).decode("ascii", "replace")
        tags = dict(part.strip().split("=", 1) for part in text.split(";") if "=" in part)
        if tags.get("p"):
            key = load_der_public_key(base64.b64decode(tags["p"]))
            return key.key_size if isinstance(key, rsa.RSAPublicKey) else None
    return None


def check_dkim(workspace: Workspace) -> Finding:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from winback.channels.email_message import DkimKey

    email = workspace.config.email
    if not (email.dkim_domain and email.dkim_selector and email.dkim_key_file):
        if not _sends_real_mail(workspace):
            return Finding("dkim", "ok", "DKIM signing is off (email goes to a local server)")
        return Finding(
            "dkim",
            "warning",
            "DKIM signing is off",
            "set email.dkim_domain, dkim_selector and dkim_key_file unless your relay signs",
        )
    try:
        key = DkimKey.load(
            email.dkim_domain, email.dkim_selector, workspace.path / email.dkim_key_file
        )
    except WinbackError as exc:
        return Finding("dkim", "error", str(exc))
    private = load_pem_private_key(key.private_key, password=None)
    bits = private.key_size if isinstance(private, rsa.RSAPrivateKey) else 0
    if bits < 1024:
        return Finding("dkim", "error", f"the key is {bits} bits", "use a 2048-bit RSA key")
    published = _published_key_bits(email.dkim_domain, email.dkim_selector)
    record = f"{email.dkim_selector}._domainkey.{email.dkim_domain}"
    if published is None:
        return Finding(
            "dkim",
            "warning",
            f"{bits}-bit key readable; the DNS record {record} could not be read",
            f"publish the public key as a TXT record at {record}",
        )
    if published != bits:
        return Finding(
            "dkim",
            "error",
            f"the key is {bits} bits but {record} publishes a {published}-bit key",
            "publish the public key of dkim_key_file, or point dkim_key_file at its key",
        )
    return Finding("dkim", "ok", f"{bits}-bit key, published at {record}")


def check_templates(workspace: Workspace) -> Finding:
    """Every stored journey's file checked again, its templates included: a template
    edited since `journey add` may no longer render."""
    from winback.journeys.catalog import templates_of
    from winback.journeys.definition import Step, parse_journey
    from winback.journeys.render import check_template
    from winback.store.schema import journeys

    templates = templates_of(workspace)

    def check(step: Step, channel: str) -> str | None:
        return check_template(templates, step.template, channel, step.offer is not None)

    with workspace.engine.connect() as connection:
        stored = connection.execute(select(journeys.c.name, journeys.c.source)).all()
    problems = []
    for name, source in sorted(stored):
        try:
            parse_journey(source, f"journey {name}", check)
        except WinbackError as exc:
            problems.append(str(exc))
    if problems:
        return Finding(
            "templates",
            "error",
            "; ".join(problems),
            "fix the templates or the journey file, then `winback journey add FILE`",
        )
    return Finding("templates", "ok", f"the templates of {len(stored)} journeys render")


def check_tracking(workspace: Workspace) -> Finding:
    import httpx

    url = workspace.config.workspace.public_url.rstrip("/") + "/healthz"
    try:
        response = httpx.get(url, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        return Finding(
            "tracking",
            "warning" if not _sends_real_mail(workspace) else "error",
            f"{url}: {type(exc).__name__}: {exc}".splitlines()[0],
            "start `winback serve` and make public_url reach it",
        )
    if response.status_code != 200 or "winback" not in response.text:
        return Finding(
            "tracking",
            "error",
            f"{url} answered {response.status_code}, not winback",
            "point public_url at `winback serve` (check the reverse proxy)",
        )
    return Finding("tracking", "ok", f"{url} answers")


def _age(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    days = (now - then).days
    return "today" if days < 1 else f"{days} days ago"


def check_activity(workspace: Workspace, now: datetime) -> Iterator[Finding]:
    from winback.store.schema import contact_scores, outbox

    with workspace.engine.connect() as connection:
        scored = connection.execute(select(func.max(contact_scores.c.scored_at))).scalar()
        sent = connection.execute(select(func.max(outbox.c.sent_at))).scalar()
        unknown = connection.execute(
            select(func.count()).select_from(outbox).where(outbox.c.status == "unknown")
        ).scalar_one()
    last_score = from_db(scored) if scored is not None else None
    if last_score is None:
        yield Finding("score", "warning", "the base was never scored", "run `winback score`")
    elif now - last_score > SCORE_MAX_AGE:
        yield Finding(
            "score",
            "warning",
            f"last score {_age(last_score, now)}",
            "run `winback score` every day (cron or a systemd timer)",
        )
    else:
        yield Finding("score", "ok", f"last score {_age(last_score, now)}")
    last_send = from_db(sent) if sent is not None else None
    yield Finding("sending", "ok", f"last message sent {_age(last_send, now)}")
    if unknown:
        yield Finding(
            "outbox",
            "warning",
            f"{unknown} messages in doubt (a crash during their sending)",
            "see `winback outbox --unknown`; they are never resent by themselves",
        )
    else:
        yield Finding("outbox", "ok", "no message in doubt")


def diagnose(path: Path | None, now: datetime) -> list[Finding]:
    """Every check of the workspace at ``path``; see the module's docstring."""
    try:
        workspace = Workspace.open(path, check=False)
    except WinbackError as exc:
        return [Finding("config", "error", str(exc))]
    try:
        findings = [Finding("config", "ok", f"{workspace.path / 'winback.toml'} is valid")]
        findings.append(check_database(workspace))
        if findings[-1].level == "error":
            return findings
        checks: list[Callable[[Workspace], Finding]] = [
            check_public_url,
            check_shop_url,
            check_smtp,
            check_dkim,
            check_templates,
            check_tracking,
        ]
        findings += [check(workspace) for check in checks]
        findings += check_activity(workspace, now)
        return findings
    finally:
        workspace.close()
