"""Registered databases (oldest first in a page)."""

from __future__ import annotations

from backup_api.models import Database
from backup_api.repositories.owned import OwnedTable

_DATABASES = OwnedTable(Database.__table__, newest_first=False)  # type: ignore[attr-defined]

get = _DATABASES.get
page = _DATABASES.page
insert_database = _DATABASES.insert
update_database = _DATABASES.update
#: Its backups stay: their ``database_id`` becomes null through the foreign key.
delete_database = _DATABASES.delete
delete_of_user = _DATABASES.delete_of_user
