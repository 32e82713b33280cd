"""``table_rows``: each table's rows counted in the dump stream by the archive process,
exact whatever the values hold and wherever the stream's chunks are cut (real dumps of
the suite's servers, through the API)."""

from __future__ import annotations

import zipfile
from typing import Any

import pytest
from fastapi import FastAPI

from backup_api.archiving.rowcount import row_counter
from tests.support.apphelpers import Api, unique_name

ENGINES = ["postgresql", "mysql"]

# Values that look like the counters' own markers: row separators, statements, COPY's
# end line, quotes, backslashes, newlines and tabs; an empty table; odd table names.
PG_TRICKY = r"""
CREATE TABLE tricky (id int, body text);
INSERT INTO tricky SELECT g, CASE g % 5
    WHEN 0 THEN E'a),(b),\n(c'
    WHEN 1 THEN E'\\.\nCOPY public.x (a) FROM stdin;\n\\.'
    WHEN 2 THEN E'it''s \\ "quoted"\t\r\n'
    WHEN 3 THEN NULL
    ELSE repeat('x', 3000) END
FROM generate_series(1, 257) AS g;
CREATE TABLE "Odd Name (1)" (v int);
INSERT INTO "Odd Name (1)" VALUES (1), (2), (3);
CREATE TABLE empty (v int);
CREATE SCHEMA other;
CREATE TABLE other.items (v text);
INSERT INTO other.items VALUES ('-- Dumping data for table `fake`');
CREATE FUNCTION other.f() RETURNS text LANGUAGE sql AS $$ SELECT 'x
COPY public.tricky (id) FROM stdin;
1
\.
' $$;
"""
MYSQL_TRICKY = r"""
CREATE TABLE tricky (id INT, body TEXT);
INSERT INTO tricky
WITH RECURSIVE seq AS (SELECT 1 AS g UNION ALL SELECT g + 1 FROM seq WHERE g < 257)
SELECT g, CASE g % 5
    WHEN 0 THEN 'a),(b),\n(c'
    WHEN 1 THEN 'INSERT INTO `x` VALUES (1),(2);\nUNLOCK TABLES;\n'
    WHEN 2 THEN 'it\'s \\ "quoted"\t\r\n`'
    WHEN 3 THEN NULL
    ELSE REPEAT('x', 3000) END
FROM seq;
CREATE TABLE `Odd ``Name`` (1)` (v INT);
INSERT INTO `Odd ``Name`` (1)` VALUES (1), (2), (3);
CREATE TABLE empty (v INT);
CREATE TABLE other_items (v TEXT);
INSERT INTO other_items VALUES ('-- Dumping data for table `fake`');
"""
EXPECTED = {
    "postgresql": {
        "public.tricky": 257,
        'public."Odd Name (1)"': 3,
        "public.empty": 0,
        "other.items": 1,
    },
    "mysql": {"tricky": 257, "Odd `Name` (1)": 3, "empty": 0, "other_items": 1},
}


@pytest.mark.parametrize("engine", ENGINES)
async def test_table_rows_are_exact_whatever_the_values_and_chunks(
    engine: str, request: pytest.FixtureRequest, app: FastAPI, alice: Api
) -> None:
    server = request.getfixturevalue("pg_server" if engine == "postgresql" else "mysql_server")
    name = unique_name("rows")
    server.create_database(name)
    server.execute(PG_TRICKY if engine == "postgresql" else MYSQL_TRICKY, name)
    database = await alice.add_database(server, name)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    assert backup["status"] == "completed", backup["error_msg"]
    assert backup["table_rows"] == EXPECTED[engine]
    listed = (await alice.get("/api/backups")).json()["backups"]
    assert listed[0]["table_rows"] == EXPECTED[engine]

    # The same dump cut anywhere: one byte at a time around the markers, odd sizes.
    with zipfile.ZipFile(backup["filepath"]) as archive:
        sql = archive.read(archive.namelist()[0])
    for size in (1, 2, 3, 7, 64, 1000, 4096, len(sql)):
        counter = row_counter(engine)
        assert counter is not None
        for offset in range(0, len(sql), size):
            counter.feed(memoryview(sql)[offset : offset + size])
        assert counter.tables == EXPECTED[engine], size
    server.drop_database(name)


async def test_counting_can_be_turned_off(pg_server: Any, settings_factory: Any) -> None:
    from tests.support.apphelpers import running_app

    name = unique_name("rows")
    pg_server.create_database(name)
    pg_server.execute("CREATE TABLE t (v int); INSERT INTO t VALUES (1);", name)
    async with running_app(settings_factory(count_table_rows=False)) as (_, client):
        api = await Api(client).signup()
        database = await api.add_database(pg_server, name)
        backup = await api.wait_backup((await api.start_backup(database["id"]))["id"])
        assert backup["status"] == "completed"
        assert backup["table_rows"] is None
    pg_server.drop_database(name)
