"""Every setting can be given in the environment, and secrets never show in a repr."""

from __future__ import annotations

import dataclasses

import pytest

from securelogin.config import _FIELDS, ConfigError, Settings


def test_every_setting_is_read_from_its_environment_variable() -> None:
    # A setting missing from the reader is silently stuck at its default (as SMTP and the
    # old secret keys once were): compare the whole dataclass with what the reader knows.
    names = {f.name for f in dataclasses.fields(Settings)}
    environ = {
        f"SECURELOGIN_{name.upper()}": value
        for name, value in {
            "database_url": "sqlite:///x.db",
            "old_secret_keys": "a,b",
            "smtp_url": "smtp://127.0.0.1:2525",
            "mail_dir": "/tmp/mail",
            "mail_from": "desk@example.com",
            "workers": "3",
            "issuer": "Example Brokerage",
        }.items()
    }
    settings = Settings.from_env(environ)

    assert settings.old_secret_keys == "a,b"
    assert settings.smtp_url == "smtp://127.0.0.1:2525"
    assert settings.mail_dir == "/tmp/mail"
    assert settings.mail_from == "desk@example.com"
    assert settings.workers == 3
    assert settings.issuer == "Example Brokerage"
    assert names == set(_FIELDS), "every setting must be readable from SECURELOGIN_*"


def test_secrets_do_not_show_in_the_repr_of_the_settings() -> None:
    settings = Settings.from_env(
        {
            "SECURELOGIN_SECRET_KEY": "k" * 44,
            "SECURELOGIN_SMTP_URL": "smtp://u:pw@h:25",
            "SECURELOGIN_DATABASE_URL": "postgresql+psycopg://app:dbsecret@db/securelogin",
        }
    )
    assert "k" * 44 not in repr(settings)
    assert "pw" not in repr(settings)
    assert "dbsecret" not in repr(settings)  # a database URL may hold its password


def test_a_database_url_of_another_kind_is_refused_by_name_without_echoing_it() -> None:
    for url in ("sqlite:///x.db", "postgresql+psycopg://u@db/app"):
        assert Settings.from_env({"SECURELOGIN_DATABASE_URL": url}).database_url == url
    refused_urls = (
        "postgresql+psycopg2://u:dbsecret@db/app",
        "postgresql://u:dbsecret@db/app",
        "mysql://u:dbsecret@db/app",
        "dbsecret",
    )
    for url in refused_urls:
        with pytest.raises(ConfigError, match="SECURELOGIN_DATABASE_URL is sqlite") as refused:
            Settings.from_env({"SECURELOGIN_DATABASE_URL": url})
        assert "dbsecret" not in str(refused.value)


def test_cookie_secure_is_read_as_1_0_or_auto() -> None:
    for raw, value in (("1", True), ("yes", True), ("0", False), ("auto", None), ("", None)):
        assert Settings.from_env({"SECURELOGIN_COOKIE_SECURE": raw}).cookie_secure is value, raw
    assert Settings().cookie_secure is None  # auto by default
    with pytest.raises(ConfigError, match="SECURELOGIN_COOKIE_SECURE is 1, 0 or auto"):
        Settings.from_env({"SECURELOGIN_COOKIE_SECURE": "sometimes"})
