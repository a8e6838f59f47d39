"""JSON text from callers, checked for what would break the code after it, before that code runs.

Two things parse fine with `json.loads` yet fail later, as a 500:

- Depth. Python's decoder recurses once per nested array or object, so a body of 10,000 `[`
  (10 kB, well under the body limit) ends in a `RecursionError`. `check_depth` counts the
  nesting first, in one pass that skips over strings, and refuses past the limit: `API_DEPTH`
  for the API's bodies (the deepest real one, a document's metadata, is a few levels),
  `INBOUND_DEPTH` for CMS webhooks (whose payloads nest deeper and are not ours to shape).
- Strings that are not Unicode text. The escape `"\\ud800"` decodes to a lone UTF-16
  surrogate, which no UTF-8 encoder accepts (the database driver, the HTTP client, the secret
  box). `first_unencodable` finds the first such string (or key) and its path, so the caller
  is told which field to fix (a 422) instead of a traceback.

`loads` does both around `json.loads`, which is how every JSON body of the API is read. What
a CMS sends or answers (inbound webhooks, fetched content) is parsed with `repair=True`: its
lone surrogates become U+FFFD instead of a refusal, since the user cannot fix them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bridge.infra.errors import ClientError, InvalidInput

API_DEPTH = 64
INBOUND_DEPTH = 512

# A JSON string (escapes included; an unterminated one runs to the end) or one bracket.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)|[\[\]{}]', re.DOTALL)
_QUOTE, _OPENERS = ord('"'), frozenset(b"[{")
# Only a \uD800-\uDFFF escape can produce a surrogate: raw bytes must be valid UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonTooDeep(ClientError):
    """Raised when JSON nests arrays and objects deeper than the limit for that input."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            400, "json_too_deep", f"JSON nested deeper than {limit} levels; flatten the body"
        )


class NotUnicode(InvalidInput):
    """Raised when a JSON string holds a lone UTF-16 surrogate (`\\ud800`): not text at all."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"{path}: not valid Unicode text (a lone surrogate such as \\ud800)", fields=[path]
        )


def check_depth(text: bytes | str, limit: int) -> None:
    """Refuse JSON nested deeper than `limit` (brackets inside strings do not count).

    Raises:
        JsonTooDeep: past the limit (malformed text may be refused so too: it fails anyway).
    """
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if data.count(b"[") + data.count(b"{") <= limit:  # at C speed: too few to nest that deep
        return
    depth = 0
    for match in _TOKENS.finditer(data):
        char = data[match.start()]
        if char == _QUOTE:
            continue
        if char in _OPENERS:
            depth += 1
            if depth > limit:
                raise JsonTooDeep(limit)
        else:
            depth -= 1


def first_unencodable(value: Any) -> str | None:
    """The path (`documents.0.title`) of the first string or key that UTF-8 cannot encode, or
    None. Iterative, so any depth `json.loads` returned is walked without recursion."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not _encodable(item):
                return path or "body"
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                name = _segment(path, key)
                if not _encodable(key):
                    return name
                stack.append((name, child))
        elif isinstance(item, list):
            stack.extend((_segment(path, i), child) for i, child in reversed(list(enumerate(item))))
    return None


def loads(text: bytes | str, *, max_depth: int = API_DEPTH, repair: bool = False) -> Any:
    """Parse JSON text from a caller after checking its depth, then check its strings.

    `repair` replaces lone surrogates with U+FFFD instead of refusing them: for what a CMS
    sends or answers, where one broken character should not keep a document out of ZappWay.

    Raises:
        JsonTooDeep: nested deeper than `max_depth`.
        ValueError: not JSON, or not UTF-8 (UTF-16 and UTF-32 included); the caller says
            which input it was.
        NotUnicode: a string or key holds a lone surrogate (unless `repair`); names its path.
    """
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    check_depth(data, max_depth)
    # UTF-8 only (RFC 8259; a leading BOM tolerated), decoded before parsing: `json.loads` would
    # also take UTF-16 and UTF-32 bytes, in which the surrogate search below finds nothing.
    value = json.loads(data.decode("utf-8-sig"))
    if not _SURROGATE_ESCAPE.search(data):
        return value
    if repair:
        return replace_lone_surrogates(value)
    path = first_unencodable(value)
    if path is not None:
        raise NotUnicode(path)
    return value


def replace_lone_surrogates(value: Any) -> Any:
    """The parsed JSON with each lone surrogate in a string or key replaced by U+FFFD (the
    replacement character, as any UTF-8 decoder does with broken bytes); containers are
    fixed in place, iteratively."""
    if isinstance(value, str):
        return _repaired(value)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in [k for k in item if not _encodable(k)]:
                item[_repaired(key)] = item.pop(key)
            for key, child in item.items():
                if isinstance(child, str):
                    item[key] = _repaired(child)
                elif isinstance(child, dict | list):
                    stack.append(child)
        elif isinstance(item, list):
            for index, child in enumerate(item):
                if isinstance(child, str):
                    item[index] = _repaired(child)
                elif isinstance(child, dict | list):
                    stack.append(child)
    return value


def _repaired(text: str) -> str:
    return text if _encodable(text) else _LONE_SURROGATE.sub("\ufffd", text)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _segment(path: str, key: str | int) -> str:
    """`path.key`, with a key that is not text shown escaped (it goes into an error message)."""
    shown = key if isinstance(key, int) else key.encode("utf-8", "backslashreplace").decode()
    return f"{path}.{shown}" if path else str(shown)
