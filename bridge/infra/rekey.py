"""Re-encrypting every stored secret under the current master key, after BRIDGE_SECRET_KEY
changes (`flask --app bridge connections reencrypt`).

The secrets are ZappWay keys, but also each connection's signing secret, each hook's secret,
each CMS source's secrets and inbound URL token. Once the old master key is dropped from
BRIDGE_OLD_SECRET_KEYS, whatever is still encrypted under it cannot be read: a source's webhooks
and its console page would fail. So the columns are not listed here but found by the schema's
rule (`infra/models.py`): a column named `*_ciphertext` holds a `SecretBox` ciphertext. A secret
column added later is re-encrypted without anyone remembering this module.

A running bridge may rotate a secret while this runs. Each value is replaced only if it is still
the one that was read (compare-and-set), so a newer secret is never overwritten by an older one
re-encrypted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Column, CursorResult, Table, and_, select, update
from sqlalchemy.orm import Session

from bridge.infra.crypto import DecryptionError, SecretBox
from bridge.infra.models import Base

SUFFIX = "_ciphertext"


@dataclass
class Rekeyed:
    """What `reencrypt_all` did: values rewritten per `table.column`, and the rows (by primary
    key) that no configured master key could decrypt, left as they were."""

    rewritten: dict[str, int] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.rewritten.values())


def secret_columns() -> list[tuple[Table, Column[str]]]:
    """Every column that holds a ciphertext, in a fixed order."""
    return [
        (table, column)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if column.name.endswith(SUFFIX)
    ]


def reencrypt_all(session: Session, box: SecretBox) -> Rekeyed:
    """Re-encrypt every stored secret under the box's primary key (the caller commits)."""
    done = Rekeyed()
    for table, column in secret_columns():
        keys = list(table.primary_key.columns)
        name = f"{table.name}.{column.name}"
        done.rewritten[name] = 0
        for *ids, old in session.execute(select(*keys, column).where(column.is_not(None))):
            try:
                new = box.rotate(old)
            except DecryptionError:
                done.unreadable.append(f"{name} {'/'.join(map(str, ids))}")
                continue
            same_row = and_(*(key == value for key, value in zip(keys, ids, strict=True)))
            statement = update(table).where(same_row, column == old).values({column.name: new})
            result = cast(CursorResult[Any], session.execute(statement))
            done.rewritten[name] += result.rowcount
    return done
