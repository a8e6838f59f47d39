"""Package invariants checked statically: no I/O imports, constant-time compares, provider list."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from bridge.sync.providers.providers import PROVIDERS

PACKAGE = Path(__file__).resolve().parents[3] / "bridge" / "sync" / "providers"
FORBIDDEN = {
    "flask",
    "httpx",
    "requests",
    "sqlalchemy",
    "socket",
    "urllib.request",
    "redis",
    "huey",
}
SECRET_WORDS = ("mac", "signature", "token", "digest", "secret", "expected", "offered")


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_package_imports_nothing_that_does_io():
    """The provider layer is pure: no web framework, HTTP client, database or socket imports."""
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN and name not in FORBIDDEN, (path, name)


def test_secrets_and_signatures_are_never_compared_with_equality():
    """Every comparison touching a MAC, token or secret goes through hmac.compare_digest."""
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                continue
            if isinstance(node.left, ast.Call) and ast.unparse(node.left.func) == "len":
                continue  # counting signatures is not comparing them
            names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]
            names += [n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)]
            flagged = [n for n in names if any(word in n.lower() for word in SECRET_WORDS)]
            assert not flagged, (path, ast.unparse(node))


def test_verify_uses_compare_digest():
    """The verifier's matching goes through hmac.compare_digest."""
    assert "hmac.compare_digest" in (PACKAGE / "verify.py").read_text()


def test_provider_list_is_the_documented_one():
    """Exactly the providers of webhooks.md table 4a, plus the generic recipe."""
    assert set(PROVIDERS) == {
        "wordpress", "woocommerce", "contentful", "strapi", "sanity", "ghost", "shopify", "webflow",
        "storyblok", "directus", "payload", "github", "stripe", "standard_webhooks", "generic_hmac",
    }  # fmt: skip


def test_provider_records_are_frozen_data():
    """Provider records are immutable dataclasses keyed by their own key."""
    for key, provider in PROVIDERS.items():
        assert dataclasses.is_dataclass(provider)
        assert provider.key == key
        assert type(provider).__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_storyblok_and_standard_webhooks_share_a_header_but_not_a_scheme():
    """The two `webhook-signature` senders are told apart by the record, not the header."""
    storyblok, standard = PROVIDERS["storyblok"].scheme, PROVIDERS["standard_webhooks"].scheme
    assert storyblok is not None and standard is not None
    assert storyblok.header == standard.header
    assert storyblok != standard
