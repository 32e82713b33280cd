"""A realistic little schema per engine, and a row snapshot to compare databases with."""

from __future__ import annotations

from typing import Any

PG_SCHEMA = r"""
CREATE TABLE items (
    id serial PRIMARY KEY,
    name text NOT NULL,
    price numeric(10, 2),
    created timestamptz,
    meta jsonb,
    data bytea
);
CREATE INDEX items_name_idx ON items (name);
INSERT INTO items (name, price, created, meta, data)
SELECT 'item ' || g || E' l''été "quoted" \\ back', g * 1.5,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour',
       jsonb_build_object('g', g, 'tags', jsonb_build_array('a', 'b')),
       decode(md5(g::text), 'hex')
FROM generate_series(1, 500) AS g;
INSERT INTO items (name) VALUES (E'tab\there\nnewline');
CREATE TABLE notes (id int PRIMARY KEY, item_id int REFERENCES items (id), body text);
INSERT INTO notes VALUES (1, 1, 'first'), (2, 2, NULL);
"""

MYSQL_SCHEMA = r"""
CREATE TABLE items (
    id INT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(200) NOT NULL,
    price DECIMAL(10, 2),
    created DATETIME,
    meta JSON,
    data VARBINARY(64),
    INDEX items_name_idx (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO items (name, price, created, meta, data)
WITH RECURSIVE seq AS (SELECT 1 AS g UNION ALL SELECT g + 1 FROM seq WHERE g < 500)
SELECT CONCAT('item ', g, ' l''été "quoted" \\ back'), g * 1.5,
       TIMESTAMPADD(HOUR, g, '2024-01-01 00:00:00'),
       JSON_OBJECT('g', g, 'tags', JSON_ARRAY('a', 'b')),
       UNHEX(MD5(g))
FROM seq;
INSERT INTO items (name) VALUES ('tab\there\nnewline');
CREATE TABLE notes (id INT PRIMARY KEY, item_id INT, body TEXT,
    FOREIGN KEY (item_id) REFERENCES items (id)) ENGINE=InnoDB;
INSERT INTO notes VALUES (1, 1, 'first'), (2, 2, NULL);
"""

SNAPSHOT = {
    "postgresql": [
        "SELECT id, name, price, created, meta::text, encode(data, 'hex') FROM items ORDER BY id",
        "SELECT id, item_id, body FROM notes ORDER BY id",
    ],
    "mysql": [
        "SELECT id, name, price, created, meta, HEX(data) FROM items ORDER BY id",
        "SELECT id, item_id, body FROM notes ORDER BY id",
    ],
}


def fill(server: Any, database: str) -> None:
    server.execute(PG_SCHEMA if server.kind == "postgresql" else MYSQL_SCHEMA, database)


def snapshot(server: Any, database: str) -> list[list[tuple[Any, ...]]]:
    return [server.query(sql, database) for sql in SNAPSHOT[server.kind]]


def create_filled(server: Any, database: str) -> list[list[tuple[Any, ...]]]:
    server.create_database(database)
    fill(server, database)
    rows = snapshot(server, database)
    assert len(rows[0]) == 501
    return rows


def create_bulky(server: Any, database: str) -> None:
    """2 MiB of random bytes in ``bulk`` (an archive of about 2.1 MB: the dump's hex text
    barely compresses below half), then the small ``items`` table: mysqldump writes
    ``bulk`` whole, then waits on ``items`` while another session locks it."""
    server.create_database(database)
    server.execute(
        "CREATE TABLE bulk (id INT PRIMARY KEY, b BLOB) ENGINE=InnoDB;"
        "INSERT INTO bulk "
        "WITH RECURSIVE seq AS (SELECT 1 AS g UNION ALL SELECT g + 1 FROM seq WHERE g < 64) "
        "SELECT a.g * 100 + b.g, RANDOM_BYTES(1024) FROM seq a, seq b WHERE a.g <= 32;"
        "CREATE TABLE items (id INT PRIMARY KEY) ENGINE=InnoDB;"
        "INSERT INTO items VALUES (1);",
        database,
    )
