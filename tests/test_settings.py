"""The settings table: one resolution order, checked values, and the README lists exactly it."""

from __future__ import annotations

from pathlib import Path

import pytest

from weanalysis import settings
from weanalysis.errors import SettingError, UserError

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_lists_exactly_the_table():
    text = README.read_text(encoding="utf-8")
    begin, end = "<!-- settings:begin -->\n", "<!-- settings:end -->"
    section = text[text.index(begin) + len(begin) : text.index(end)]
    assert section == settings.markdown()


def test_names_and_variables_are_unique_and_every_default_is_valid():
    names = [s.name for s in settings.SETTINGS]
    envs = [s.env for s in settings.SETTINGS]
    assert len(set(names)) == len(names) and len(set(envs)) == len(envs)
    assert all(e.startswith("WEANALYSIS_") for e in envs)
    for s in settings.SETTINGS:
        settings.value(s.name)  # the default parses


def test_option_then_environment_then_default(monkeypatch):
    monkeypatch.delenv("WEANALYSIS_TOKEN_TTL", raising=False)
    assert settings.value("token_ttl") == 7200
    monkeypatch.setenv("WEANALYSIS_TOKEN_TTL", "60")
    assert settings.value("token_ttl") == 60
    assert settings.value("token_ttl", 5) == 5
    monkeypatch.setenv("WEANALYSIS_TRUSTED_PROXIES", "10.0.0.1, ::1")
    assert settings.value("trusted_proxies") == ("10.0.0.1", "::1")
    assert settings.value("trusted_proxies", ("192.0.2.1",)) == ("192.0.2.1",)


@pytest.mark.parametrize(
    ("env", "text"),
    [
        ("WEANALYSIS_TOKEN_TTL", "0"),
        ("WEANALYSIS_PORT", "http"),
        ("WEANALYSIS_HEADER_TIMEOUT", "-1"),
        ("WEANALYSIS_BODY_TIMEOUT", "nan"),
        ("WEANALYSIS_TRUSTED_PROXIES", "proxy.example"),
        ("WEANALYSIS_LOG_LEVEL", "loud"),
    ],
)
def test_a_bad_value_is_a_user_error_naming_its_source(monkeypatch, env, text):
    monkeypatch.setenv(env, text)
    name = next(s.name for s in settings.SETTINGS if s.env == env)
    with pytest.raises(SettingError) as e:
        settings.value(name)
    assert isinstance(e.value, UserError)
    assert env in str(e.value) and repr(text) in str(e.value)


def test_a_bad_ip2region_file_is_a_user_error(monkeypatch, tmp_path):
    from weanalysis.enrich import ipgeo

    bad = tmp_path / "bad.xdb"
    bad.write_bytes(b"not an xdb file" * 100)
    monkeypatch.setenv("WEANALYSIS_IP2REGION_XDB", str(bad))
    monkeypatch.setattr(ipgeo, "_locator", None)
    with pytest.raises(SettingError) as e:
        ipgeo.get_locator()
    assert "WEANALYSIS_IP2REGION_XDB" in str(e.value) and str(bad) in str(e.value)
    monkeypatch.setenv("WEANALYSIS_IP2REGION_XDB", str(tmp_path / "missing.xdb"))
    with pytest.raises(SettingError):
        ipgeo.get_locator()
