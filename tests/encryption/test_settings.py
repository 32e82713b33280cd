"""A database's encryption setting through the API: shown without its passphrase, refused
in French when invalid, changed or turned off by PUT, the passphrase encrypted at rest."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from backup_api.archiving.agecrypt import generate_identity
from tests.encryption.helpers import PASSPHRASE
from tests.support.apphelpers import Api, metadata_sql, unique_name


async def test_recipients_and_passphrase_are_shown_as_modes(
    pg_server: Any, alice: Api, app: FastAPI
) -> None:
    _, recipient = generate_identity()
    _, other = generate_identity()
    name = unique_name("enc")
    by_keys = await alice.add_database(pg_server, name, encryption={"recipients": [recipient]})
    assert by_keys["encryption"] == {"mode": "recipients", "recipients": [recipient]}
    response = await alice.post(
        "/api/databases",
        json={
            "name": "secret",
            "type": "postgresql",
            "host": pg_server.host,
            "port": pg_server.port,
            "username": pg_server.user,
            "password": pg_server.password,
            "db_name": name,
            "encryption": {"passphrase": PASSPHRASE},
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["database"]["encryption"] == {"mode": "passphrase"}
    assert PASSPHRASE not in response.text
    by_phrase = response.json()["database"]
    plain = await alice.add_database(pg_server, name)
    assert plain["encryption"] is None

    # Read back, listed, changed, turned off; other fields leave it as it is.
    item = await alice.get(f"/api/databases/{by_phrase['id']}")
    assert item.json()["database"]["encryption"] == {"mode": "passphrase"}
    listing = await alice.get("/api/databases")
    assert [d["encryption"] for d in listing.json()["databases"]] == [
        {"mode": "recipients", "recipients": [recipient]},
        {"mode": "passphrase"},
        None,
    ]
    assert PASSPHRASE not in listing.text
    renamed = await alice.put(f"/api/databases/{by_keys['id']}", json={"name": "renommée"})
    assert renamed.json()["database"]["encryption"]["recipients"] == [recipient]
    changed = await alice.put(
        f"/api/databases/{by_keys['id']}", json={"encryption": {"recipients": [recipient, other]}}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["database"]["encryption"]["recipients"] == [recipient, other]
    off = await alice.put(f"/api/databases/{by_phrase['id']}", json={"encryption": None})
    assert off.status_code == 200, off.text
    assert off.json()["database"]["encryption"] is None
    on = await alice.put(
        f"/api/databases/{plain['id']}", json={"encryption": {"passphrase": PASSPHRASE}}
    )
    assert on.json()["database"]["encryption"] == {"mode": "passphrase"}

    # At rest: the passphrase is a Fernet token, the recipients (public keys) plain.
    rows = await metadata_sql(
        app,
        "SELECT encryption_mode, encryption_recipients, encryption_passphrase_encrypted "
        "FROM databases ORDER BY id",
    )
    assert [row[0] for row in rows] == ["recipients", None, "passphrase"]
    assert rows[2][2] is not None
    assert PASSPHRASE not in repr(rows)
    assert rows[1][2] is None  # turned off: the passphrase is gone


@pytest.mark.parametrize(
    ("encryption", "message"),
    [
        (
            {"recipients": ["age1nimportequoi"]},
            "Données invalides: encryption.recipients: destinataire age invalide "
            "(attendu : une clé publique age1…)",
        ),
        ({"recipients": []}, "Données invalides: encryption.recipients: au moins un destinataire"),
        (
            {"passphrase": "trop court"},
            "Données invalides: encryption.passphrase: au moins 12 caractères",
        ),
        ({"passphrase": " " * 20}, "Données invalides: encryption.passphrase: phrase secrète vide"),
        (
            {"recipients": ["AGE1X"], "passphrase": PASSPHRASE},
            "Données invalides: encryption.recipients: destinataire age invalide "
            "(attendu : une clé publique age1…)",
        ),
        (
            {},
            "Données invalides: encryption: indiquez soit recipients, soit passphrase "
            "(un seul des deux)",
        ),
        ({"mode": "passphrase"}, "Données invalides: encryption.mode: champ non autorisé"),
    ],
)
async def test_invalid_settings_are_refused_in_french(
    pg_server: Any, alice: Api, encryption: dict[str, Any], message: str
) -> None:
    body = {
        "name": "x",
        "type": "postgresql",
        "host": pg_server.host,
        "port": pg_server.port,
        "username": pg_server.user,
        "password": pg_server.password,
        "db_name": "x",
        "encryption": encryption,
    }
    response = await alice.post("/api/databases", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": message}
    passphrase = encryption.get("passphrase")
    if passphrase and passphrase.strip():
        assert passphrase not in response.text
    database = await alice.add_database(pg_server, "x")
    response = await alice.put(f"/api/databases/{database['id']}", json={"encryption": encryption})
    assert response.status_code == 400
    assert response.json() == {"error": message}


async def test_both_modes_at_once_are_refused(pg_server: Any, alice: Api) -> None:
    _, recipient = generate_identity()
    database = await alice.add_database(pg_server, "x")
    response = await alice.put(
        f"/api/databases/{database['id']}",
        json={"encryption": {"recipients": [recipient], "passphrase": PASSPHRASE}},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "Données invalides: encryption: indiquez soit recipients, soit passphrase "
        "(un seul des deux)"
    }
    assert PASSPHRASE not in response.text
