"""A person's way through the dashboard, in chromium against ``backup-api serve``: register,
add a PostgreSQL and a MariaDB database, back them up and watch each reach "terminée",
download, verify, pin, schedule, retention and its preview, a restore confirmed by the
target's name; then another account that sees none of it."""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.dashboard.browser import PASSWORD, Visitor, browser
from tests.notifications.receiver import Received, Receiver, receiving, verify_signature
from tests.support.apphelpers import unique_name
from tests.support.sample_data import create_filled, snapshot
from tests.support.serverproc import ServerProcess, server_process

__all__ = ["browser"]

BACKUP_TIMEOUT = 60_000


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Webhooks may reach the test's local receiver.
    with server_process(
        tmp_path_factory.mktemp("dashboard"), allowed_outbound_hosts="127.0.0.1"
    ) as server:
        server.start()
        yield server


@pytest.fixture(scope="module")
def alice_dbs(pg_server: Any, mysql_server: Any) -> dict[str, Any]:
    names = {"pg": unique_name("dash_pg"), "target": unique_name("dash_copy")}
    rows = create_filled(pg_server, names["pg"])
    pg_server.create_database(names["target"])
    names["my"] = unique_name("dash_my")
    create_filled(mysql_server, names["my"])
    return {"names": names, "rows": rows}


def _visitor(browser: Browser, service: ServerProcess) -> Visitor:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900})
    return Visitor(context.new_page(), service.url)


def _add_database(visitor: Visitor, server: Any, name: str, db_name: str) -> int:
    page = visitor.page
    visitor.go("/databases/new")
    page.get_by_label("Nom affiché").fill(name)
    page.get_by_label("Type").select_option(server.kind)
    page.get_by_label("Hôte").fill(server.host)
    page.get_by_label("Port").fill(str(server.port))
    page.get_by_label("Utilisateur").fill(server.user)
    page.get_by_label("Mot de passe").fill(server.password)
    page.get_by_label("Nom de la base sur le serveur").fill(db_name)
    page.get_by_role("button", name="Ajouter").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    # The password was sent once and never comes back, not even into a form.
    assert server.password not in page.content()
    match = re.search(r"/databases/(\d+)$", page.url)
    assert match, page.url
    return int(match.group(1))


def _back_up(visitor: Visitor, database_id: int) -> int:
    page = visitor.page
    visitor.go(f"/databases/{database_id}")
    page.get_by_role("button", name="Lancer une sauvegarde").click()
    # The backup's page polls its fragment every second until the job has ended.
    expect(page.locator("#backup-status [data-status]")).to_have_text(
        "terminée", timeout=BACKUP_TIMEOUT
    )
    match = re.search(r"/backups/(\d+)$", page.url)
    assert match, page.url
    return int(match.group(1))


def test_a_person_backs_up_and_restores(
    browser: Browser, service: ServerProcess, pg_server: Any, mysql_server: Any, alice_dbs: Any
) -> None:
    names = alice_dbs["names"]
    alice = _visitor(browser, service)
    page = alice.page

    alice.go("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    alice.check("login")
    page.get_by_role("link", name="Créer un compte").click()
    # No account yet: the first may be the instance's administrator, as in the API.
    expect(page.get_by_label("Rôle (premier compte de l'instance)")).to_be_visible()
    alice.check("register")
    page.get_by_label("E-mail").fill("alice@example.com")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_label("Rôle (premier compte de l'instance)").select_option("admin")
    page.get_by_role("button", name="Créer le compte").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Vue d'ensemble")
    expect(page.get_by_role("link", name="Utilisateurs")).to_be_visible()

    pg_id = _add_database(alice, pg_server, "Production PG", names["pg"])
    my_id = _add_database(alice, mysql_server, "Boutique MariaDB", names["my"])
    target_id = _add_database(alice, pg_server, "Copie de test", names["target"])
    alice.check("database-new")

    first = _back_up(alice, pg_id)
    alice.check("backup")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Télécharger").click()
    archive = Path(download_info.value.path())
    with zipfile.ZipFile(io.BytesIO(archive.read_bytes())) as opened:
        dump = opened.read(opened.namelist()[0]).decode()
    assert "CREATE TABLE" in dump
    assert "items" in dump

    page.get_by_role("button", name="Vérifier").click()
    expect(page.get_by_role("status")).to_contain_text("Sauvegarde intègre")
    page.get_by_role("button", name="Épingler").click()
    expect(page.get_by_role("button", name="Désépingler")).to_be_visible()

    _back_up(alice, pg_id)
    _back_up(alice, my_id)

    alice.go(f"/databases/{pg_id}")
    page.get_by_label("Expression cron").fill("0 3 * * *")
    page.get_by_label("Fuseau horaire").fill("Europe/Paris")
    page.get_by_role("button", name="Enregistrer la planification").click()
    expect(page.get_by_text(re.compile(r"Prochaine exécution : \d\d/\d\d/\d{4}"))).to_be_visible()
    # Typing a policy asks for its preview: the two backups are younger than an hour, and
    # the newest is never deleted, so none would go.
    page.get_by_label("Garder les n dernières").fill("1")
    preview = page.locator("#retention-preview")
    expect(preview).to_contain_text("Aucune sauvegarde ne serait supprimée (2 conservées)")
    page.get_by_role("button", name="Enregistrer la rétention").click()
    expect(page.get_by_label("Garder les n dernières")).to_have_value("1")
    expect(page.locator("table tbody tr")).to_have_count(2)
    alice.check("database")

    # The connection as a backup would make it; then an edit that leaves the password
    # field empty, which keeps the stored password (the restore below logs in with it).
    page.get_by_role("button", name="Tester la connexion").click()
    expect(page.get_by_role("status")).to_contain_text("Connexion réussie : serveur")
    alice.go(f"/databases/{target_id}/edit")
    expect(page.get_by_label("Mot de passe (vide : inchangé)")).to_have_value("")
    assert pg_server.password not in page.content()
    alice.check("database-edit")
    page.get_by_label("Nom affiché").fill("Copie restaurée")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Copie restaurée")

    # A restore into the copy, confirmed by typing its name; a wrong name changes nothing.
    alice.go(f"/backups/{first}")
    page.get_by_role("link", name="Restaurer…").click()
    page.get_by_label("Base cible (son contenu sera remplacé)").select_option(str(target_id))
    page.get_by_label("Pour confirmer").fill("pas_la_bonne")
    page.get_by_role("button", name="Restaurer").click()
    expect(page.get_by_role("alert")).to_contain_text(
        f"tapez exactement le nom de la base cible ({names['target']})"
    )
    page.go_back()
    alice.check("restore-new")
    page.get_by_label("Base cible (son contenu sera remplacé)").select_option(str(target_id))
    page.get_by_label("Pour confirmer").fill(names["target"])
    page.get_by_role("button", name="Restaurer").click()
    expect(page.locator("#restore-status [data-status]")).to_have_text(
        "terminée", timeout=BACKUP_TIMEOUT
    )
    alice.check("restore")
    assert snapshot(pg_server, names["target"]) == alice_dbs["rows"]

    alice.go("/")
    row = page.locator(f"tr[data-database='{pg_id}']")
    expect(row).to_contain_text("terminée")
    expect(row.locator("svg.chart")).to_have_count(1)
    expect(page.locator(f"tr[data-database='{my_id}']")).to_contain_text("terminée")
    alice.check("overview")
    # On a phone, the page fits the screen's width: wide tables scroll within their box.
    page.set_viewport_size({"width": 390, "height": 844})
    alice.go(f"/databases/{pg_id}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    alice.check("database-phone")
    alice.go("/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    alice.check("overview-phone")
    page.set_viewport_size({"width": 1200, "height": 900})
    # A backup deleted from its page: gone from its database's list.
    alice.go(f"/databases/{my_id}")
    page.get_by_role("link", name=re.compile(r"^#\d+$")).click()
    page.get_by_role("button", name="Supprimer").click()
    expect(page).to_have_url(re.compile(rf"/databases/{my_id}$"))
    expect(page.get_by_text("Aucune sauvegarde.")).to_be_visible()
    alice.go("/storages")
    alice.check("storages")
    alice.go("/users")
    expect(page.get_by_role("cell", name="alice@example.com")).to_be_visible()
    alice.check("users")


def _carols_backup(api: httpx.Client, server: Any, db_name: str) -> tuple[int, int]:
    carol = {"email": "carol@example.com", "password": PASSWORD}
    assert api.post("/auth/register", json=carol).status_code == 201
    token = api.post("/auth/login", json=carol).json()["token"]
    api.headers["Authorization"] = f"Bearer {token}"
    created = api.post(
        "/api/databases",
        json={
            "name": "Base de Carol",
            "type": server.kind,
            "host": server.host,
            "port": str(server.port),
            "username": server.user,
            "password": server.password,
            "db_name": db_name,
        },
    )
    database_id: int = created.json()["database"]["id"]
    backup_id: int = api.post(f"/api/backups/database/{database_id}").json()["backup"]["id"]
    deadline = time.monotonic() + 60
    while api.get(f"/api/backups/{backup_id}").json()["backup"]["status"] == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return database_id, backup_id


def test_another_account_sees_none_of_it(
    browser: Browser, service: ServerProcess, pg_server: Any, alice_dbs: Any
) -> None:
    # Carol's records, made through the API (whatever the test above left).
    with httpx.Client(base_url=service.url, timeout=30) as api:
        database_id, backup_id = _carols_backup(api, pg_server, alice_dbs["names"]["pg"])

    bob = _visitor(browser, service)
    page = bob.page
    bob.go("/register")
    # An account exists: the admin role is no longer offered.
    expect(page.get_by_label("Rôle (premier compte de l'instance)")).to_have_count(0)
    page.get_by_label("E-mail").fill("bob@example.com")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Créer le compte").click()
    expect(page.get_by_text("Aucune base de données enregistrée")).to_be_visible()
    expect(page.get_by_role("link", name="Utilisateurs")).to_have_count(0)
    bob.check("overview-empty")
    for path in (
        f"/databases/{database_id}",
        f"/backups/{backup_id}",
        f"/backups/{backup_id}/restore",
        f"/backups/{backup_id}/download",
    ):
        response = page.request.get(service.url + path)
        assert response.status == 403, path
        assert "Carol" not in response.text()
    bob.go(f"/databases/{database_id}")
    expect(page.get_by_role("alert")).to_have_text("Accès non autorisé")
    response = page.request.get(service.url + "/users")
    assert response.status == 403
    bob.check("forbidden")
    for path in ("/storages", "/"):
        bob.go(path)
        assert "Carol" not in page.content()
        assert alice_dbs["names"]["pg"] not in page.content()


def _sign_in(visitor: Visitor, email: str) -> None:
    visitor.go("/login")
    visitor.page.get_by_label("E-mail").fill(email)
    visitor.page.get_by_label("Mot de passe").fill(PASSWORD)
    visitor.page.get_by_role("button", name="Se connecter").click()
    expect(visitor.page.get_by_role("heading", level=1)).to_have_text("Vue d'ensemble")


def _received(receiver: Receiver, count: int) -> list[Received]:
    deadline = time.monotonic() + 30
    while len(receiver.requests) < count:
        assert time.monotonic() < deadline, receiver.requests
        time.sleep(0.05)
    return list(receiver.requests)


def test_channels_and_the_audit_log(browser: Browser, service: ServerProcess) -> None:
    """Alice (the admin of the first test) adds a webhook, keeps its secret, tests it, sees
    a backup's event delivered, reads the audit log; Bob (the second test's) sees none of
    it and no audit log."""
    alice = _visitor(browser, service)
    page = alice.page
    _sign_in(alice, "alice@example.com")
    with receiving() as receiver:
        page.get_by_role("link", name="Notifications").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Canaux de notification")
        page.get_by_label("Nom", exact=True).fill("Alertes équipe")
        page.get_by_label("Type").select_option("webhook")
        page.get_by_label("URL", exact=True).fill(receiver.url("/hook?token=T0KEN"))
        # An admin may hear the whole instance; the events are all ticked to begin with.
        expect(page.get_by_label("Portée")).to_be_visible()
        page.get_by_label("schedule.skipped").uncheck()
        page.get_by_role("button", name="Ajouter").click()
        secret = page.locator("#webhook-secret").inner_text()
        assert secret.startswith("whsec_")
        assert "T0KEN" not in page.content()
        alice.check("notifications-created")
        # Shown once: the list, loaded again, has the channel and no secret.
        alice.go("/notifications")
        row = page.locator("tr[data-channel]")
        expect(row).to_contain_text("Alertes équipe")
        # An admin's list has everyone's: each channel names its owner.
        expect(row).to_contain_text("alice@example.com")
        assert secret not in page.content()
        assert "T0KEN" not in page.content()
        alice.check("notifications")

        page.get_by_role("button", name="Envoyer un test à Alertes équipe").click()
        expect(page.get_by_role("status")).to_contain_text("le destinataire a répondu 200")
        [test] = _received(receiver, 1)
        assert test.path == "/hook?token=T0KEN"
        assert verify_signature(secret, test.headers, test.body)
        channel_path = re.sub(r"^https?://[^/]+", "", page.url)
        assert re.fullmatch(r"/notifications/\d+/test", channel_path), page.url

        # A backup's completion reaches the receiver, and the channel's page lists it.
        alice.go("/")
        page.get_by_role("link", name="Production PG").click()
        page.get_by_role("button", name="Lancer une sauvegarde").click()
        expect(page.locator("#backup-status [data-status]")).to_have_text(
            "terminée", timeout=BACKUP_TIMEOUT
        )
        delivered = _received(receiver, 2)[1]
        assert b'"type":"backup.completed"' in delivered.body.replace(b" ", b"")
        channel_page = channel_path.removesuffix("/test")
        deadline = time.monotonic() + 30
        while True:
            alice.go(channel_page)
            if "livrée" in " ".join(page.locator("table.deliveries").all_inner_texts()):
                break
            assert time.monotonic() < deadline, page.content()
            time.sleep(0.2)
        attempt = page.locator("table.deliveries tbody tr").first
        expect(attempt).to_contain_text("backup.completed")
        expect(attempt).to_contain_text("200")
        # The edit form: the URL field empty, never the stored URL.
        expect(page.get_by_label("Nouvelle URL (vide : inchangée)")).to_have_value("")
        assert "T0KEN" not in page.content()
        alice.check("notification")

    page.get_by_role("link", name="Journal d'audit").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Journal d'audit")
    expect(page.locator("table.audit tbody tr").first).to_be_visible()
    page.get_by_label("Action").fill("login")
    page.get_by_role("button", name="Filtrer").click()
    actions = page.locator("table.audit tbody tr td:nth-child(3)").all_inner_texts()
    assert actions, page.content()
    assert set(actions) == {"login"}, actions
    alice.check("audit")
    page.set_viewport_size({"width": 390, "height": 844})
    for path, name in (
        ("/audit", "audit-phone"),
        ("/notifications", "notifications-phone"),
        (channel_page, "notification-phone"),
    ):
        alice.go(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        alice.check(name)

    bob = _visitor(browser, service)
    _sign_in(bob, "bob@example.com")
    expect(bob.page.get_by_role("link", name="Journal d'audit")).to_have_count(0)
    bob.go("/notifications")
    expect(bob.page.get_by_text("Aucun canal")).to_be_visible()
    assert "Alertes équipe" not in bob.page.content()
    expect(bob.page.get_by_label("Portée")).to_have_count(0)
    for path in (channel_page, "/audit"):
        response = bob.page.request.get(service.url + path)
        assert response.status == 403, path
        assert "Alertes équipe" not in response.text()
        assert "login" not in response.text()
    bob.go(channel_page)
    expect(bob.page.get_by_role("alert")).to_have_text("Accès non autorisé")
