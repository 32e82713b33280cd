"""What a restore accepts as SQL: a dump as this service's dump tools write it, nothing else.

The restore clients do more than SQL: ``psql`` runs meta-commands (``\\!`` starts a shell on
the service's host, ``\\o`` writes files), and so does the ``mysql`` client (``system``,
``\\!``). An archive replaced along with its checksum must not reach them.

PostgreSQL: ``pg_dump`` (15.14 and later) opens a plain dump with ``\\restrict <key>``, which
makes ``psql`` refuse every meta-command but ``\\unrestrict <key>``, and closes it with
``\\unrestrict <key>``. The key is drawn at random for each dump, so nothing in between
holds it. The guard requires pg_dump's header with its key, refuses the key anywhere but in
the closing line, and keeps that line from ``psql``: whatever the SQL holds, ``psql`` stays
restricted to the end of its input.

MySQL/MariaDB: the SQL must begin with ``mysqldump``'s header; the client itself runs with
``--sandbox``, which refuses its commands that reach files or a shell.

A guard sees the SQL chunk by chunk and says what may go on to the tool so far; a refusal is
an ``ArchiveError`` with a French message, the same for a restore and a verification.
"""

from __future__ import annotations

import re
from typing import Final, Protocol

from backup_api.archiving.archive import ArchiveError

__all__ = [
    "KEY_REUSED",
    "NOT_MYSQLDUMP",
    "NOT_PG_DUMP",
    "NO_UNRESTRICT",
    "SqlGuard",
    "sql_guard",
]

NOT_PG_DUMP: Final = (
    "archive invalide: le SQL ne commence pas par l'en-tête de pg_dump et sa clé \\restrict"
)
KEY_REUSED: Final = "archive invalide: la clé \\restrict de pg_dump réapparaît dans le SQL"
NO_UNRESTRICT: Final = (
    "archive invalide: le SQL ne se termine pas par la ligne \\unrestrict de pg_dump"
)
NOT_MYSQLDUMP: Final = "archive invalide: le SQL ne commence pas par l'en-tête de mysqldump"

Piece = bytes | memoryview


class SqlGuard(Protocol):
    def feed(self, chunk: bytes) -> list[Piece]:
        """The next chunk of SQL in; out, what may reach the tool now (maybe nothing)."""
        ...

    def finish(self) -> list[Piece]:
        """At the end of the SQL: what remains to pass on, or ``ArchiveError``."""
        ...


# pg_dump's first lines, up to its key (src/bin/pg_dump/pg_backup_archiver.c).
_PG_HEAD: Final = b"--\n-- PostgreSQL database dump\n--\n\n\\restrict "
# pg_dump draws 63 characters; --restrict-key accepts any alphanumeric string.
_PG_KEY: Final = re.compile(rb"[A-Za-z0-9]{1,256}")
_PG_CLOSING: Final = b"\n\\unrestrict "

# mysqldump's first line, after the MariaDB line that also puts the client in sandbox mode.
_MYSQL_HEAD: Final = re.compile(
    rb"(?:/\*M!999999\\- enable the sandbox mode \*/ ?\n)?-- (?:MariaDB|MySQL) dump "
)
_MYSQL_HEAD_BYTES: Final = 64


class PgDumpGuard:
    def __init__(self) -> None:
        self._head = bytearray()
        self._key: bytes | None = None
        # The stream's last bytes, held back: the closing line may start there.
        self._pending = b""
        self._closed = False

    def feed(self, chunk: bytes) -> list[Piece]:
        if self._closed:
            # After the closing line: only the blank lines pg_dump writes.
            if chunk.strip():
                raise ArchiveError(KEY_REUSED)
            return []
        if self._key is None:
            return self._feed_head(chunk)
        return self._feed_body(chunk, self._key)

    def finish(self) -> list[Piece]:
        if self._key is None:
            raise ArchiveError(NOT_PG_DUMP)
        if not self._closed:
            raise ArchiveError(NO_UNRESTRICT)
        return []

    def _feed_head(self, chunk: bytes) -> list[Piece]:
        self._head += chunk
        head = bytes(self._head)
        if not head.startswith(_PG_HEAD[: len(head)]):
            raise ArchiveError(NOT_PG_DUMP)
        end = head.find(b"\n", len(_PG_HEAD))
        if end == -1:
            if len(head) > len(_PG_HEAD) + 256:
                raise ArchiveError(NOT_PG_DUMP)
            return []
        key = head[len(_PG_HEAD) : end]
        if not _PG_KEY.fullmatch(key):
            raise ArchiveError(NOT_PG_DUMP)
        self._key = key
        self._head = bytearray()
        return [head[: end + 1], *self._feed_body(head[end + 1 :], key)]

    def _feed_body(self, chunk: bytes, key: bytes) -> list[Piece]:
        pending = self._pending
        # A match starting in the held-back bytes, then one within the chunk.
        found = (pending + chunk[: len(key) - 1]).find(key)
        if found == -1:
            found = chunk.find(key)
            if found != -1:
                found += len(pending)
        if found != -1:
            return self._closing(pending + chunk, found, key)
        keep = len(_PG_CLOSING) + len(key) - 1
        if len(chunk) >= keep:
            self._pending = chunk[len(chunk) - keep :]
            return [piece for piece in (pending, memoryview(chunk)[: len(chunk) - keep]) if piece]
        data = pending + chunk
        self._pending = data[-keep:]
        return [data[:-keep]] if len(data) > keep else []

    def _closing(self, data: bytes, at: int, key: bytes) -> list[Piece]:
        """The key at ``at`` is only allowed as the last line, ``\\unrestrict <key>``,
        which psql then never sees."""
        start = at - len(_PG_CLOSING)
        if start < 0 or data[start:at] != _PG_CLOSING or data[at + len(key) :].strip():
            raise ArchiveError(KEY_REUSED)
        self._closed = True
        self._pending = b""
        return [data[: start + 1]]


class MysqldumpGuard:
    def __init__(self) -> None:
        self._head = bytearray()
        self._checked = False

    def feed(self, chunk: bytes) -> list[Piece]:
        if self._checked:
            return [chunk]
        self._head += chunk
        if len(self._head) < _MYSQL_HEAD_BYTES:
            return []
        return self._release()

    def finish(self) -> list[Piece]:
        return [] if self._checked else self._release()

    def _release(self) -> list[Piece]:
        head = bytes(self._head)
        if not _MYSQL_HEAD.match(head):
            raise ArchiveError(NOT_MYSQLDUMP)
        self._checked = True
        self._head = bytearray()
        return [head]


_GUARDS: Final[dict[str, type[SqlGuard]]] = {
    "postgresql": PgDumpGuard,
    "mysql": MysqldumpGuard,
}


def sql_guard(db_type: str) -> SqlGuard:
    """The guard for the SQL of a ``db_type`` backup."""
    try:
        return _GUARDS[db_type]()
    except KeyError:
        raise ArchiveError(
            f"archive invalide: type de base de données non supporté: {db_type}"
        ) from None
