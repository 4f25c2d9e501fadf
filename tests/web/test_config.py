"""The ``[web]`` section of winback.toml: defaults, and errors that name the key."""

from __future__ import annotations

import tomllib
from datetime import timedelta

import pytest

from winback.config import parse_config, render_config
from winback.errors import ConfigError


def test_the_commented_template_gives_the_defaults() -> None:
    web = parse_config(tomllib.loads(render_config("ecommerce", "shop"))).web
    assert (web.topics, web.pause, web.bot_click_seconds) == ([], timedelta(days=91), 10)
    assert web.mailgun_signing_key is None and web.ses_certificate is None


def test_a_misspelt_or_bad_web_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"winback.toml: web.mailgun_key: unknown key"):
        parse_config({"web": {"mailgun_key": "key-1"}})
    with pytest.raises(ConfigError, match=r"web.max_body_bytes"):
        parse_config({"web": {"max_body_bytes": 0}})
    with pytest.raises(ConfigError, match=r"web.pause"):
        parse_config({"web": {"pause": "three months"}})
