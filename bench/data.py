"""The benchmark's databases: a realistic mix of integers, text of varied lengths,
timestamps, numerics, JSON and an index, generated server-side to a requested size."""

from __future__ import annotations

from tests.support.servers import DbServer

ROW_BYTES_PG = 190  # plain-SQL bytes per generated row, measured; refined after filling
ROW_BYTES_MY = 200


def fill_postgresql(server: DbServer, name: str, megabytes: float) -> None:
    rows = max(1000, int(megabytes * 1e6 / ROW_BYTES_PG))
    server.create_database(name)
    server.execute(
        f"""
        CREATE TABLE events (
            id bigint PRIMARY KEY,
            account int NOT NULL,
            kind text NOT NULL,
            note text,
            created timestamptz NOT NULL,
            amount numeric(12, 2),
            payload jsonb
        );
        INSERT INTO events
        SELECT g, g % 9973, (ARRAY['login','order','refund','ship'])[1 + g % 4],
               CASE WHEN g % 5 = 0 THEN NULL
                    ELSE 'note ' || md5(g::text) || repeat(' lorem ipsum', g % 6) END,
               timestamptz '2024-01-01 00:00:00+00' + g * interval '17 seconds',
               (g % 100000) / 100.0,
               jsonb_build_object('id', g, 'tags', jsonb_build_array('a', g % 7),
                                  'ref', md5((g * 7)::text))
        FROM generate_series(1, {rows}) AS g;
        CREATE INDEX events_created_idx ON events (created);
        ANALYZE events;
        """,
        name,
    )


def fill_mysql(server: DbServer, name: str, megabytes: float) -> None:
    rows = max(1000, int(megabytes * 1e6 / ROW_BYTES_MY))
    server.create_database(name)
    server.execute(
        f"""
        CREATE TABLE events (
            id BIGINT PRIMARY KEY,
            account INT NOT NULL,
            kind VARCHAR(16) NOT NULL,
            note TEXT,
            created DATETIME NOT NULL,
            amount DECIMAL(12, 2),
            payload JSON,
            INDEX events_created_idx (created)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
        INSERT INTO events
        SELECT seq, seq % 9973, ELT(1 + seq % 4, 'login', 'order', 'refund', 'ship'),
               IF(seq % 5 = 0, NULL, CONCAT('note ', MD5(seq), REPEAT(' lorem ipsum', seq % 6))),
               TIMESTAMPADD(SECOND, seq * 17, '2024-01-01 00:00:00'),
               (seq % 100000) / 100.0,
               JSON_OBJECT('id', seq, 'tags', JSON_ARRAY('a', seq % 7), 'ref', MD5(seq * 7))
        FROM seq_1_to_{rows};
        """,
        name,
    )
