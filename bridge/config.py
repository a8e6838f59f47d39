"""Settings: the one place that reads the environment.

`Settings.from_environ(os.environ)` validates every variable at once and raises a single
`ConfigError` listing all problems, so a misconfigured deploy fails at start-up with one
readable message instead of a 500 on the first request.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENVIRONMENTS = ("development", "test", "production")
PROFILES = ("documented", "legacy")
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_BASE_URL = "https://app.zappway.ai/api/v1"
PLAN_LIMITS = {"free": 60, "pro": 300}
MIN_SECRET_LENGTH = 32
PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "dev", "development", "test"})
# Words of six letters or more: a random 64-character secret spells one of them with odds below
# one in a million, a hand-made one often does.
PLACEHOLDER_WORDS = ("changeme", "change-me", "change_me", "secret", "example", "password",
                     "placeholder")  # fmt: skip
MIN_DISTINCT_CHARACTERS = 8  # 32 random hex digits have 14 on average; fewer than 8: < 1e-6
HOW_TO_GENERATE = "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(48))'`"


class ConfigError(RuntimeError):
    """Raised when the environment cannot produce valid settings; lists every problem."""


@dataclass(frozen=True)
class Settings:
    """Typed, immutable configuration. Secrets are excluded from repr()."""

    env: str = "production"
    secret_key: str = field(default="", repr=False)
    old_secret_keys: tuple[str, ...] = field(default=(), repr=False)
    admin_token: str = field(default="", repr=False)
    metrics_token: str = field(default="", repr=False)
    var_dir: Path = Path("var")
    metrics_dir: Path | None = None  # None: <var_dir>/metrics
    database_url: str = ""
    redis_url: str = ""
    upstream_base_url: str = DEFAULT_BASE_URL
    upstream_profile: str = "documented"
    upstream_connect_timeout_s: float = 5.0
    upstream_read_timeout_s: float = 90.0
    upstream_max_retries: int = 2
    upstream_rate_wait_s: float = 20.0
    plan_limits: Mapping[str, int] = field(default_factory=lambda: dict(PLAN_LIMITS))
    default_plan: str = "free"
    allow_self_registration: bool = True
    max_body_bytes: int = 1_000_000
    body_timeout_s: float = 10.0
    upstream_max_connections: int = 1000
    housekeeping_minutes: int = 5
    worker_threads: int = 16
    worker_gone_after_s: float = 60.0
    worker_stop_timeout_s: float = 25.0
    action_deadline_s: float = 25.0
    callback_retry_delays: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600)
    allow_private_targets: bool = False
    action_threads: int = 1000
    poll_interval_s: float = 15.0
    hook_retry_schedule: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    hook_timeout_s: float = 15.0
    sync_batch_size: int = 50
    sync_batch_bytes: int = 900_000
    sync_stale_after_s: float = 120.0
    inbound_retention_days: float = 7.0
    job_retention_days: float = 7.0
    activity_retention_days: float = 7.0
    activity_flush_s: float = 1.0
    activity_buffer: int = 50_000
    proxy_hops: int = 0
    sync_debounce_s: float = 2.0
    sync_retry_schedule: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800)
    log_level: str = "INFO"
    huey_immediate: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "var_dir", Path(self.var_dir))

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def metrics_path(self) -> Path:
        """Where the processes of one machine share their Prometheus figures (multiprocess)."""
        return self.var_dir / "metrics" if self.metrics_dir is None else Path(self.metrics_dir)

    @property
    def sqlite_queue_path(self) -> Path:
        return self.var_dir / "queue.sqlite3"

    @property
    def ratelimit_sqlite_path(self) -> Path:
        return self.var_dir / "ratelimit.sqlite3"

    def limit_for_plan(self, plan: str) -> int:
        """Return requests/minute for a plan name, or the number itself for a custom plan."""
        if plan in self.plan_limits:
            return self.plan_limits[plan]
        return int(plan)

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        """Return a copy with some fields replaced (tests pass a dict, never patch env)."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
        return replace(self, **overrides)

    @classmethod
    def from_process_env(cls) -> Settings:
        """Build settings from this process's environment (the only read of os.environ)."""
        return cls.from_environ(os.environ)

    @staticmethod
    def metrics_directory(environ: Mapping[str, str] = os.environ) -> Path:
        """Where this machine's processes keep their Prometheus files, read on its own: the
        gunicorn master prepares the directory before any app exists, so a server whose other
        settings are refused still starts and says why (`PROMETHEUS_MULTIPROC_DIR`, else
        `<BRIDGE_VAR_DIR>/metrics`)."""
        reader = _Reader(environ)
        var_dir = Path(reader.text("BRIDGE_VAR_DIR", "var"))
        return Path(reader.text("PROMETHEUS_MULTIPROC_DIR", str(var_dir / "metrics")))

    @classmethod
    def for_tests(cls, overrides: Mapping[str, Any]) -> Settings:
        """Build settings from explicit values only (tests and tools never touch the env)."""
        return cls(env="test").with_overrides(overrides).with_secret_resolved()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from an environment mapping.

        Raises:
            ConfigError: listing every missing or invalid variable.
        """
        reader = _Reader(environ)
        env = reader.choice("BRIDGE_ENV", ENVIRONMENTS, "production")
        var_dir = Path(reader.text("BRIDGE_VAR_DIR", "var"))
        settings = cls(
            env=env,
            secret_key=reader.text("BRIDGE_SECRET_KEY", ""),
            old_secret_keys=reader.csv("BRIDGE_OLD_SECRET_KEYS"),
            admin_token=reader.text("BRIDGE_ADMIN_TOKEN", ""),
            metrics_token=reader.text("BRIDGE_METRICS_TOKEN", ""),
            var_dir=var_dir,
            metrics_dir=cls.metrics_directory(environ),
            database_url=normalise_database_url(
                reader.text("DATABASE_URL", f"sqlite:///{var_dir / 'bridge.sqlite3'}")
            ),
            redis_url=reader.text("REDIS_URL", ""),
            upstream_base_url=reader.text("ZAPPWAY_BASE_URL", DEFAULT_BASE_URL).rstrip("/"),
            upstream_profile=reader.choice("ZAPPWAY_PROFILE", PROFILES, "documented"),
            upstream_connect_timeout_s=reader.number("ZAPPWAY_CONNECT_TIMEOUT", 5.0, 0.1, 30),
            upstream_max_connections=int(reader.number("ZAPPWAY_MAX_CONNECTIONS", 1000, 1, 10000)),
            upstream_read_timeout_s=reader.number("ZAPPWAY_READ_TIMEOUT", 90.0, 1, 99),
            upstream_max_retries=int(reader.number("ZAPPWAY_MAX_RETRIES", 2, 0, 5)),
            upstream_rate_wait_s=reader.number("BRIDGE_RATE_WAIT", 20.0, 0, 60),
            plan_limits={
                "free": int(reader.number("BRIDGE_FREE_RPM", 60, 1, 100_000)),
                "pro": int(reader.number("BRIDGE_PRO_RPM", 300, 1, 100_000)),
            },
            default_plan=reader.text("BRIDGE_DEFAULT_PLAN", "free"),
            allow_self_registration=reader.flag("BRIDGE_SELF_REGISTRATION", True),
            max_body_bytes=int(reader.number("BRIDGE_MAX_BODY_BYTES", 1_000_000, 1024, 50_000_000)),
            body_timeout_s=reader.number("WEB_BODY_TIMEOUT", 10.0, 0.1, 120),
            housekeeping_minutes=int(reader.number("BRIDGE_HOUSEKEEPING_MINUTES", 5, 1, 59)),
            worker_threads=int(reader.number("BRIDGE_WORKER_THREADS", 16, 1, 512)),
            worker_gone_after_s=reader.number("BRIDGE_WORKER_GONE_AFTER", 60.0, 5, 3600),
            worker_stop_timeout_s=reader.number("BRIDGE_WORKER_STOP_TIMEOUT", 25.0, 1, 300),
            action_deadline_s=reader.number("BRIDGE_ACTION_DEADLINE", 25.0, 1, 110),
            allow_private_targets=reader.flag("BRIDGE_ALLOW_PRIVATE_TARGETS", False),
            action_threads=int(reader.number("BRIDGE_ACTION_THREADS", 1000, 4, 10000)),
            poll_interval_s=reader.number("BRIDGE_POLL_INTERVAL", 15.0, 1, 900),
            hook_timeout_s=reader.number("BRIDGE_HOOK_TIMEOUT", 15.0, 1, 30),
            sync_batch_size=int(reader.number("BRIDGE_SYNC_BATCH_SIZE", 50, 1, 500)),
            sync_debounce_s=reader.number("BRIDGE_SYNC_DEBOUNCE", 2.0, 0, 60),
            sync_batch_bytes=int(
                reader.number("BRIDGE_SYNC_BATCH_BYTES", 900_000, 10_000, 50_000_000)
            ),
            sync_stale_after_s=reader.number("BRIDGE_SYNC_STALE_AFTER", 120.0, 1, 3600),
            inbound_retention_days=reader.number("BRIDGE_INBOUND_RETENTION_DAYS", 7.0, 1, 3650),
            job_retention_days=reader.number("BRIDGE_JOB_RETENTION_DAYS", 7.0, 1, 3650),
            activity_retention_days=reader.number("BRIDGE_ACTIVITY_RETENTION_DAYS", 7.0, 1, 365),
            proxy_hops=int(reader.number("BRIDGE_PROXY_HOPS", 0, 0, 5)),
            log_level=reader.choice("BRIDGE_LOG_LEVEL", LOG_LEVELS, "info").upper(),
        )
        reader.errors.extend(combination_problems(settings))
        reader.raise_if_errors()
        return settings.with_secret_resolved()

    def with_secret_resolved(self) -> Settings:
        """Check the secret key; outside production, generate a dev secret under var/ once.

        Raises:
            ConfigError: in production when the secret is missing, short or a placeholder.
        """
        if self.secret_key:
            problem = secret_problem(self.secret_key)
            if problem and self.is_production:
                raise ConfigError(f"BRIDGE_SECRET_KEY {problem}")
            return self
        if self.is_production:
            raise ConfigError(
                f"BRIDGE_SECRET_KEY is required in production ({HOW_TO_GENERATE}), "
                "or set BRIDGE_ENV=development for local use"
            )
        return replace(self, secret_key=load_or_create_dev_secret(self.var_dir))


def combination_problems(settings: Settings) -> list[str]:
    """Say which settings contradict each other (refused at start-up, never corrected silently).

    A call may wait BRIDGE_RATE_WAIT for its key's budget; if that is not shorter than
    BRIDGE_ACTION_DEADLINE, callers reach the deadline while nothing was sent to ZappWay.
    """
    if settings.upstream_rate_wait_s >= settings.action_deadline_s:
        return [
            f"BRIDGE_RATE_WAIT ({settings.upstream_rate_wait_s:g}) must be below "
            f"BRIDGE_ACTION_DEADLINE ({settings.action_deadline_s:g}): lower the first or "
            "raise the second"
        ]
    return []


def secret_problem(secret: str) -> str | None:
    """Say what is wrong with a secret key, or None when it is acceptable.

    Length alone let through `"a" * 32`, `"changeme" * 4` and the test suite's published
    secret. A random value (`secrets.token_urlsafe(48)`, `openssl rand -hex 32`) has many
    distinct characters, repeats no shorter pattern and spells no placeholder word; the chance
    that one is refused is below one in a million.
    """
    lowered = secret.strip().lower()
    if lowered in PLACEHOLDER_SECRETS:
        return "is a placeholder value"
    if len(secret) < MIN_SECRET_LENGTH:
        return f"must be at least {MIN_SECRET_LENGTH} characters"
    word = next((w for w in PLACEHOLDER_WORDS if w in lowered), None)
    if word is not None:
        return f"looks like a placeholder (it contains '{word}'); {HOW_TO_GENERATE}"
    distinct = len(set(secret))
    if distinct < MIN_DISTINCT_CHARACTERS or secret in (secret + secret)[1:-1]:
        return f"is not random (a repeated pattern, {distinct} distinct characters); " + (
            HOW_TO_GENERATE
        )
    return None


def load_or_create_dev_secret(var_dir: Path) -> str:
    """Return the development secret in var/, creating it (mode 0600) on first use."""
    path = var_dir / "dev_secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


def normalise_database_url(url: str) -> str:
    """Map PaaS-style URLs to the SQLAlchemy dialect we ship (psycopg 3)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class _Reader:
    """Collects parse errors instead of stopping at the first one."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.errors: list[str] = []

    def text(self, name: str, default: str) -> str:
        return self.environ.get(name, default).strip() or default

    def csv(self, name: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.environ.get(name, "").split(",") if part.strip())

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.text(name, default).lower()
        if value not in allowed:
            self.errors.append(f"{name} must be one of {', '.join(allowed)}")
            return default
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.errors.append(f"{name} must be a number")
            return default
        if not low <= value <= high:
            self.errors.append(f"{name} must be between {low:g} and {high:g}")
            return default
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.environ.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        self.errors.append(f"{name} must be true or false")
        return default

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ConfigError("invalid configuration: " + "; ".join(self.errors))
