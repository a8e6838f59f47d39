"""Platform apps generated from the registry: `flask --app bridge export zapier|make|n8n|all`.

Each target module turns the neutral description (`bridge.spec.manifest.build_manifest`) into the
files of one platform's app, as a mapping of relative path to text; `write` puts them under
`integrations/<target>/` and `stale` lists the committed files a fresh export would change
(the golden test, fixed by `make integrations`). Nothing here reads a template from disk or
the network: the output depends on the manifest alone, so it is reproducible byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.spec.exports import make, n8n, zapier
from bridge.spec.exports.common import INTEGRATIONS, Files, neutral

RENDERERS: dict[str, Callable[[dict[str, Any]], Files]] = {
    "zapier": zapier.render,
    "make": make.render,
    "n8n": n8n.render,
}


def render(target: str, manifest: dict[str, Any] | None = None) -> Files:
    """Return one target's files (relative path -> text) for `manifest` (the registry's)."""
    return RENDERERS[target](manifest if manifest is not None else neutral())


def write(target: str, root: Path = INTEGRATIONS) -> list[Path]:
    """Write one target's files under `root/<target>/`; files it no longer makes are removed."""
    base = root / target
    files = render(target)
    for old in _generated(base):
        if old.relative_to(base).as_posix() not in files:
            old.unlink()
    written = []
    for relative, text in files.items():
        path = base / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(target: str, root: Path = INTEGRATIONS) -> list[str]:
    """Relative paths under `root/<target>/` that differ from a fresh export (or are extra)."""
    base = root / target
    files = render(target)
    differing = [
        relative
        for relative, text in files.items()
        if not (base / relative).exists() or (base / relative).read_text(encoding="utf-8") != text
    ]
    extra = [
        old.relative_to(base).as_posix()
        for old in _generated(base)
        if old.relative_to(base).as_posix() not in files
    ]
    return sorted(differing + extra)


def _generated(base: Path) -> list[Path]:
    """Files under `base` that an export owns: all but installed and npm-managed ones."""
    if not base.exists():
        return []
    kept = {"package-lock.json", ".zapierapprc", ".env"}  # npm's and the user's own
    return [
        path
        for path in base.rglob("*")
        if path.is_file()
        and "node_modules" not in path.relative_to(base).parts
        and path.name not in kept
    ]
