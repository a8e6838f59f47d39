"""Settings come from one place, fail loudly, and never show secrets."""

from __future__ import annotations

import os
import secrets
import stat

import pytest

from bridge import create_app
from bridge.config import ConfigError, Settings, normalise_database_url
from tests.conftest import TEST_SECRET

GOOD_SECRET = "Jq3vT0xR8mWc1LpZ6yKd9HsB2nGf5AeU4tQo7iVw"  # random-looking, published: tests only


def test_production_refuses_to_start_without_secret(tmp_path):
    """With BRIDGE_ENV=production and no BRIDGE_SECRET_KEY, building settings fails."""
    with pytest.raises(ConfigError, match="BRIDGE_SECRET_KEY is required"):
        Settings.from_environ({"BRIDGE_ENV": "production", "BRIDGE_VAR_DIR": str(tmp_path)})


def test_production_is_the_default_environment(tmp_path):
    """An unset BRIDGE_ENV is treated as production, so a bare deploy cannot run on a dev secret."""
    with pytest.raises(ConfigError):
        Settings.from_environ({"BRIDGE_VAR_DIR": str(tmp_path)})


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("changeme", "placeholder value"),
        ("short-secret", "at least 32 characters"),
        ("secret", "placeholder value"),
        ("a" * 32, "not random"),
        ("changeme" * 4, "contains 'changeme'"),
        ("abcdefghijkl" * 3, "not random"),
        (TEST_SECRET, "contains 'secret'"),
        ("my-example-key-0123456789-abcdefghijklm", "contains 'example'"),
    ],
)
def test_production_refuses_a_placeholder_short_or_patterned_secret(secret, says, tmp_path):
    """Placeholder, short and visibly non-random secrets (one letter repeated, a word repeated,
    the test suite's own published secret) are refused in production, saying why."""
    with pytest.raises(ConfigError, match="BRIDGE_SECRET_KEY") as refused:
        Settings.from_environ({"BRIDGE_ENV": "production", "BRIDGE_SECRET_KEY": secret})
    assert says in str(refused.value)
    assert secret not in str(refused.value) or len(secret) < 10


@pytest.mark.parametrize("make", [lambda: secrets.token_urlsafe(48), lambda: secrets.token_hex(16)])
def test_production_accepts_generated_secrets(make, tmp_path):
    for _ in range(200):
        settings = Settings.from_environ(
            {
                "BRIDGE_ENV": "production",
                "BRIDGE_SECRET_KEY": make(),
                "BRIDGE_VAR_DIR": str(tmp_path),
            }
        )
        assert settings.is_production


def test_create_app_refuses_in_production_without_secret(monkeypatch, tmp_path):
    """The app factory itself stops, not the first request."""
    monkeypatch.setenv("BRIDGE_ENV", "production")
    monkeypatch.delenv("BRIDGE_SECRET_KEY", raising=False)
    monkeypatch.setenv("BRIDGE_VAR_DIR", str(tmp_path))
    with pytest.raises(ConfigError):
        create_app()


def test_development_generates_a_private_secret_once(tmp_path):
    """Outside production a dev secret is generated under var/ with mode 0600 and reused."""
    env = {"BRIDGE_ENV": "development", "BRIDGE_VAR_DIR": str(tmp_path / "var")}
    first = Settings.from_environ(env)
    second = Settings.from_environ(env)
    path = tmp_path / "var" / "dev_secret_key"
    assert first.secret_key == second.secret_key
    assert len(first.secret_key) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_all_problems_are_reported_at_once():
    """Every invalid variable is named in one error."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_environ(
            {
                "BRIDGE_ENV": "staging",
                "ZAPPWAY_READ_TIMEOUT": "500",
                "ZAPPWAY_PROFILE": "v9",
                "BRIDGE_SELF_REGISTRATION": "maybe",
                "BRIDGE_SECRET_KEY": GOOD_SECRET,
            }
        )
    message = str(caught.value)
    for name in (
        "BRIDGE_ENV",
        "ZAPPWAY_READ_TIMEOUT",
        "ZAPPWAY_PROFILE",
        "BRIDGE_SELF_REGISTRATION",
    ):
        assert name in message


def test_read_timeout_stays_below_upstream_edge_limit():
    """The upstream read timeout cannot be configured at or above the ~100 s proxy limit."""
    with pytest.raises(ConfigError, match="ZAPPWAY_READ_TIMEOUT"):
        Settings.from_environ({"ZAPPWAY_READ_TIMEOUT": "100", "BRIDGE_SECRET_KEY": GOOD_SECRET})
    settings = Settings.from_environ({"BRIDGE_SECRET_KEY": GOOD_SECRET})
    assert settings.upstream_read_timeout_s < 100


def test_paas_postgres_url_is_normalised():
    """Heroku-style postgres:// URLs are mapped to the psycopg 3 dialect."""
    assert normalise_database_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalise_database_url("sqlite:///var/x.db") == "sqlite:///var/x.db"


def test_repr_hides_secrets():
    """Secrets never appear in repr(), so a logged Settings object leaks nothing."""
    settings = Settings.from_environ(
        {"BRIDGE_SECRET_KEY": GOOD_SECRET, "BRIDGE_ADMIN_TOKEN": "admin-" + "y" * 40}
    )
    assert GOOD_SECRET not in repr(settings)
    assert "admin-" not in repr(settings)


def test_plan_limits_are_configurable():
    """Free and Pro limits come from the environment; a number is a custom plan."""
    settings = Settings.from_environ(
        {"BRIDGE_SECRET_KEY": GOOD_SECRET, "BRIDGE_FREE_RPM": "30", "BRIDGE_PRO_RPM": "600"}
    )
    assert settings.limit_for_plan("free") == 30
    assert settings.limit_for_plan("pro") == 600
    assert settings.limit_for_plan("1200") == 1200


def test_every_variable_is_documented_in_readme_and_app_json():
    """Each variable Settings reads has a README row and an app.json entry (one-click deploys)."""
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    read = set(re.findall(r'"((?:BRIDGE|ZAPPWAY)_[A-Z0-9_]+|DATABASE_URL|REDIS_URL)"',
                          (root / "bridge" / "config.py").read_text()))  # fmt: skip
    readme = (root / "README.md").read_text().split("## Configuration")[1]
    app_json = json.loads((root / "app.json").read_text())["env"]
    assert len(read) > 20
    assert sorted(name for name in read if f"`{name}`" not in readme) == []
    assert sorted(name for name in read if name not in app_json) == []


def test_a_rate_wait_not_below_the_action_deadline_is_refused_naming_both(tmp_path):
    """BRIDGE_RATE_WAIT >= BRIDGE_ACTION_DEADLINE stops start-up with both settings named."""
    env = {"BRIDGE_ENV": "development", "BRIDGE_VAR_DIR": str(tmp_path)}
    for wait, deadline in (("20", "10"), ("10", "10")):
        with pytest.raises(ConfigError) as caught:
            Settings.from_environ(
                {**env, "BRIDGE_RATE_WAIT": wait, "BRIDGE_ACTION_DEADLINE": deadline}
            )
        message = str(caught.value)
        assert "BRIDGE_RATE_WAIT" in message
        assert "BRIDGE_ACTION_DEADLINE" in message
    settings = Settings.from_environ(
        {**env, "BRIDGE_RATE_WAIT": "5", "BRIDGE_ACTION_DEADLINE": "10"}
    )
    assert (settings.upstream_rate_wait_s, settings.action_deadline_s) == (5.0, 10.0)
