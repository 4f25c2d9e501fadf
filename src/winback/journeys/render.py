"""Message templates: Jinja2 in a sandbox, HTML email written in MJML.

A template is a file named ``NAME.LANG.mjml`` (email) or ``NAME.LANG.sms.txt`` (SMS), with
a YAML front matter between ``---`` lines (``subject`` and ``preheader`` for email, both
Jinja). It is looked up in the workspace's ``templates/`` folder first, then in the
starter set shipped with winback.

MJML is compiled once per template, *before* Jinja fills it: compiling costs milliseconds
and a send budget is a fraction of that. So Jinja tags belong inside text, buttons and
attribute values (where MJML copies them through), not around MJML elements. The plain
text part is taken from the same MJML source (texts, buttons as ``label: URL``), so the
two parts never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from mjml import mjml_to_html

from winback.config import WorkspaceSection
from winback.errors import WinbackError

STARTER_DIR = Path(str(files("winback.journeys") / "starter"))
STARTER_TEMPLATES = STARTER_DIR / "templates"
_SUFFIX = {"email": ".mjml", "sms": ".sms.txt"}
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)^---[ \t]*\n", re.DOTALL | re.MULTILINE)


def template_brand(workspace: WorkspaceSection) -> dict[str, str]:
    """What a template sees as ``brand``: the sender's name and colour, the shop's
    address (``workspace.shop_url``, no trailing slash)."""
    return {"name": workspace.brand_name, "color": workspace.brand_color, "url": workspace.shop_url}


#: The contact's fields a template sees as ``contact`` (dispatch and previews alike).
CONTACT_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "country",
    "language",
    "city",
    "gender",
    "birth_year",
    "interests",
    "tags",
    "attributes",
)


class TemplateProblem(WinbackError):
    """A template is missing, does not parse, or uses a variable that does not exist."""

    exit_code = 2


def _none_is_empty(value: Any) -> Any:
    # A contact with no first name must read "Bonjour ," rather than "Bonjour None,".
    return "" if value is None else value


def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        autoescape=autoescape,
        undefined=StrictUndefined,
        finalize=_none_is_empty,
        keep_trailing_newline=False,
    )


_HTML_ENV = _environment(True)
_TEXT_ENV = _environment(False)


@dataclass(frozen=True)
class CompiledTemplate:
    """One template file, ready to render many times."""

    path: Path
    channel: str
    language: str
    subject: Template | None
    preheader: Template | None
    html: Template | None
    text: Template


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    html: str | None
    text: str


class _TextExtractor(HTMLParser):
    """The plain-text part of an MJML email: the words of mj-text blocks and each button as
    ``label: URL``; Jinja expressions pass through untouched."""

    _BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._current: list[str] | None = None
        self._href: str | None = None
        self._links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in ("mj-text", "mj-button"):
            self._current = []
            self._href = attributes.get("href") if tag == "mj-button" else None
        elif self._current is not None and tag in self._BREAKS:
            self._current.append("\n")
        elif self._current is not None and tag == "a":
            self._links.append(attributes.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None and self._links:
            href = self._links.pop()
            if href:
                self._current.append(f" ({href})")
        elif tag in ("mj-text", "mj-button") and self._current is not None:
            words = re.sub(r"[ \t]*\n[ \t]*", "\n", "".join(self._current))
            words = re.sub(r"[ \t]+", " ", words).strip()
            if self._href:
                words = f"{words}: {self._href}"
            if words:
                self.blocks.append(words)
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current.append(data)


def mjml_text(source: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(source)
    extractor.close()
    return "\n\n".join(extractor.blocks) + "\n"


def _split_front_matter(text: str, path: Path) -> tuple[dict[str, Any], str, int]:
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text, 0
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise TemplateProblem(f"{path}: the front matter is not valid YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise TemplateProblem(f"{path}:2: the front matter must be keys such as subject: ...")
    return meta, text[match.end() :], match.group(0).count("\n")


def _jinja(env: ImmutableSandboxedEnvironment, source: str, path: Path, offset: int) -> Template:
    try:
        return env.from_string(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f"{path}:{line + offset}" if line else str(path)
        raise TemplateProblem(f"{where}: {exc}") from None


def _with_preview(source: str) -> str:
    """Put the front matter's preheader in the MJML head, unless the author did."""
    if "<mj-preview" in source:
        return source
    preview = "<mj-preview>{{ preheader }}</mj-preview>"
    if "<mj-head>" in source:
        return source.replace("<mj-head>", "<mj-head>" + preview, 1)
    return re.sub(r"(<mjml[^>]*>)", r"\1<mj-head>" + preview + "</mj-head>", source, count=1)


# A line break and the indentation around it: the MJML compiler indents every element
# on its own line. Where whitespace is not preserved, one space renders the same.
_LINE_BREAK = re.compile(r"[ \t]*\r?\n\s*")
_KEEPS_WHITESPACE = re.compile(r"<pre\b|<textarea\b|white-space\s*:\s*pre", re.IGNORECASE)


def _compact_html(html: str) -> str:
    """The compiled HTML with its line breaks and indentation folded into single spaces,
    unless something in it preserves whitespace: a quarter lighter, and half the lines
    on the wire once quoted-printable (every line costs the relay a round of parsing)."""
    if _KEEPS_WHITESPACE.search(html):
        return html
    return _LINE_BREAK.sub(" ", html).strip()


@lru_cache(maxsize=256)
def _compile(path: Path, channel: str, language: str, _mtime: float) -> CompiledTemplate:
    text = path.read_text(encoding="utf-8")
    meta, body, offset = _split_front_matter(text, path)
    unknown = set(meta) - {"subject", "preheader"}
    if unknown:
        raise TemplateProblem(
            f"{path}: unknown front matter key {sorted(unknown)[0]!r} (use subject, preheader)"
        )
    if channel == "sms":
        return CompiledTemplate(
            path, channel, language, None, None, None, _jinja(_TEXT_ENV, body.strip(), path, offset)
        )
    if not meta.get("subject"):
        raise TemplateProblem(f"{path}: an email template needs `subject:` in its front matter")
    try:
        result = mjml_to_html(_with_preview(body))
    except Exception as exc:  # the compiler raises bare ValueError/KeyError on bad MJML
        raise TemplateProblem(f"{path}: not valid MJML ({exc})") from None
    if result.errors:
        raise TemplateProblem(f"{path}: MJML errors: {'; '.join(result.errors)}")
    return CompiledTemplate(
        path=path,
        channel=channel,
        language=language,
        subject=_jinja(_TEXT_ENV, str(meta["subject"]), path, 1),
        preheader=_jinja(_TEXT_ENV, str(meta.get("preheader") or ""), path, 1),
        html=_jinja(_HTML_ENV, _compact_html(result.html), path, offset),
        text=_jinja(_TEXT_ENV, mjml_text(body), path, offset),
    )


class TemplateSet:
    """The templates a workspace can use: its own ``templates/`` first, then the starter
    set. ``language`` is the fallback for contacts whose language has no version."""

    def __init__(self, user_dir: Path | None, language: str = "en") -> None:
        self.dirs = [d for d in (user_dir, STARTER_TEMPLATES) if d is not None]
        self.language = language

    def _candidates(self, name: str, channel: str) -> Iterator[tuple[Path, str]]:
        suffix = _SUFFIX[channel]
        for folder in self.dirs:
            for path in sorted(folder.glob(f"{name}.*{suffix}")):
                language = path.name[len(name) + 1 : -len(suffix)]
                if language.isalpha():
                    yield path, language

    def find(self, name: str, channel: str, language: str | None) -> tuple[Path, str] | None:
        """The file for a contact's language, else the workspace language, else any."""
        wanted = [(language or "")[:2].lower(), self.language]
        found = list(self._candidates(name, channel))
        for want in wanted:
            for path, lang in found:
                if lang == want:
                    return path, lang
        return found[0] if found else None

    def missing(self, name: str, channel: str) -> str | None:
        """None when the template exists for ``channel``, else what the user should do."""
        if self.find(name, channel, None) is not None:
            return None
        where = " or ".join(str(folder) for folder in self.dirs)
        return (
            f"unknown template {name!r} for {channel}: no {name}.LANG{_SUFFIX[channel]} in "
            f"{where} (the starter set has miss_you, offer, survey, goodbye)"
        )

    def load(self, name: str, channel: str, language: str | None) -> CompiledTemplate:
        found = self.find(name, channel, language)
        if found is None:
            raise TemplateProblem(self.missing(name, channel) or name)
        path, lang = found
        return _compile(path, channel, lang, path.stat().st_mtime)


def render(template: CompiledTemplate, variables: Mapping[str, Any]) -> Rendered:
    """Fill a template. Raises :class:`TemplateProblem` naming the file and its part
    (subject, preheader, body) when a variable is missing, the sandbox refuses an operation, or
    an expression fails on this contact's values (``{{ 2026 - contact.birth_year }}``
    without a birth year)."""
    part = "body"
    try:
        if template.channel == "sms":
            return Rendered(None, None, template.text.render(variables).strip())
        assert template.subject and template.preheader and template.html
        part = "preheader"
        preheader = template.preheader.render(variables)
        context = {**variables, "preheader": preheader}
        part = "subject"
        subject = " ".join(template.subject.render(context).split())
        part = "body"
        html = template.html.render(context)
        return Rendered(subject, html, template.text.render(context))
    except TemplateError as exc:
        raise TemplateProblem(f"{template.path} ({part}): {exc}") from None
    except Exception as exc:  # a template is the user's code: any error in it is theirs
        raise TemplateProblem(f"{template.path} ({part}): {type(exc).__name__}: {exc}") from None


SAMPLE_VARIABLES: dict[str, Any] = {
    "contact": {
        "first_name": "Camille",
        "last_name": "Martin",
        "email": "camille@example.com",
        "phone": "+33612345678",
        "country": "FR",
        "language": "fr",
        "city": "Lyon",
        "gender": None,
        "birth_year": 1990,
        "interests": ["running", "books"],
        "tags": [],
        "attributes": {},
    },
    "offer": {
        "code": "WB-SAMPLE-CODE",
        "percent": 20.0,
        "amount": None,
        "valid_days": 30,
        "expires_on": date(2030, 1, 31),
        "expires": "31/01/2030",
    },
    "links": {
        "unsubscribe": "https://example.com/u/sample",
        "preferences": "https://example.com/p/sample",
        "survey": "https://example.com/s/sample",
    },
    "brand": {"name": "winback", "color": "#2b6cb0", "url": "https://shop.example.com"},
    "journey": "sample",
    "step": "sample",
}


# The address each channel needs: a message never goes out without it.
_ADDRESS = {"email": "email", "sms": "phone"}


def _empty_field(compiled: CompiledTemplate, variables: dict[str, Any]) -> str | None:
    """The first optional contact field whose absence alone breaks ``compiled``, or None
    when no single one does (only their absence together)."""
    contact: dict[str, Any] = variables["contact"]
    for field in contact:
        if field == _ADDRESS[compiled.channel]:
            continue
        try:
            render(compiled, {**variables, "contact": {**contact, field: None}})
        except TemplateProblem:
            return field
    return None


def check_template(templates: TemplateSet, name: str, channel: str, offer: bool) -> str | None:
    """What is wrong with a template for ``channel`` in any of its languages (missing,
    not parseable, an unknown variable), or None when it is fine. Each version renders
    against a sample contact and against a contact with every optional field empty (a
    contact has at least the channel's address), with an offer when the step has one
    and with ``offer`` None otherwise: a template that breaks on a real contact at
    dispatch is refused here, naming the field."""
    problem = templates.missing(name, channel)
    if problem:
        return problem
    variables = SAMPLE_VARIABLES if offer else {**SAMPLE_VARIABLES, "offer": None}
    address = _ADDRESS[channel]
    sparse = {
        **variables,
        "contact": {
            field: (value if field == address else None)
            for field, value in variables["contact"].items()
        },
    }
    for path, language in templates._candidates(name, channel):
        try:
            compiled = _compile(path, channel, language, path.stat().st_mtime)
            render(compiled, variables)
        except TemplateProblem as exc:
            return str(exc)
        try:
            render(compiled, sparse)
        except TemplateProblem as exc:
            field = _empty_field(compiled, variables)
            which = f"contact.{field}" if field else "contact.FIELD"
            return (
                f"{exc}; it fails when {which if field else 'the optional fields'} "
                f"{'is' if field else 'are'} empty, as for some contacts: give it a default "
                f"({{{{ {which} or '...' }}}}) or test it ({{% if {which} %}})"
            )
    return None
