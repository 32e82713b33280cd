"""Each table's row count, read from the dump stream as the archive process archives it.

Why the stream: it is exactly what was dumped, in the dump's own snapshot (pg_dump's
repeatable-read transaction, mysqldump's ``--single-transaction``), so the counts are
those of the archive a drill restores, whatever was written to the server meanwhile; and
counting costs no query and no second connection. A separate ``count(*)`` would read
another moment of the database, and sharing pg_dump's snapshot would take a connection
of the service's own for the whole dump.

- PostgreSQL (``pg_dump --format=plain``): each table's data is, after its ``TABLE DATA``
  comment, a ``COPY ... FROM stdin;`` line, one line per row (COPY's text format escapes
  newlines inside values as ``\\n``), and the line ``\\.``. Inside a block, rows are
  counted with ``bytes.count`` over whole chunks: no Python step per row. A COPY line
  that does not follow such a comment (text in a function's body) is not counted.
- MySQL (``mysqldump``): each table's data follows its ``-- Dumping data for table`` line
  as ``INSERT INTO `t` VALUES (...),(...);`` statements (MariaDB's tool puts each tuple
  on a line of its own). Rows are the statements' tuples, counted by their ends with
  ``bytes.count``; where a separator could sit inside a quoted value, quoted strings and
  identifiers are first removed with one regular expression (C code). Outside quotes
  (numbers, NULL, ``0x`` hex with ``--hex-blob``) those sequences cannot occur.

Follows the archive process's import rule: the standard library only (see ``child``).
"""

from __future__ import annotations

import re

_COPY = b"COPY "
# pg_dump's comment before each table's data ("-- Data for Name: t; Type: TABLE DATA;
# Schema: public; Owner: -"), then "--", an empty line, and the COPY line: a COPY line
# elsewhere (inside a function's body) is not one of the dump's.
_DATA_FOR_PG = b"-- Data for Name: "
_TABLE_DATA = b"; Type: TABLE DATA; "
#: A COPY line names every column: 1,600 at most, each up to 63 bytes, quoted.
_MAX_HEADER = 1 << 20
_FROM_STDIN = b" FROM stdin;"
_END = b"\\.\n"


def _copy_table(header: bytes) -> str | None:
    """The table a ``COPY`` line names, as pg_dump wrote it (``schema.table``, quoted
    where needed), or None if the line is not a COPY from stdin."""
    if not header.startswith(_COPY) or not header.endswith(_FROM_STDIN):
        return None
    text = header[len(_COPY) : -len(_FROM_STDIN)].decode("utf-8", "replace")
    quoted = False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == " " and not quoted:
            return text[:index]
    return text


class PostgresRowCounter:
    """Counts the rows of every ``COPY`` block of a plain pg_dump stream, chunk by chunk."""

    def __init__(self) -> None:
        self.tables: dict[str, int] = {}
        self._table: str | None = None
        # The start of a line cut by the chunk's end, when it matters: a COPY header
        # outside a block, the first bytes of a possible ``\.`` inside one.
        self._partial = b""
        # In the middle of a line whose bytes are not kept (a row, a statement).
        self._midline = False
        # Just past a table's data comment: its COPY line comes next.
        self._armed = False

    def feed(self, data: bytes | memoryview) -> None:
        buf = self._partial + bytes(data) if self._partial else bytes(data)
        self._partial = b""
        pos, size = 0, len(buf)
        if self._midline:
            newline = buf.find(b"\n")
            if newline < 0:
                return
            if self._table is not None:
                self.tables[self._table] += 1
            pos, self._midline = newline + 1, False
        while pos < size:  # ``pos`` is at a line's start
            pos = self._in_block(buf, pos) if self._table is not None else self._outside(buf, pos)

    def _in_block(self, buf: bytes, pos: int) -> int:
        table = self._table
        assert table is not None
        if buf.startswith(_END, pos):
            self._table = None
            return pos + len(_END)
        end = buf.find(b"\n" + _END, pos)
        if end >= 0:
            self.tables[table] += buf.count(b"\n", pos, end + 1)
            self._table = None
            return end + 1 + len(_END)
        last = buf.rfind(b"\n", pos)
        if last >= 0:
            self.tables[table] += buf.count(b"\n", pos, last + 1)
            pos = last + 1
        self._keep_tail(buf, pos, _END)
        return len(buf)

    def _outside(self, buf: bytes, pos: int) -> int:
        if self._armed:
            return self._after_data_comment(buf, pos)
        start = pos if buf.startswith(_DATA_FOR_PG, pos) else buf.find(b"\n" + _DATA_FOR_PG, pos)
        if start < 0:
            last = buf.rfind(b"\n", pos)
            self._keep_tail(buf, pos if last < 0 else last + 1, _DATA_FOR_PG)
            return len(buf)
        if buf[start] == 10:  # found after a newline: the line starts past it
            start += 1
        newline = buf.find(b"\n", start)
        if newline < 0:
            self._partial = buf[start:]  # a comment line: short
            return len(buf)
        self._armed = _TABLE_DATA in buf[start:newline]
        return newline + 1

    def _after_data_comment(self, buf: bytes, pos: int) -> int:
        """The lines after a ``TABLE DATA`` comment: ``--`` and an empty line, then the
        table's ``COPY`` line."""
        newline = buf.find(b"\n", pos)
        if newline < 0:
            tail = buf[pos:]
            if len(tail) <= _MAX_HEADER:
                self._partial = tail
            else:  # no COPY header is that long
                self._armed, self._midline = False, True
            return len(buf)
        line = buf[pos:newline]
        if line in (b"--", b""):
            return newline + 1
        self._armed = False
        table = _copy_table(line)
        if table is not None:
            self._table = table
            self.tables.setdefault(table, 0)
        return newline + 1

    def _keep_tail(self, buf: bytes, start: int, marker: bytes) -> None:
        """The bytes from ``start`` (a line's start) to the end: kept when they may begin
        ``marker``, else skipped up to the next newline."""
        tail = buf[start:]
        if not tail:
            return
        if marker.startswith(tail[: len(marker)]) or tail.startswith(marker):
            self._partial = tail
        else:
            self._midline = True


_DATA_FOR = b"-- Dumping data for table `"
_TABLE_NAME = re.compile(rb"-- Dumping data for table `((?:[^`]|``)+)`")
_SECTION_END = b"UNLOCK TABLES;"
# Quoted strings and quoted identifiers: removed before counting, so that what is left of
# a statement holds parentheses and commas only between its tuples.
_QUOTED = re.compile(rb"'(?:[^'\\]|\\.)*'|`(?:[^`]|``)*`", re.DOTALL)


class MySQLRowCounter:
    """Counts the rows of every table's data section of a mysqldump stream: from its
    ``-- Dumping data for table`` line to its ``UNLOCK TABLES;`` (the service's dumps
    keep ``--add-locks``). A section's rows are its tuples' ends: ``),(`` within MySQL's
    one-line statements, ``),`` and a newline between MariaDB's one-tuple lines, ``);``
    and a newline at each statement's end; a value's newline is always escaped, so whole
    lines are cut points. No Python step per row: a few C-level passes per chunk."""

    def __init__(self) -> None:
        self.tables: dict[str, int] = {}
        self._table: str | None = None
        # The last line, not yet complete: at most one statement (net_buffer_length) or
        # one row long.
        self._partial = b""

    def feed(self, data: bytes | memoryview) -> None:
        buf = self._partial + bytes(data) if self._partial else bytes(data)
        cut = buf.rfind(b"\n") + 1
        self._partial = buf[cut:]
        pos = 0
        while pos < cut:
            if self._table is None:
                pos = self._section_start(buf, pos, cut)
            else:
                pos = self._section(buf, pos, cut)

    def _section_start(self, buf: bytes, pos: int, cut: int) -> int:
        start = pos if buf.startswith(_DATA_FOR, pos) else buf.find(b"\n" + _DATA_FOR, pos, cut)
        if start < 0:
            return cut
        if buf[start] == 10:  # found after a newline: the line starts past it
            start += 1
        end = buf.find(b"\n", start, cut)
        match = _TABLE_NAME.match(buf, start, end)
        if match is not None:
            self._table = match.group(1).replace(b"``", b"`").decode("utf-8", "replace")
            self.tables.setdefault(self._table, 0)
        return end + 1

    def _section(self, buf: bytes, pos: int, cut: int) -> int:
        table = self._table
        assert table is not None
        if buf.startswith(_SECTION_END, pos):
            self._table = None
            return pos + len(_SECTION_END)
        end = buf.find(b"\n" + _SECTION_END, pos, cut)
        stop = cut if end < 0 else end + 1
        text = buf[pos:stop]
        # Each tuple ends with ")," and a newline before the next one (MariaDB), or "),("
        # (MySQL), or with ");" and a newline (the statement's last). A quoted value never
        # holds a raw newline (mysqldump escapes it), so the first and last are counted
        # as they are; "),(" may sit inside a value, so where it appears at all, the
        # quoted parts are removed first.
        line_ends = text.count(b"),\n")
        rows = line_ends + text.count(b");\n")
        # A tuple ending a line means MariaDB's layout, one tuple a line: there "),(" only
        # ever sits inside a value, and the search for it is skipped.
        if not line_ends and b"),(" in text:
            rows += _QUOTED.sub(b"", text).count(b"),(")
        self.tables[table] += rows
        if end < 0:
            return cut
        self._table = None
        return stop + len(_SECTION_END)


RowCounter = PostgresRowCounter | MySQLRowCounter


def row_counter(db_type: str) -> RowCounter | None:
    """The counter for a dump of ``db_type`` (None: that engine's dumps are not counted)."""
    if db_type == "postgresql":
        return PostgresRowCounter()
    if db_type == "mysql":
        return MySQLRowCounter()
    return None
