"""A small IML renderer: turns a Make app's communication files into HTTP requests, as Make does.

It covers the IML the generated app uses: `{{ }}` expressions with paths (`parameters.x`,
`body.error.message`, `item.id`), string and number literals, `==`, `+`, and the functions
`ifempty`, `if`, `length` and `formatDate` (the moment-style tokens the app uses). A string that
is exactly one `{{expr}}` keeps the value's type, as in Make; mixed text is joined as text.
Undefined values drop out of `qs` and `body`. The request merges `base.iml.json` (base URL,
headers, error types) with the component's own directives, and follows `pagination` while its
condition holds, with `pagination.page` counting from 1.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

UNDEFINED: Any = None
TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|'((?:[^'\\]|\\.)*)'|([A-Za-z_][\w.]*)|(==|!=|\+|[(),]))")
EXPR = re.compile(r"\{\{(.*?)\}\}")


class MakeError(Exception):
    """A request Make would report as a failed module, with the type the app assigns."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.status = status
        self.kind = kind
        self.message = message


def _lookup(path: str, context: dict[str, Any]) -> Any:
    value: Any = context
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return UNDEFINED
    return value


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _format_date(value: Any, pattern: str) -> str:
    text = str(value)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    out = re.sub(r"\[([^\]]*)\]", lambda m: "\0" + m.group(1) + "\0", pattern)
    out = out.replace("SSS", f"{moment.microsecond // 1000:03d}")
    for token, fmt in (("YYYY", "%Y"), ("MM", "%m"), ("DD", "%d"), ("HH", "%H"), ("mm", "%M"),
                       ("ss", "%S")):  # fmt: skip
        out = out.replace(token, moment.strftime(fmt))
    return out.replace("\0", "")


FUNCTIONS = {
    "ifempty": lambda a, b: b if _empty(a) else a,
    "if": lambda c, a, b=UNDEFINED: a if not _empty(c) and c is not False else b,
    "length": lambda a: len(a) if a is not None else 0,
    "formatDate": _format_date,
}


class _Parser:
    def __init__(self, text: str, context: dict[str, Any]) -> None:
        self.tokens = [m.groups() for m in TOKEN.finditer(text) if any(m.groups())]
        consumed = "".join(m.group(0) for m in TOKEN.finditer(text)).replace(" ", "")
        if consumed != text.replace(" ", ""):
            raise ValueError(f"IML this renderer does not know: {text!r}")
        self.context = context
        self.at = 0

    def parse(self) -> Any:
        value = self.comparison()
        if self.at != len(self.tokens):
            raise ValueError(f"trailing tokens in IML: {self.tokens[self.at :]}")
        return value

    def peek(self) -> str | None:
        return self.tokens[self.at][3] if self.at < len(self.tokens) else None

    def comparison(self) -> Any:
        left = self.sum()
        while self.peek() in ("==", "!="):
            op = self.tokens[self.at][3]
            self.at += 1
            right = self.sum()
            left = (left == right) if op == "==" else (left != right)
        return left

    def sum(self) -> Any:
        left = self.atom()
        while self.peek() == "+":
            self.at += 1
            right = self.atom()
            both_numbers = isinstance(left, int | float) and isinstance(right, int | float)
            left = left + right if both_numbers else f"{_text(left)}{_text(right)}"
        return left

    def atom(self) -> Any:
        number, string, name, op = self.tokens[self.at]
        self.at += 1
        if number is not None:
            return float(number) if "." in number else int(number)
        if string is not None:
            return string.replace("\\'", "'")
        if op == "(":
            value = self.comparison()
            self.expect(")")
            return value
        if name in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[name]
        if self.peek() == "(":
            self.at += 1
            args = []
            while self.peek() != ")":
                args.append(self.comparison())
                if self.peek() == ",":
                    self.at += 1
            self.expect(")")
            return FUNCTIONS[name](*args)
        return _lookup(name, self.context)

    def expect(self, op: str) -> None:
        assert self.peek() == op, f"expected {op}"
        self.at += 1


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def evaluate(expression: str, context: dict[str, Any]) -> Any:
    return _Parser(expression.strip(), context).parse()


def render(template: Any, context: dict[str, Any]) -> Any:
    """Render an IML value: dicts and lists recursively, strings by their expressions."""
    if isinstance(template, dict):
        rendered = {k: render(v, context) for k, v in template.items()}
        return {k: v for k, v in rendered.items() if v is not UNDEFINED}
    if isinstance(template, list):
        return [render(v, context) for v in template]
    if not isinstance(template, str) or "{{" not in template:
        return template
    whole = EXPR.fullmatch(template)
    if whole:
        return evaluate(whole.group(1), context)
    return EXPR.sub(lambda m: _text(evaluate(m.group(1), context)), template)


@dataclass
class MakeApp:
    """A generated Make app read from its folder (makecomapp.json and the IML files)."""

    root: Path
    manifest: dict[str, Any] = field(init=False)
    base: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.manifest = self.load("makecomapp.json")
        self.base = self.load(self.manifest["generalCodeFiles"]["base"])

    def load(self, relative: str) -> Any:
        return json.loads((self.root / relative).read_text())

    def component(self, kind: str, name: str) -> dict[str, Any]:
        component: dict[str, Any] = self.manifest["components"][kind][name]
        return component

    def files(self, kind: str, name: str) -> dict[str, Any]:
        code = self.component(kind, name)["codeFiles"]
        return {key: self.load(path) for key, path in code.items() if path}


@dataclass
class Connection:
    """A Make connection's stored parameters."""

    base_url: str
    token: str

    def context(self) -> dict[str, Any]:
        return {"baseUrl": self.base_url, "token": self.token}


def _error(app: MakeApp, directive: dict[str, Any], status: int, context: dict[str, Any]) -> None:
    errors = {**app.base.get("response", {}).get("error", {}), **directive.get("error", {})}
    chosen = errors.get(str(status), errors)
    message = render(chosen.get("message", ""), context)
    raise MakeError(status, chosen.get("type", "RuntimeError"), str(message))


def call(
    app: MakeApp,
    directive: dict[str, Any],
    context: dict[str, Any],
    *,
    use_base: bool = True,
    max_pages: int = 20,
) -> tuple[list[httpx.Response], list[Any]]:
    """Send what Make would send for one communication directive; return responses and the
    outputs (`response.output`, per item when `iterate` is set), following `pagination`.

    Raises:
        MakeError: an error status, typed by the app's `response.error`.
    """
    responses, outputs = [], []
    for page in range(1, max_pages + 1):
        scope = {**context, "pagination": {"page": page}}
        merged = dict(directive)
        if "pagination" in directive:
            merged["qs"] = {**directive.get("qs", {}), **directive["pagination"].get("qs", {})}
        base = app.base if use_base else {}
        url = render(merged["url"], scope)
        if not url.startswith("http"):
            url = render(base["baseUrl"], scope).rstrip("/") + url
        headers = {
            **render(base.get("headers", {}), scope),
            **render(merged.get("headers", {}), scope),
        }
        qs = render(merged.get("qs", {}), scope)
        request = {"method": render(merged.get("method", "GET"), scope), "url": url,
                   "headers": {k: str(v) for k, v in headers.items()},
                   "params": {k: _text(v) for k, v in qs.items()}}  # fmt: skip
        if "body" in merged:
            request["json"] = render(merged["body"], scope)
        response = httpx.request(**request, timeout=30)
        responses.append(response)
        body = response.json() if response.content else None
        answer_scope = {**scope, "body": body, "statusCode": response.status_code,
                        "headers": dict(response.headers)}  # fmt: skip
        if response.status_code >= 400:
            _error(app, merged.get("response", {}), response.status_code, answer_scope)
        outputs += _outputs(merged.get("response", {}), answer_scope)
        condition = directive.get("pagination", {}).get("condition")
        if condition is None or not render(condition, answer_scope):
            break
    return responses, outputs


def _outputs(response: dict[str, Any], scope: dict[str, Any]) -> list[Any]:
    if "iterate" not in response:  # `data` is what an attach saves for its webhook
        kept = response.get("output", response.get("data"))
        return [render(kept, scope)] if kept is not None else []
    items = render(response["iterate"], scope) or []
    outputs = [
        render(response.get("output", "{{item}}"), {**scope, "item": item}) for item in items
    ]
    limit = response.get("limit")
    return outputs[:limit] if isinstance(limit, int) else outputs


TYPE_CHECKS = {
    "text": str,
    "number": (int, float),
    "uinteger": int,
    "boolean": bool,
    "collection": dict,
    "array": list,
}


def check_interface(
    interface: list[dict[str, Any]], output: dict[str, Any], where: str = ""
) -> None:
    """Every key of `output` is declared in the interface, with a value of the declared type."""
    declared = {item["name"]: item for item in interface}
    for key, value in output.items():
        assert key in declared, f"{where}{key} is not in the module's interface"
        if value is None:
            continue
        spec = declared[key]
        expected = TYPE_CHECKS[spec["type"]]
        assert isinstance(value, expected), f"{where}{key}: {value!r} is not {spec['type']}"
        if spec["type"] == "collection" and "spec" in spec:
            check_interface(spec["spec"], value, f"{where}{key}.")
        if spec["type"] == "array" and isinstance(spec.get("spec"), list):
            for item in value:
                check_interface(spec["spec"], item, f"{where}{key}[].")
