"""The dashboard's pages: server-rendered HTML at ``/`` (Swagger UI stays at ``/docs``).

Each route calls the same services as the API, as the signed-in account, so ownership
(403 for another user's record, 404 for a missing one) and validation are the API's own.
Forms post back here with the session cookie and a CSRF token; htmx only polls fragments
(a running backup or restore) and asks for the retention preview.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.datastructures import FormData

from backup_api import audit, encryption
from backup_api.dashboard import session, views, web
from backup_api.deps import IdPath, StateDep, client_address
from backup_api.events import EVENT_TYPES
from backup_api.exceptions import AppError, BadRequest, Forbidden, NotFound
from backup_api.models import (
    MAX_ID,
    DatabaseCreate,
    DatabaseUpdate,
    NotificationCreate,
    NotificationUpdate,
    RecipientsEncryption,
    RestoreCreate,
    RetentionPolicyBody,
    ScheduleUpdate,
    StorageCreate,
    StorageUpdate,
    UserRegister,
    UserRoleUpdate,
)
from backup_api.principals import Principal
from backup_api.repositories import dashboard as dashboard_rows
from backup_api.repositories import users as user_rows
from backup_api.security import create_access_token
from backup_api.services import admin as admin_service
from backup_api.services import audit as audit_service
from backup_api.services import backups as backups_service
from backup_api.services import connectiontests, storagetests
from backup_api.services import databases as databases_service
from backup_api.services import notifications as notifications_service
from backup_api.services import restores as restores_service
from backup_api.services import retention as retention_service
from backup_api.services import schedules as schedules_service
from backup_api.services import storages as storages_service
from backup_api.services import users as users_service
from backup_api.services.ownership import (
    BACKUP,
    DATABASE,
    NOTIFICATION,
    RESTORE,
    STORAGE,
    load_owned,
)
from backup_api.state import AppState

router = APIRouter(include_in_schema=False, route_class=web.DashboardRoute)
User = web.User

#: The listings a page shows at most (the API pages through the rest).
PAGE_ROWS = 50
CONFIRM_MISMATCH = "Confirmation incorrecte: tapez exactement le nom de la base cible ({name})"
ADMIN_ONLY = "Action réservée aux administrateurs"
#: What ``GET /api/audit`` accepts as an action.
AUDIT_ACTION = re.compile(r"[a-z_]{1,64}")


# --------------------------------------------------------------------------- static files

ASSETS = {
    "htmx.min.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
_asset_cache: dict[str, bytes] = {}


@router.get("/assets/{name}")
async def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound()
    body = _asset_cache.get(name)
    if body is None:
        body = _asset_cache[name] = (web.STATIC_DIR / name).read_bytes()
    return Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})


# --------------------------------------------------------------------------- accounts


async def _first_account(state: AppState) -> bool:
    return await state.metadata.read(lambda c: user_rows.count(c) == 0)


@router.get("/login")
async def login_page(request: Request) -> Response:
    return web.render(request, "login.html", {"email": ""})


async def _open_session(request: Request, state: AppState, email: str, password: str) -> Response:
    user = await users_service.authenticate(
        metadata=state.metadata,
        throttle=state.throttle,
        email=email,
        password=password,
        client=client_address(request),
        via="dashboard",
    )
    token = create_access_token(
        user.id, state.keys.jwt_secret, state.settings.jwt_expire_minutes, token_key=user.token_key
    )
    response = web.see_other("/")
    session.set_cookie(
        request, response, session.SESSION_COOKIE, token, state.settings.jwt_expire_minutes * 60
    )
    session.clear_cookie(request, response, session.ANONYMOUS_COOKIE)
    return response


@router.post("/login")
async def login(request: Request, state: StateDep) -> Response:
    fields = await web.posted(request, state)
    email = fields.get("email", "")[:320]
    try:
        return await _open_session(request, state, email, fields.get("password", "")[:1024])
    except AppError as exc:
        return web.render(
            request, "login.html", {"email": email, "error": exc.message}, exc.status_code
        )


@router.get("/register")
async def register_page(request: Request, state: StateDep) -> Response:
    return web.render(
        request, "register.html", {"email": "", "offer_admin": await _first_account(state)}
    )


@router.post("/register")
async def register(request: Request, state: StateDep) -> Response:
    fields = await web.posted(request, state)
    email = fields.get("email", "")[:320]
    try:
        data = web.model(
            UserRegister,
            {
                "email": email,
                "password": fields.get("password", ""),
                "role": fields.get("role", "user"),
            },
        )
        await users_service.register(
            metadata=state.metadata, settings=state.settings, data=data, caller=None
        )
        return await _open_session(request, state, data.email, data.password)
    except AppError as exc:
        context = {"email": email, "error": exc.message, "offer_admin": await _first_account(state)}
        return web.render(request, "register.html", context, exc.status_code)


@router.post("/logout")
async def logout(request: Request, state: StateDep, user: Principal = User) -> Response:
    await web.posted(request, state)
    session.end(request, state)
    # Ended: no renewed cookie may follow.
    request.state.renewed_session = None
    response = web.see_other("/login")
    session.clear_cookie(request, response, session.SESSION_COOKIE)
    return response


# --------------------------------------------------------------------------- overview


@router.get("/")
async def overview(request: Request, state: StateDep, user: Principal = User) -> Response:
    owner_id = None if user.is_admin else user.id
    data = await state.metadata.read(lambda c: dashboard_rows.overview(c, owner_id))
    rows = views.overview_rows(data, datetime.now(UTC))
    return web.render(request, "overview.html", {"rows": rows})


# --------------------------------------------------------------------------- databases


async def _own_storages(state: AppState, user: Principal, owner_id: int) -> list[Any]:
    storages = await storages_service.list_storages(
        metadata=state.metadata, user=user, limit=state.settings.max_page_size, offset=0
    )
    # An admin acting on someone's database may only name that owner's storages.
    return [storage for storage in storages if storage.user_id == owner_id]


def _options(form: FormData, fields: Mapping[str, str]) -> dict[str, Any]:
    """The destinations and encryption fields of the create and edit forms, as the API's
    bodies say them (encryption only when the form asks for a change)."""
    storage_ids = [web.integer("storage_ids", str(i)) for i in form.getlist("storage_ids")]
    options: dict[str, Any] = {
        "keep_local": fields.get("keep_local") == "on",
        "storage_ids": storage_ids,
    }
    choice = fields.get("encryption", "keep")
    if choice == "none":
        options["encryption"] = None
    elif choice == "passphrase":
        options["encryption"] = {"passphrase": fields.get("passphrase", "")}
    elif choice == "recipients":
        options["encryption"] = {"recipients": fields.get("recipients", "").split()}
    return options


@router.get("/databases/new")
async def database_form(request: Request, state: StateDep, user: Principal = User) -> Response:
    context = {
        "values": {"keep_local": True, "storage_ids": []},
        "storages": await _own_storages(state, user, user.id),
        "database": None,
    }
    return web.render(request, "database_new.html", context)


@router.post("/databases")
async def database_create(request: Request, state: StateDep, user: Principal = User) -> Response:
    fields = await web.posted(request, state)
    names = ("name", "type", "host", "port", "username", "db_name")
    values: dict[str, Any] = {name: fields.get(name, "") for name in names}
    options = _options(await request.form(), fields)
    try:
        data = web.model(
            DatabaseCreate, {**values, **options, "password": fields.get("password", "")}
        )
        database, warning = await databases_service.create_database(
            metadata=state.metadata,
            settings=state.settings,
            keys=state.keys,
            probe=state.server_probe,
            owner=user,
            data=data,
        )
    except AppError as exc:
        # The password and passphrase are never sent back, even into the form they came from.
        context = {
            "values": {
                **values,
                "keep_local": options["keep_local"],
                "storage_ids": options["storage_ids"],
                "recipients": fields.get("recipients", ""),
            },
            "storages": await _own_storages(state, user, user.id),
            "database": None,
            "error": exc.message,
        }
        return web.render(request, "database_new.html", context, exc.status_code)
    if warning is None:
        return web.see_other(f"/databases/{database.record.id}")
    # Registered, but a backup would fail as things stand: say why at once.
    context = await _database_context(state, database.record, user)
    return web.render(request, "database.html", {**context, "warning": warning}, 201)


async def _owned_database(state: AppState, database_id: int, user: Principal) -> Any:
    return await state.metadata.read(lambda c: load_owned(c, DATABASE, database_id, user))


async def _database_context(state: AppState, database: Any, user: Principal) -> dict[str, Any]:
    listing = await backups_service.list_backups_json(
        metadata=state.metadata,
        user=user,
        limit=PAGE_ROWS,
        offset=0,
        database_id=database.id,
        progress=state.progress,
    )
    schedule = await web.optional(
        schedules_service.get_schedule(metadata=state.metadata, database=database)
    )
    policy = await web.optional(
        retention_service.get_policy(metadata=state.metadata, database=database)
    )
    view = await databases_service.view(state.metadata, database)
    storages = await storages_service.list_storages(
        metadata=state.metadata, user=user, limit=state.settings.max_page_size, offset=0
    )
    names = {storage.id: storage.name for storage in storages}
    return {
        "database": database,
        "backups": json.loads(listing)["backups"],
        "schedule": schedules_service.to_public(schedule) if schedule is not None else None,
        "policy": policy,
        "destinations": [names.get(i, f"#{i}") for i in view.storage_ids],
    }


@router.get("/databases/{database_id}")
async def database_page(
    database_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    database = await _owned_database(state, database_id, user)
    return web.render(request, "database.html", await _database_context(state, database, user))


@router.post("/databases/{database_id}/test")
async def database_test(
    database_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    """Connect as a backup would, and show the answer on the database's page."""
    await web.posted(request, state)
    database = await _owned_database(state, database_id, user)
    result = await connectiontests.run_connection_test(
        metadata=state.metadata,
        keys=state.keys,
        probe=state.server_probe,
        limiter=state.connection_tests,
        caller=user,
        database=database,
    )
    context = await _database_context(state, database, user)
    return web.render(request, "database.html", {**context, "test": result})


EDITABLE = ("name", "host", "port", "username", "db_name")


@router.get("/databases/{database_id}/edit")
async def database_edit_form(
    database_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    database = await _owned_database(state, database_id, user)
    # Never the password: its field stays empty, meaning "unchanged".
    values = {name: database._mapping[name] for name in EDITABLE}
    view = await databases_service.view(state.metadata, database)
    values.update(keep_local=database.keep_local, storage_ids=view.storage_ids)
    current = encryption.public(database)
    if isinstance(current, RecipientsEncryption):
        # Public keys: shown so they can be edited; a passphrase never is.
        values["recipients"] = "\n".join(current.recipients)
    return web.render(
        request, "database_edit.html", await _edit_context(state, user, database, values)
    )


async def _edit_context(
    state: AppState, user: Principal, database: Any, values: dict[str, Any]
) -> dict[str, Any]:
    storages = await _own_storages(state, user, database.user_id)
    return {"database": database, "values": values, "storages": storages}


@router.post("/databases/{database_id}/edit")
async def database_edit(
    database_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    fields = await web.posted(request, state)
    database = await _owned_database(state, database_id, user)
    values: dict[str, Any] = {name: fields.get(name, "") for name in EDITABLE}
    options = _options(await request.form(), fields)
    changes = {**values, **options}
    # What the form shows again: never the password or the passphrase.
    values.update(
        keep_local=options["keep_local"],
        storage_ids=options["storage_ids"],
        recipients=fields.get("recipients", ""),
    )
    if fields.get("password"):
        changes["password"] = fields["password"]
    try:
        updated, warning = await databases_service.update_database(
            metadata=state.metadata,
            settings=state.settings,
            keys=state.keys,
            probe=state.server_probe,
            queue=state.queue,
            caller=user,
            database=database,
            data=web.model(DatabaseUpdate, changes),
        )
    except AppError as exc:
        context = await _edit_context(state, user, database, values)
        return web.render(
            request, "database_edit.html", {**context, "error": exc.message}, exc.status_code
        )
    if warning is None:
        return web.see_other(f"/databases/{database.id}")
    context = await _database_context(state, updated.record, user)
    return web.render(request, "database.html", {**context, "warning": warning})


@router.post("/databases/{database_id}/delete")
async def database_delete(
    database_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    await web.posted(request, state)
    database = await _owned_database(state, database_id, user)
    await databases_service.delete_database(
        metadata=state.metadata, queue=state.queue, database=database
    )
    return web.see_other("/")


@router.post("/databases/{database_id}/backups")
async def backup_start(
    database_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    await web.posted(request, state)
    backup = await backups_service.create_backup(
        metadata=state.metadata,
        settings=state.settings,
        storage=state.storage,
        queue=state.queue,
        user=user,
        database_id=database_id,
    )
    return web.see_other(f"/backups/{backup.id}")


@router.post("/databases/{database_id}/schedule")
async def schedule_save(
    database_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    fields = await web.posted(request, state)
    database = await _owned_database(state, database_id, user)
    if fields.get("action") == "delete":
        await schedules_service.delete_schedule(metadata=state.metadata, database=database)
        return web.see_other(f"/databases/{database.id}")
    data = web.model(
        ScheduleUpdate,
        {
            "cron": fields.get("cron", ""),
            "timezone": fields.get("timezone", "") or "UTC",
            "enabled": fields.get("enabled") == "on",
        },
    )
    await schedules_service.put_schedule(
        metadata=state.metadata,
        user=user,
        database_id=database.id,
        data=data,
        now=state.scheduler.clock.now(),
    )
    state.scheduler.wake()
    return web.see_other(f"/databases/{database.id}")


RETENTION_FIELDS = (
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
    "max_age_days",
)


def _policy(fields: Mapping[str, str]) -> RetentionPolicyBody:
    values: dict[str, Any] = {}
    for name in RETENTION_FIELDS:
        raw = fields.get(name, "").strip()
        if raw:
            values[name] = raw
    # Form fields are text: the model parses them as it parses a query string.
    return web.model(RetentionPolicyBody, {k: web.integer(k, v) for k, v in values.items()})


@router.post("/databases/{database_id}/retention")
async def retention_save(
    database_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    fields = await web.posted(request, state)
    database = await _owned_database(state, database_id, user)
    if fields.get("action") == "delete":
        await retention_service.delete_policy(metadata=state.metadata, database=database)
    else:
        await retention_service.put_policy(
            metadata=state.metadata, database=database, body=_policy(fields)
        )
    return web.see_other(f"/databases/{database.id}")


@router.get("/databases/{database_id}/retention/preview")
async def retention_preview(
    database_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    """The fragment under the retention form: what a sweep would delete under the
    policy as typed (not saved yet)."""
    database = await _owned_database(state, database_id, user)
    body = _policy(request.query_params)
    preview = await retention_service.preview(sweeper=state.retention, database=database, body=body)
    return web.render(request, "_retention_preview.html", {"preview": preview})


# --------------------------------------------------------------------------- backups


async def _backup_dict(state: AppState, backup_id: int, user: Principal) -> dict[str, Any]:
    document = await backups_service.get_backup_json(
        metadata=state.metadata, user=user, backup_id=backup_id, progress=state.progress
    )
    backup: dict[str, Any] = json.loads(document)["backup"]
    return backup


@router.get("/backups/{backup_id}")
async def backup_page(
    backup_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    backup = await _backup_dict(state, backup_id, user)
    return web.render(request, "backup.html", {"backup": backup})


@router.get("/backups/{backup_id}/status")
async def backup_status(
    backup_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    """The fragment a backup's page polls every second until the backup has ended."""
    backup = await _backup_dict(state, backup_id, user)
    return web.render(request, "_backup_status.html", {"backup": backup})


async def _owned_backup(state: AppState, backup_id: int, user: Principal) -> Any:
    return await state.metadata.read(lambda c: load_owned(c, BACKUP, backup_id, user))


@router.get("/backups/{backup_id}/download")
async def backup_download(
    backup_id: IdPath, state: StateDep, user: Principal = web.User
) -> Response:
    backup = await _owned_backup(state, backup_id, user)
    download = await backups_service.open_download(
        metadata=state.metadata,
        copy_store=state.copy_store,
        backup=backup,
        storage_id=None,
        downloads=state.retention.downloads,
    )
    headers = {
        "Content-Disposition": f'attachment; filename="{download.filename}"',
        "Content-Length": str(download.size),
    }
    media_type = "application/octet-stream" if download.encrypted else "application/zip"
    return StreamingResponse(download.chunks, media_type=media_type, headers=headers)


@router.post("/backups/{backup_id}/verify")
async def backup_verify(
    backup_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    await web.posted(request, state)
    backup = await _owned_backup(state, backup_id, user)
    result = await backups_service.verify_backup(
        metadata=state.metadata,
        copy_store=state.copy_store,
        settings=state.settings,
        keys=state.keys,
        executor=state.executor,
        launcher=state.archive_processes,
        backup=backup,
        storage_id=None,
    )
    if not result.valid:
        verdict = f"Sauvegarde corrompue: {result.error or 'somme de contrôle différente'}"
    elif result.contents_checked:
        verdict = "Sauvegarde intègre (SHA-256 et archive ZIP vérifiés)"
    else:
        verdict = "Fichier chiffré intègre (SHA-256 et structure age vérifiés)"
    context = {"backup": await _backup_dict(state, backup_id, user), "verdict": verdict}
    return web.render(request, "backup.html", context)


@router.post("/backups/{backup_id}/pin")
async def backup_pin(
    backup_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    fields = await web.posted(request, state)
    backup = await _owned_backup(state, backup_id, user)
    await backups_service.set_pinned(
        metadata=state.metadata, backup=backup, pinned=fields.get("pinned") == "true"
    )
    return web.see_other(f"/backups/{backup.id}")


@router.post("/backups/{backup_id}/delete")
async def backup_delete(
    backup_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    await web.posted(request, state)
    backup = await _owned_backup(state, backup_id, user)
    await backups_service.delete_backup(
        metadata=state.metadata,
        queue=state.queue,
        copy_store=state.copy_store,
        backup=backup,
    )
    if backup.database_id is None:
        return web.see_other("/")
    return web.see_other(f"/databases/{backup.database_id}")


# --------------------------------------------------------------------------- restores


async def _restore_targets(state: AppState, user: Principal, db_type: str) -> list[Any]:
    views_ = await databases_service.list_databases(
        metadata=state.metadata, user=user, limit=state.settings.max_page_size, offset=0
    )
    return [v.record for v in views_ if v.record.type == db_type]


@router.get("/backups/{backup_id}/restore")
async def restore_form(
    backup_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    backup = await _backup_dict(state, backup_id, user)
    targets = await _restore_targets(state, user, backup["db_type"])
    return web.render(request, "restore_new.html", {"backup": backup, "targets": targets})


@router.post("/backups/{backup_id}/restore")
async def restore_start(
    backup_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    fields = await web.posted(request, state)
    backup = await _owned_backup(state, backup_id, user)
    target_id = web.integer("database_id", fields.get("database_id", ""))
    target = await _owned_database(state, target_id, user)
    confirm = fields.get("confirm", "")
    # The dashboard asks every restore to be confirmed by the target's name, not only one
    # over the backup's own source: a click must never overwrite a database by mistake.
    if confirm != target.db_name:
        raise BadRequest(CONFIRM_MISMATCH.format(name=target.db_name))
    data = web.model(
        RestoreCreate,
        {"database_id": target.id, "confirm": confirm, "identity": fields.get("identity") or None},
    )
    restore = await restores_service.create_restore(
        metadata=state.metadata,
        settings=state.settings,
        storage=state.storage,
        queue=state.queue,
        user=user,
        backup=backup,
        target_id=target.id,
        copy_store=state.copy_store,
        keys=state.keys,
        identities=state.restore_identities,
        confirm=confirm,
        backup_target_first=fields.get("backup_target_first") == "on",
        # Held in memory for this restore only, as the API does; never shown again.
        identity=data.identity,
    )
    return web.see_other(f"/restores/{restore.id}")


async def _restore_dict(state: AppState, restore_id: int, user: Principal) -> dict[str, Any]:
    restore = await state.metadata.read(lambda c: load_owned(c, RESTORE, restore_id, user))
    return restores_service.to_public(restore, state.progress).model_dump(mode="json")


@router.get("/restores/{restore_id}")
async def restore_page(
    restore_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    restore = await _restore_dict(state, restore_id, user)
    return web.render(request, "restore.html", {"restore": restore})


@router.get("/restores/{restore_id}/status")
async def restore_status(
    restore_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    restore = await _restore_dict(state, restore_id, user)
    return web.render(request, "_restore_status.html", {"restore": restore})


# --------------------------------------------------------------------------- storages, users


STORAGE_FIELDS = ("name", "endpoint", "region", "bucket", "prefix", "access_key_id")


@router.get("/storages")
async def storages_page(request: Request, state: StateDep, user: Principal = User) -> Response:
    storages = await storages_service.list_storages(
        metadata=state.metadata, user=user, limit=state.settings.max_page_size, offset=0
    )
    return web.render(request, "storages.html", {"storages": storages, "values": {}})


@router.post("/storages")
async def storage_create(request: Request, state: StateDep, user: Principal = User) -> Response:
    fields = await web.posted(request, state)
    values: dict[str, Any] = {name: fields[name] for name in STORAGE_FIELDS if fields.get(name)}
    secret = fields.get("secret_access_key", "")
    try:
        data = web.model(StorageCreate, {**values, "secret_access_key": secret})
        await storages_service.create_storage(
            metadata=state.metadata, keys=state.keys, owner=user, data=data
        )
    except AppError as exc:
        storages = await storages_service.list_storages(
            metadata=state.metadata, user=user, limit=state.settings.max_page_size, offset=0
        )
        context = {"storages": storages, "values": values, "error": exc.message}
        return web.render(request, "storages.html", context, exc.status_code)
    return web.see_other("/storages")


async def _owned_storage(state: AppState, storage_id: int, user: Principal) -> Any:
    return await state.metadata.read(lambda c: load_owned(c, STORAGE, storage_id, user))


@router.post("/storages/{storage_id}/test")
async def storage_test(
    storage_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    """Write, read back and delete a probe object, as ``POST /api/storages/{id}/test``."""
    await web.posted(request, state)
    storage = await _owned_storage(state, storage_id, user)
    result = await storagetests.run_storage_test(
        settings=state.settings,
        metadata=state.metadata,
        keys=state.keys,
        limiter=state.connection_tests,
        caller=user,
        storage=storage,
    )
    storages = await storages_service.list_storages(
        metadata=state.metadata, user=user, limit=state.settings.max_page_size, offset=0
    )
    context = {"storages": storages, "values": {}, "tested": storage, "test": result}
    return web.render(request, "storages.html", context)


@router.get("/storages/{storage_id}/edit")
async def storage_edit_form(
    storage_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    storage = await _owned_storage(state, storage_id, user)
    # Never the secret key: its field stays empty, meaning "unchanged".
    values = {name: storage._mapping[name] for name in STORAGE_FIELDS}
    return web.render(request, "storage_edit.html", {"storage": storage, "values": values})


@router.post("/storages/{storage_id}/edit")
async def storage_edit(
    storage_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    fields = await web.posted(request, state)
    storage = await _owned_storage(state, storage_id, user)
    values: dict[str, Any] = {name: fields.get(name, "") for name in STORAGE_FIELDS}
    changes = dict(values)
    if fields.get("secret_access_key"):
        changes["secret_access_key"] = fields["secret_access_key"]
    try:
        await storages_service.update_storage(
            metadata=state.metadata,
            keys=state.keys,
            storage=storage,
            data=web.model(StorageUpdate, changes),
        )
    except AppError as exc:
        context = {"storage": storage, "values": values, "error": exc.message}
        return web.render(request, "storage_edit.html", context, exc.status_code)
    return web.see_other("/storages")


@router.post("/storages/{storage_id}/delete")
async def storage_delete(
    storage_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    await web.posted(request, state)
    storage = await _owned_storage(state, storage_id, user)
    await storages_service.delete_storage(metadata=state.metadata, storage=storage)
    return web.see_other("/storages")


def _admin_only(user: Principal) -> None:
    if not user.is_admin:
        raise Forbidden(ADMIN_ONLY)


@router.get("/users")
async def users_page(request: Request, state: StateDep, user: Principal = User) -> Response:
    _admin_only(user)
    accounts = await users_service.list_users(
        metadata=state.metadata, limit=state.settings.max_page_size, offset=0
    )
    return web.render(request, "users.html", {"accounts": accounts})


@router.post("/users/{user_id}/role")
async def user_role(
    user_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    fields = await web.posted(request, state)
    _admin_only(user)
    data = web.model(UserRoleUpdate, {"role": fields.get("role", "")})
    await users_service.set_role(
        metadata=state.metadata, principals=state.principals, user_id=user_id, role=data.role
    )
    return web.see_other("/users")


@router.post("/users/{user_id}/delete")
async def user_delete(
    user_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    """An account and everything it owns, as ``DELETE /api/users/{id}`` (never one's own)."""
    await web.posted(request, state)
    _admin_only(user)
    account = await users_service.get_user(metadata=state.metadata, user_id=user_id)
    users_service.ensure_not_self(user, account)
    await admin_service.delete_user(
        metadata=state.metadata,
        copy_store=state.copy_store,
        queue=state.queue,
        principals=state.principals,
        user=account,
    )
    return web.see_other("/users")


# --------------------------------------------------------------------------- notifications


async def _owned_channel(state: AppState, channel_id: int, user: Principal) -> Any:
    return await state.metadata.read(lambda c: load_owned(c, NOTIFICATION, channel_id, user))


async def _channels_context(state: AppState, user: Principal) -> dict[str, Any]:
    channels = await notifications_service.list_channels(
        metadata=state.metadata, user=user, limit=state.settings.max_page_size, offset=0
    )
    owners: dict[int, str] = {}
    if user.is_admin:
        # An admin's list has everyone's channels: each says whose it is.
        accounts = await users_service.list_users(
            metadata=state.metadata, limit=state.settings.max_page_size, offset=0
        )
        owners = {account.id: account.email for account in accounts}
    return {
        "channels": [notifications_service.to_public(c) for c in channels],
        "owners": owners,
        "event_types": EVENT_TYPES,
        "values": {"type": "webhook", "events": list(EVENT_TYPES), "scope": "own"},
    }


def _channel_fields(form: FormData, fields: Mapping[str, str]) -> dict[str, Any]:
    """The create and edit forms' fields as the API's bodies say them (never the URL)."""
    return {
        "name": fields.get("name", ""),
        "events": [e for e in form.getlist("events") if isinstance(e, str)],
        "scope": fields.get("scope", "own") or "own",
        "enabled": fields.get("enabled") == "on",
    }


@router.get("/notifications")
async def notifications_page(request: Request, state: StateDep, user: Principal = User) -> Response:
    return web.render(request, "notifications.html", await _channels_context(state, user))


@router.post("/notifications")
async def notification_create(
    request: Request, state: StateDep, user: Principal = User
) -> Response:
    fields = await web.posted(request, state)
    values = {**_channel_fields(await request.form(), fields), "type": fields.get("type", "")}
    try:
        data = web.model(NotificationCreate, {**values, "url": fields.get("url", "")})
        channel, secret = await notifications_service.create_channel(
            settings=state.settings,
            metadata=state.metadata,
            keys=state.keys,
            owner=user,
            data=data,
        )
    except AppError as exc:
        # The URL may carry a token: it is never written back into the form.
        context = {**await _channels_context(state, user), "values": values, "error": exc.message}
        return web.render(request, "notifications.html", context, exc.status_code)
    audit.record(
        audit.NOTIFICATION_CREATE,
        audit.SUCCESS,
        target_type=audit.NOTIFICATION,
        target_id=channel.id,
        channel_type=channel.type,
    )
    # The webhook's signing secret, this once: the page is not a redirect so that it is
    # shown, and nothing stores it for a later page.
    context = {
        **await _channels_context(state, user),
        "created": notifications_service.to_public(channel),
        "secret": secret,
    }
    return web.render(request, "notifications.html", context, 201)


async def _channel_context(
    state: AppState, channel: Any, values: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    public = notifications_service.to_public(channel)
    attempts = await notifications_service.list_attempts(
        metadata=state.metadata, channel=channel, limit=PAGE_ROWS, offset=0
    )
    if values is None:
        values = {
            "name": public.name,
            "events": public.events,
            "scope": public.scope.value,
            "enabled": public.enabled,
        }
    return {
        "channel": public,
        "attempts": attempts,
        "event_types": EVENT_TYPES,
        "values": values,
    }


@router.get("/notifications/{channel_id}")
async def notification_page(
    channel_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    channel = await _owned_channel(state, channel_id, user)
    return web.render(request, "notification.html", await _channel_context(state, channel))


@router.post("/notifications/{channel_id}/edit")
async def notification_edit(
    channel_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    fields = await web.posted(request, state)
    channel = await _owned_channel(state, channel_id, user)
    values = _channel_fields(await request.form(), fields)
    changes = dict(values)
    # An empty URL field keeps the stored URL, which is never sent to the browser.
    if fields.get("url"):
        changes["url"] = fields["url"]
    try:
        await _update_channel(state, channel, web.model(NotificationUpdate, changes))
    except AppError as exc:
        context = await _channel_context(state, channel, values)
        return web.render(
            request, "notification.html", {**context, "error": exc.message}, exc.status_code
        )
    return web.see_other(f"/notifications/{channel.id}")


async def _update_channel(state: AppState, channel: Any, data: NotificationUpdate) -> None:
    await notifications_service.update_channel(
        settings=state.settings,
        metadata=state.metadata,
        keys=state.keys,
        channel=channel,
        data=data,
    )
    audit.record(
        audit.NOTIFICATION_UPDATE,
        audit.SUCCESS,
        target_type=audit.NOTIFICATION,
        target_id=channel.id,
        fields=sorted(data.model_fields_set),
    )


@router.post("/notifications/{channel_id}/enabled")
async def notification_enabled(
    channel_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    fields = await web.posted(request, state)
    channel = await _owned_channel(state, channel_id, user)
    enabled = fields.get("enabled") == "true"
    await _update_channel(state, channel, web.model(NotificationUpdate, {"enabled": enabled}))
    return web.see_other("/notifications")


@router.post("/notifications/{channel_id}/delete")
async def notification_delete(
    channel_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    await web.posted(request, state)
    channel = await _owned_channel(state, channel_id, user)
    await notifications_service.delete_channel(metadata=state.metadata, channel=channel)
    audit.record(
        audit.NOTIFICATION_DELETE,
        audit.SUCCESS,
        target_type=audit.NOTIFICATION,
        target_id=channel.id,
    )
    return web.see_other("/notifications")


@router.post("/notifications/{channel_id}/test")
async def notification_test(
    channel_id: IdPath, request: Request, state: StateDep, user: Principal = User
) -> Response:
    """Send a ``test`` event now, as ``POST /api/notifications/{id}/test``, and show what
    the receiver answered on the channel's page."""
    await web.posted(request, state)
    channel = await _owned_channel(state, channel_id, user)
    result = await notifications_service.test_channel(
        notifier=state.notifier,
        metadata=state.metadata,
        limiter=state.connection_tests,
        caller=user,
        channel=channel,
    )
    context = await _channel_context(state, channel)
    return web.render(request, "notification.html", {**context, "test": result})


# --------------------------------------------------------------------------- audit

AUDIT_FILTERS = ("user_id", "action", "since", "until")


def _instant(name: str, raw: str) -> datetime | None:
    """A bound typed in a ``datetime-local`` field (read as UTC, as the API reads one
    without an offset)."""
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"Données invalides: {name}: date et heure attendues") from None


@router.get("/audit")
async def audit_page(request: Request, state: StateDep, user: Principal = User) -> Response:
    _admin_only(user)
    query = request.query_params
    filters = {name: query.get(name, "").strip() for name in AUDIT_FILTERS}
    page = web.integer("page", query.get("page") or "1")
    user_id = web.integer("user_id", filters["user_id"]) if filters["user_id"] else None
    if not 1 <= page <= MAX_ID // PAGE_ROWS:
        raise BadRequest("Données invalides: page: hors limites")
    if user_id is not None and not 1 <= user_id <= MAX_ID:
        raise BadRequest("Données invalides: user_id: hors limites")
    action = filters["action"] or None
    if action is not None and not AUDIT_ACTION.fullmatch(action):
        raise BadRequest("Données invalides: action: lettres minuscules et « _ » seulement")
    # One more row than shown says whether a next page exists.
    entries = await audit_service.list_entries(
        metadata=state.metadata,
        writer=state.audit,
        user_id=user_id,
        action=action,
        since=_instant("since", filters["since"]),
        until=_instant("until", filters["until"]),
        limit=PAGE_ROWS + 1,
        offset=(page - 1) * PAGE_ROWS,
    )
    accounts = await users_service.list_users(
        metadata=state.metadata, limit=state.settings.max_page_size, offset=0
    )
    kept = {name: value for name, value in filters.items() if value}
    context = {
        "entries": entries[:PAGE_ROWS],
        "accounts": accounts,
        "emails": {account.id: account.email for account in accounts},
        "filters": filters,
        "page": page,
        "previous": urlencode({**kept, "page": page - 1}) if page > 1 else None,
        "next": urlencode({**kept, "page": page + 1}) if len(entries) > PAGE_ROWS else None,
        "details": lambda entry: json.dumps(entry.details, ensure_ascii=False, sort_keys=True),
    }
    return web.render(request, "audit.html", context)
