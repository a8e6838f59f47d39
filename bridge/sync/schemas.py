"""What creating an inbound source takes: the request schema the API, the console and the
manifest share, and how its fields become the source's stored options."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from bridge.infra import netguard
from bridge.schemas import ToolInput, zappway_id
from bridge.sync.providers.mappers.thin import NEEDED_CREDENTIALS
from bridge.sync.providers.providers import PROVIDERS
from bridge.sync.source_config import check_secret, resolve


class CreateSourceIn(ToolInput):
    provider = fields.String(
        required=True, validate=validate.OneOf(tuple(PROVIDERS)),
        metadata={"labels": {key: provider.label for key, provider in PROVIDERS.items()}},
    )  # fmt: skip
    datastore_id = zappway_id(required=True)
    secret = fields.String(validate=validate.Length(min=8, max=500))
    mapping = fields.Dict(keys=fields.String(), metadata={
        "description": "Where the payload keeps id, title, text, url, updated time and event "
        "(JMESPath or header:<name>), for the generic, Sanity and Standard Webhooks providers."
    })  # fmt: skip
    config = fields.Dict(keys=fields.String(), metadata={
        "description": "Provider options: the generic provider's header, algorithm, encoding, "
        "prefix, content, timestamp_header, timestamp_unit, window_s and dedupe; token_header "
        "(and token_prefix) for Directus, Strapi and WordPress senders that cannot sign the body."
    })  # fmt: skip
    credentials = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "CMS read credentials for thin payloads: {token, base_url}. Stored "
        "encrypted, never shown again.",
        # what options_are_valid accepts, for /openapi.json
        "properties": {"token": {"type": "string"}, "base_url": {"type": "string"}},
        "additionalProperties": False,
    })  # fmt: skip

    @validates_schema
    def options_are_valid(self, data: dict[str, Any], **_kwargs: Any) -> None:
        provider = PROVIDERS[data["provider"]]
        try:
            resolve(provider, source_options(data))
            if "secret" in data:
                check_secret(provider, data["secret"])
        except ValueError as exc:
            raise ValidationError(str(exc)[:200], getattr(exc, "field", "config")) from exc
        credentials = data.get("credentials") or {}
        unknown = set(credentials) - {"token", "base_url"}
        if unknown:
            raise ValidationError(f"unknown credential {sorted(unknown)[0]!r}", "credentials")
        needed = NEEDED_CREDENTIALS.get(provider.key, ())
        missing = [name for name in needed if name not in credentials]
        if credentials and missing:
            problem = f"{provider.label} fetches content with {' and '.join(needed)}: give both"
            if len(needed) == 1:
                problem = f"{provider.label} fetches content with a {needed[0]}"
            raise ValidationError(problem, f"credentials.{missing[0]}")
        if "base_url" in credentials:
            try:
                netguard.check_url_shape(credentials["base_url"])
            except netguard.UnsafeTarget as exc:
                raise ValidationError(str(exc), "credentials.base_url") from exc


def source_options(data: dict[str, Any]) -> dict[str, Any]:
    """The stored options: `config`, with `mapping` given at the top level folded in."""
    options = dict(data.get("config") or {})
    if "mapping" in data:
        options["mapping"] = data["mapping"]
    return options
