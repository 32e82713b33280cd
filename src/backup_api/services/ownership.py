"""The one ownership rule, for every resource a user owns: a record is its owner's and every
admin's; another user's is 403, a missing one 404.

A route reaches an owned record only through ``load_owned`` (inside a unit of work of
``db.Metadata``), whether a dependency loads it (``deps``) or a service needs it within a
larger unit (starting a backup, listing a database's backups, naming a restore's target).
A new kind of owned record is one more ``Resource`` here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from sqlalchemy import Connection

from backup_api.exceptions import Forbidden, NotFound
from backup_api.principals import Principal
from backup_api.repositories import (
    Record,
    api_tokens,
    backups,
    databases,
    notifications,
    restores,
    storages,
)


class Owned(Protocol):
    @property
    def user_id(self) -> int | None: ...


R = TypeVar("R", bound=Owned)


@dataclass(frozen=True, slots=True)
class Resource(Generic[R]):
    """A kind of owned record: how to read one by id, and what to answer when none has it."""

    get: Callable[[Connection, int], R | None]
    missing: str


def owned(record: R, user: Principal) -> R:
    """``record``, if ``user`` owns it or is an admin; else 403."""
    if not user.is_admin and record.user_id != user.id:
        raise Forbidden()
    return record


def load_owned(connection: Connection, resource: Resource[R], record_id: int, user: Principal) -> R:
    """The record ``record_id`` of ``resource``, if ``user`` may reach it (404, else 403)."""
    record = resource.get(connection, record_id)
    if record is None:
        raise NotFound(resource.missing)
    return owned(record, user)


DATABASE: Resource[Record] = Resource(databases.get, "Base de données introuvable")
#: The database a restore writes into, named in the request's body.
TARGET: Resource[Record] = Resource(databases.get, "Base de données cible introuvable")
BACKUP: Resource[Record] = Resource(backups.get, "Sauvegarde introuvable")
RESTORE: Resource[Record] = Resource(restores.get, "Restauration introuvable")
#: A personal API token (its owner manages it; an admin too, as for every owned record).
API_TOKEN: Resource[Record] = Resource(api_tokens.get, "Token introuvable")
#: An off-site destination (an S3-compatible bucket).
STORAGE: Resource[Record] = Resource(storages.get, "Stockage introuvable")
#: A notification channel (a webhook, an apprise URL).
NOTIFICATION: Resource[Record] = Resource(notifications.get, "Canal de notification introuvable")
