"""The SQL guard of restores and verifications, fed the way an archive's entry reads."""

from __future__ import annotations

import itertools

import pytest

from backup_api.archiving.archive import ArchiveError
from backup_api.archiving.sqlguard import KEY_REUSED, NO_UNRESTRICT, NOT_PG_DUMP, sql_guard

KEY = b"q7" * 31 + b"Z"
HEAD = b"--\n-- PostgreSQL database dump\n--\n\n\\restrict " + KEY + b"\n"
BODY = b"\nSET client_encoding = 'UTF8';\nCOPY t (a) FROM stdin;\nx\\\\y\n\\.\n\n"
CLOSING = b"\\unrestrict " + KEY + b"\n\n"
DUMP = HEAD + BODY + b"--\n-- PostgreSQL database dump complete\n--\n\n" + CLOSING


def through(
    sql: bytes, splits: list[int], db_type: str = "postgresql", out: bytearray | None = None
) -> bytes:
    """What the guard lets through (into ``out`` too, as it goes) when the SQL arrives cut
    at ``splits``."""
    guard = sql_guard(db_type)
    out = bytearray() if out is None else out
    bounds = [0, *splits, len(sql)]
    for start, end in itertools.pairwise(bounds):
        for piece in guard.feed(sql[start:end]):
            out += piece
    for piece in guard.finish():
        out += piece
    return bytes(out)


def test_a_dump_passes_whole_but_its_closing_line_however_it_is_cut() -> None:
    expected = DUMP[: DUMP.rindex(b"\\unrestrict")]
    for cut in range(len(DUMP) + 1):
        assert through(DUMP, [cut]) == expected, cut
    assert through(DUMP, list(range(1, len(DUMP)))) == expected


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (b"", NOT_PG_DUMP),
        (b"SELECT 1;\n", NOT_PG_DUMP),
        (HEAD.replace(b"PostgreSQL", b"Postgres"), NOT_PG_DUMP),
        (HEAD.replace(b"\\restrict ", b"\\restrict  "), NOT_PG_DUMP),  # no key
        (HEAD[:-1] + b"!\n" + BODY + CLOSING, NOT_PG_DUMP),  # not alphanumeric
        (b"\\! id\n" + DUMP, NOT_PG_DUMP),
        (HEAD + BODY, NO_UNRESTRICT),
        (HEAD + b"\\unrestrict " + KEY + b"\n\\! id\n" + BODY + CLOSING, KEY_REUSED),
        (HEAD + BODY + b"SELECT '" + KEY + b"';\n" + CLOSING, KEY_REUSED),
        (DUMP + b"\\! id\n", KEY_REUSED),
        (DUMP + CLOSING, KEY_REUSED),
        (HEAD + BODY + b"\\unrestrict " + KEY + b" \\! id\n", KEY_REUSED),
    ],
)
def test_what_is_refused_however_it_is_cut(sql: bytes, message: str) -> None:
    for splits in ([], [1], [len(sql) // 2], list(range(1, len(sql), 7))):
        with pytest.raises(ArchiveError) as raised:
            through(sql, splits)
        assert str(raised.value) == message


def test_the_key_is_never_let_through_before_a_refusal() -> None:
    sql = HEAD + BODY * 50 + b"\\unrestrict " + KEY + b"\n\\! id\n" + BODY + CLOSING
    for cut in range(len(HEAD), len(sql), 13):
        out = bytearray()
        with pytest.raises(ArchiveError, match="réapparaît"):
            through(sql, [cut], out=out)
        assert out.count(KEY) <= 1, "only the opening \\restrict line may carry the key"
        assert b"\\unrestrict" not in out


@pytest.mark.parametrize(
    "head",
    [
        b"/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19  Distrib 10.11.19\n",
        b"-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)\n",
        b"-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n",
    ],
)
def test_mysqldump_headers_pass_unchanged(head: bytes) -> None:
    sql = head + b"--\n-- Host: 127.0.0.1\n" + b"INSERT INTO t VALUES (1);\n" * 20
    for cut in (0, 1, 30, len(head), len(sql)):
        assert through(sql, [cut], "mysql") == sql


@pytest.mark.parametrize(
    "sql",
    [
        b"",
        b"system touch /tmp/x\n-- MariaDB dump 10.19\n",
        b"-- MariaDB dumpling\n" + b"SELECT 1;\n" * 20,
        b"\n-- MySQL dump 10.13\n" + b"SELECT 1;\n" * 20,
    ],
)
def test_sql_without_mysqldump_header_is_refused(sql: bytes) -> None:
    with pytest.raises(ArchiveError, match="en-tête de mysqldump"):
        through(sql, [], "mysql")


def test_an_unknown_type_has_no_guard() -> None:
    with pytest.raises(ArchiveError, match="non supporté: oracle"):
        sql_guard("oracle")
