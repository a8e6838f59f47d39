"""The committed apps under integrations/ are exactly what the registry exports today."""

from __future__ import annotations

import pytest

from bridge.spec import exports


@pytest.mark.parametrize("target", sorted(exports.RENDERERS))
def test_committed_app_matches_a_fresh_export(target):
    """Every file of integrations/<target>/ equals a fresh export (fix: `make integrations`)."""
    stale = exports.stale(target)
    assert not stale, (
        f"integrations/{target}/ is stale ({', '.join(stale)}): run `make integrations`"
    )


def test_export_command_checks_the_committed_tree(app):
    """`flask --app bridge export all --check` passes on the committed tree."""
    result = app.test_cli_runner().invoke(args=["export", "all", "--check"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
