"""The provider layer's README documents every provider as the records define it: the header
each one checks and where the secret goes, the default field maps, and the thin providers'
`credentials` (issue 12 items 11 and 12)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.sync.providers.providers import PROVIDERS
from bridge.sync.providers.schemes import TokenScheme
from bridge.sync.providers.setup import SETUPS

README = (Path(__file__).parents[3] / "bridge/sync/providers/README.md").read_text()
THIN = sorted(k for k, p in PROVIDERS.items() if p.mapper.__module__.endswith(".thin"))


def rows(heading: str) -> dict[str, str]:
    """The rows of the first table after `heading`, by their first cell (a `provider` key)."""
    section = README.split(heading, 1)[1]
    table = re.search(r"((?:^\|.*\|\n)+)", section, re.MULTILINE)
    assert table, f"no table after {heading!r}"
    found = {}
    for line in table.group(1).splitlines()[2:]:
        key = re.match(r"\|\s*`([a-z_]+)`", line)
        if key:
            found[key.group(1)] = line
    return found


def test_every_provider_has_a_row_saying_what_is_checked():
    """Each provider record has one row in the verification table."""
    assert sorted(rows("## Providers at a glance")) == sorted(PROVIDERS)


@pytest.mark.parametrize(
    "key", sorted(k for k, p in PROVIDERS.items() if isinstance(p.scheme, TokenScheme))
)
def test_static_token_rows_name_the_header_and_the_secret(key):
    """Strapi and Directus: the row names the header the record reads and its prefix, and
    says the token is the source's secret."""
    scheme = PROVIDERS[key].scheme
    assert isinstance(scheme, TokenScheme)
    row = rows("## Providers at a glance")[key]
    assert f"{scheme.header}: {scheme.prefix}<secret>".lower() in row.lower()
    assert "static token" in row


@pytest.mark.parametrize("key", sorted(k for k, p in PROVIDERS.items() if p.fields is not None))
def test_field_map_rows_match_the_default_field_maps(key):
    """Sanity and Standard Webhooks: every location of the record's default map is in its row."""
    fields = PROVIDERS[key].fields
    assert fields is not None
    row = rows("### Default field maps")[key].replace("\\|", "|")
    for location in (fields.id, fields.title, fields.text, fields.url, fields.updated,
                     fields.event):  # fmt: skip
        assert location is None or f"`{location}`" in row, (key, location)


def test_thin_providers_document_their_credentials():
    """Storyblok, Directus and GitHub each list `token` and `base_url` in the README, and the
    console's setup steps name both keys too."""
    assert THIN == ["directus", "github", "storyblok"]
    assert sorted(rows("### Thin providers")) == THIN
    for key in THIN:
        assert "token" in SETUPS[key].credentials and "base_url" in SETUPS[key].credentials
