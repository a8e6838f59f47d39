"""Masking credentials in text we did not write: library log lines, and ZappWay's error messages
before the bridge repeats them to a caller, a job record, a source's events or the log.

Code never passes a secret on; this is what stops one that arrives inside someone else's text.
Two nets: credential-shaped strings (`Bearer ...`, `zwb_...`, `whsec_...`, `api_key=...`), and,
where the caller knows which secrets are in play (the ZappWay key a call sent), any word sharing
a run of `RUN` characters with one of them, so a key quoted whole or cut short is masked alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "<SECRET>"
RUN = 8  # characters of a known secret that make a word look like a quote of it
SECRET_PATTERNS = (
    (re.compile(r"(?i)(bearer\s+)[^\s'\"]+"), r"\1" + MASK),
    (re.compile(r"zwb_[A-Za-z0-9_-]+"), "zwb_" + MASK),
    (re.compile(r"whsec_[A-Za-z0-9+/=]+"), "whsec_" + MASK),
    (re.compile(r"(?i)(api[_-]?key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), r"\1" + MASK),
)
WORD = re.compile(r"[^\s'\"`,;:()<>\[\]{}]+")


def redact(text: str, known: Iterable[str] = ()) -> str:
    """`text` with credential-shaped strings and quotes of the `known` secrets masked."""
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    runs = {run for secret in known if secret for run in _runs(secret)}
    if not runs:
        return text
    return WORD.sub(lambda word: MASK if _quotes(word.group(0), runs) else word.group(0), text)


def _runs(secret: str) -> set[str]:
    """Every run of `RUN` characters of the secret (the whole secret when it is shorter)."""
    if len(secret) <= RUN:
        return {secret}
    return {secret[i : i + RUN] for i in range(len(secret) - RUN + 1)}


def _quotes(word: str, runs: set[str]) -> bool:
    if len(word) < min(len(run) for run in runs):
        return False
    return any(run in word for run in runs)
