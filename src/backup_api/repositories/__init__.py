"""The metadata database's statements, one module per resource, as plain functions of a
synchronous ``Connection`` (``db.Metadata`` runs them, one transaction per unit of work).

No other module writes SQL. A repository imports SQLAlchemy and ``backup_api.models`` (for
the tables), nothing else of the package: whether a caller may see a record, and what to
answer, is the services' business. Records are the rows themselves: building an object
per row would cost more than reading it on the routes clients poll. Statements are built
once, with bound parameters, for the same reason.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from sqlalchemy import Row

#: One record as read: its columns by attribute (``record.user_id``) or by name
#: (``record._mapping["user_id"]``).
Record: TypeAlias = Row[*tuple[Any, ...]]
