"""A source's stored options turned into what the inbound layer needs: provider and recipe.

The options are plain JSON (kept with the source, never secret): the generic provider's
signature recipe (`header`, `algorithm`, `encoding`, `prefix`, `content`, `timestamp_header`,
`timestamp_unit`, `window_s`), a field `mapping` for field-mapped senders (generic, Sanity,
Standard Webhooks), `dedupe` locations, and `token_header` / `token_prefix` for senders that
send a static token in a header the user picks (Directus Flows, Strapi, and WordPress sites
whose sender cannot sign the body). Parsing is strict: an unknown option or a bad value raises
`ValueError` naming it, so a typo is refused when the source is created instead of silently
verifying nothing. Each error names the request field it belongs to (`config`, `mapping` or
`secret`), so the API can point at it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, get_args

import jmespath
from jmespath.exceptions import JMESPathError

from bridge.sync.providers import codec
from bridge.sync.providers.generic import FieldMap, GenericConfig, TimeUnit
from bridge.sync.providers.providers import Provider, with_token_header
from bridge.sync.providers.schemes import Algorithm, Encoding, HmacScheme, TokenScheme, Unit

RECIPE_OPTIONS = ("header", "algorithm", "encoding", "prefix", "content", "timestamp_header",
                  "timestamp_unit", "window_s")  # fmt: skip
TOKEN_OPTIONS = ("token_header", "token_prefix")
CHOICES: dict[str, tuple[str, ...]] = {
    "algorithm": get_args(Algorithm),
    "encoding": get_args(Encoding),
    "timestamp_unit": get_args(Unit),
    "updated_unit": get_args(TimeUnit),
}
MAPPING_FIELDS = {f.name: f for f in dataclasses.fields(FieldMap)}
HEADER_OPTIONS = ("header", "timestamp_header", "token_header")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token


class OptionError(ValueError):
    """Raised when an option is unknown or has a bad value; `field` is the request field."""

    def __init__(self, message: str, field: str = "config") -> None:
        super().__init__(message)
        self.field = field


def check_secret(provider: Provider, secret: str) -> None:
    """Refuse a secret that could never verify for this provider.

    Raises:
        OptionError: (field `secret`) Standard Webhooks and Payload keys must be `whsec_`
            followed by base64; anything else would be accepted and then match nothing.
    """
    scheme = provider.scheme
    if isinstance(scheme, HmacScheme) and not codec.derive_key(scheme.key, secret):
        raise OptionError(f"{provider.key} secrets are 'whsec_' followed by base64", "secret")


def resolve(provider: Provider, options: dict[str, Any]) -> tuple[Provider, GenericConfig | None]:
    """Return the provider record to verify with and the source's recipe/mapping, if any.

    Raises:
        ValueError: an option is unknown for this provider or has a bad value (named).
    """
    allowed = _allowed_options(provider)
    unknown = sorted(set(options) - allowed)
    if unknown:
        field = "mapping" if unknown[0] == "mapping" else "config"
        raise OptionError(f"unknown option {unknown[0]!r} for {provider.key}", field)
    for name in HEADER_OPTIONS:
        if name in options and not (
            isinstance(options[name], str) and HEADER_NAME.fullmatch(options[name])
        ):
            raise OptionError(f"option {name!r} must be a header name (letters, digits, '-')")
    if "token_header" in options:
        provider = with_token_header(
            provider, _text(options, "token_header"), _text(options, "token_prefix", "")
        )
    if provider.scheme is None:
        return provider, _generic(options)
    if "mapping" in options or "dedupe" in options:
        return provider, _mapped(provider, options)
    return provider, None


def _allowed_options(provider: Provider) -> set[str]:
    allowed: set[str] = set()
    if provider.scheme is None:
        allowed |= {*RECIPE_OPTIONS, "mapping", "dedupe"}
    elif provider.fields is not None:
        allowed |= {"mapping", "dedupe"}
    if isinstance(provider.scheme, TokenScheme) or provider.token_instead:
        allowed |= set(TOKEN_OPTIONS)
    return allowed


def _generic(options: dict[str, Any]) -> GenericConfig:
    if "header" not in options:
        raise ValueError("generic_hmac needs option 'header' (the signature header)")
    recipe: dict[str, Any] = {}
    for name in RECIPE_OPTIONS:
        if name not in options:
            continue
        value = options[name]
        if name == "window_s":
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ValueError("option 'window_s' must be a positive number of seconds")
        elif not isinstance(value, str) or (name in CHOICES and value not in CHOICES[name]):
            raise ValueError(f"option {name!r} must be {_expected(name)}")
        recipe[name] = value
    return GenericConfig(
        **recipe,
        mapping=_mapping(options.get("mapping", {}), FieldMap()),
        dedupe=_locations(options.get("dedupe", []), "dedupe"),
    )


def _mapped(provider: Provider, options: dict[str, Any]) -> GenericConfig:
    """Field-mapped senders keep their own signature; only the mapping is the source's."""
    assert isinstance(provider.scheme, HmacScheme)  # field-mapped providers sign with HMAC
    assert provider.fields is not None
    return GenericConfig(
        header=provider.scheme.header,
        mapping=_mapping(options.get("mapping", {}), provider.fields),
        dedupe=_locations(options.get("dedupe", []), "dedupe"),
    )


def _mapping(raw: Any, base: FieldMap) -> FieldMap:
    if not isinstance(raw, dict):
        raise OptionError("option 'mapping' must be an object", "mapping")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in MAPPING_FIELDS:
            raise OptionError(f"unknown mapping field {name!r}", "mapping")
        if name == "metadata":
            values[name] = _metadata(value)
        elif name.endswith(("_events", "_ids")):
            values[name] = _locations(value, f"mapping.{name}")
        elif value is not None and not isinstance(value, str):
            raise OptionError(f"mapping field {name!r} must be a string", "mapping")
        elif name in CHOICES:
            if value not in CHOICES[name]:
                raise OptionError(f"mapping field {name!r} must be {_expected(name)}", "mapping")
            values[name] = value
        else:
            values[name] = _checked(value, f"mapping.{name}") if value else value
    if not values.get("id", base.id):
        raise OptionError("mapping field 'id' is required", "mapping")
    return dataclasses.replace(base, **values)


def _metadata(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise OptionError(
            "mapping field 'metadata' must map names to locations (strings)", "mapping"
        )
    return tuple((k, _checked(v, f"mapping.metadata.{k}")) for k, v in value.items())


def _locations(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise OptionError(f"option {name!r} must be a list of strings", _field(name))
    if name == "dedupe":
        return tuple(_checked(item, name) for item in value)
    return tuple(value)


def _checked(location: str, name: str) -> str:
    """A location is `header:<name>` or a JMESPath expression that compiles."""
    if location.startswith("header:"):
        if len(location) == len("header:"):
            raise OptionError(f"{name!r}: header location needs a header name", _field(name))
        return location
    try:
        jmespath.compile(location)
    except JMESPathError as exc:
        raise OptionError(f"{name!r} is not a valid JMESPath expression", _field(name)) from exc
    return location


def _field(name: str) -> str:
    return "mapping" if name.startswith("mapping") else "config"


def _text(options: dict[str, Any], name: str, default: str | None = None) -> str:
    value = options.get(name, default)
    if not isinstance(value, str) or (default is None and not value):
        raise ValueError(f"option {name!r} must be a string")
    return value


def _expected(name: str) -> str:
    return "one of " + ", ".join(CHOICES[name]) if name in CHOICES else "a string"
