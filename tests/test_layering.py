"""The layering rules in pyproject.toml hold, and they catch an import in the wrong direction.

`make check` runs the same contracts (`lint-imports`); this test proves they are not vacuous:
the same tree with one deliberate wrong-direction import breaks the right contract.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(tree), "PATH": str(LINT.parent)},
    )  # fmt: skip


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the packages and the contracts."""
    for package in ("bridge", "actions", "triggers"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_code_keeps_every_contract(tree):
    """The tree as committed keeps all the layering contracts."""
    result = _lint(tree)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import", "contract"),
    [
        ("bridge/infra/crypto.py", "from bridge.sync import drain", "Infrastructure imports"),
        ("bridge/upstream/zappway.py", "import flask", "The upstream client imports only"),
        ("actions/query_agent.py", "from bridge.infra import storage", "Actions and triggers"),
        ("bridge/hooks/detection.py", "from bridge.sync import marker", "Layers"),
        ("bridge/sync/sources.py", "from bridge.console import activity", "Layers"),
        ("bridge/runs/jobs.py", "from bridge.web import context", "Only views, CLIs, the spec"),
    ],
)
def test_a_wrong_direction_import_breaks_its_contract(tree, module, wrong_import, contract):
    """Adding one import against the layering makes lint-imports fail and name the contract."""
    path = tree / module
    path.write_text(path.read_text() + f"\n{wrong_import}  # noqa\n")
    result = _lint(tree)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout[-2000:]
