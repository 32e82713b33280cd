"""OpenAPI documentation of the error responses, shared by every router.

A route names the errors particular to it (``errors(BACKUP_NOT_FOUND, ...)``): each is the
message the service really sends and when. The errors every route of a kind shares (invalid
parameters or body, missing token, unexpected failure) are added to the document from the
route's own parameters and security by ``backup_api.openapi``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import Response
from pydantic import BaseModel

from backup_api.exceptions import Conflict, Forbidden, NotFound, TooManyRequests
from backup_api.models import ErrorResponse


@dataclass(frozen=True)
class ErrorCase:
    """One documented error: its status, its real message, and when it is sent."""

    status: int
    message: str
    when: str


HEADLINES = {
    400: "Invalid request: the message names the field and the reason",
    401: "Not authenticated",
    403: "Refused to this account",
    404: "Not found",
    409: "Conflicts with the current state of the resource",
    429: "Too many requests; `Retry-After` says when to try again",
    502: "A storage holding what was asked for did not answer",
    500: "Unexpected error: the message carries a request id, the log has the details",
    503: "Unavailable",
    507: "Insufficient storage: the account's quota or the server's free-space reserve",
}

# Statuses named by number only get the service's default message for that status.
_DEFAULTS = {
    403: ErrorCase(403, Forbidden.default_message, "the action is not allowed to this account"),
    404: ErrorCase(404, NotFound.default_message, "no such resource"),
    409: ErrorCase(409, Conflict.default_message, "the resource's state does not allow it"),
    429: ErrorCase(429, TooManyRequests.default_message, "too many requests"),
}

# --- 400
UNSUPPORTED_TYPE = ErrorCase(
    400, "type de base de données non supporté: oracle", "`type` is not a supported engine"
)
INVALID_PORT = ErrorCase(
    400, "Données invalides: port: port invalide (1-65535)", "`port` is not a TCP port"
)
INVALID_EMAIL = ErrorCase(
    400, "Données invalides: email: adresse e-mail invalide", "`email` is not an e-mail address"
)
SHORT_PASSWORD = ErrorCase(
    400, "Données invalides: password: au moins 8 caractères", "`password` is too short"
)
MISSING_TARGET = ErrorCase(
    400,
    "Données invalides: database_id: champ requis (la base de données à restaurer, "
    'par exemple {"database_id": 1})',
    "no `database_id` names the target",
)
CONFIRM_REQUIRED = ErrorCase(
    409,
    "La base cible est la base d'origine de cette sauvegarde et sera écrasée; "
    'pour confirmer, envoyez {"database_id": 1, "confirm": "ma_base"}',
    "the target is the backup's own source and `confirm` does not hold its `db_name`",
)
TARGET_TYPE_MISMATCH = ErrorCase(
    400,
    "Données invalides: database_id: la base cible est de type mysql, "
    "la sauvegarde de type postgresql",
    "the target database is not of the backup's engine",
)
IDENTITY_REQUIRED = ErrorCase(
    400,
    "Données invalides: identity: requise pour cette sauvegarde, chiffrée pour des "
    "destinataires age (la clé secrète AGE-SECRET-KEY-1... de l'un d'eux)",
    "the backup is encrypted to age recipients and the body has no `identity`",
)
WRONG_IDENTITY = ErrorCase(
    400,
    "Identité age incorrecte: cette clé n'ouvre pas la sauvegarde (aucun de ses "
    "destinataires ne lui correspond); la base cible n'a pas été modifiée",
    "`identity` does not open the backup's file (checked before anything is queued)",
)
INVALID_RETENTION = ErrorCase(
    400,
    "Données invalides: keep_daily: valeur trop petite",
    "a count is not an integer from 0 to 10000, or `max_age_days` not from 1 to 36500",
)
INVALID_CRON = ErrorCase(
    400,
    "Données invalides: cron: cinq champs attendus (minute heure jour mois jour-de-semaine)",
    "`cron` is not five fields nor `@hourly`, `@daily`, `@weekly`, `@monthly` (or a field "
    "is out of range)",
)
INVALID_TIMEZONE = ErrorCase(
    400,
    "Données invalides: timezone: fuseau horaire IANA inconnu (par exemple Europe/Paris, UTC)",
    "`timezone` is not an IANA zone name",
)
INVALID_CHANNEL_URL = ErrorCase(
    400,
    "Données invalides: url: adresse non publique (privée, locale ou réservée) non "
    "autorisée: 127.0.0.1",
    "`url` is not an http(s) URL (webhook) or an apprise URL, or a non-admin's webhook "
    "resolves to an address that is not public and not in `BACKUP_API_ALLOWED_OUTBOUND_HOSTS`",
)
APPRISE_ADMIN_ONLY = ErrorCase(
    403,
    "Données invalides: url: les canaux apprise sont réservés aux administrateurs, sauf vers "
    "un hôte listé dans BACKUP_API_ALLOWED_OUTBOUND_HOSTS",
    "a non-admin's apprise URL names a host that `BACKUP_API_ALLOWED_OUTBOUND_HOSTS` does not list",
)
SCOPE_ADMIN_ONLY = ErrorCase(
    403,
    "Données invalides: scope: « all » est réservé aux canaux d'un administrateur",
    "`scope` is `all` and the channel's owner is not an admin",
)
SECRET_REQUIRED = ErrorCase(
    400,
    "Données invalides: secret_access_key: requis pour modifier endpoint",
    "`endpoint` or `bucket` changes without `secret_access_key`",
)
INVALID_ENDPOINT = ErrorCase(
    400,
    "Données invalides: endpoint: identifiants interdits dans l'URL: utilisez access_key_id",
    "`endpoint` is not an http(s) URL, or holds credentials, a query or a fragment",
)
NO_DESTINATION = ErrorCase(
    400,
    "Données invalides: keep_local: une sauvegarde doit avoir au moins une destination "
    "(keep_local ou storage_ids)",
    "`keep_local` is false and `storage_ids` is empty",
)
STORAGE_OWNER_MISMATCH = ErrorCase(
    400,
    "Données invalides: storage_ids: le stockage 3 n'appartient pas au propriétaire de la base",
    "an admin names a storage of another account than the database's owner",
)

# --- 403
OWNER_ONLY = ErrorCase(
    403, Forbidden.default_message, "the resource belongs to another account (admins reach all)"
)
ADMIN_ONLY = ErrorCase(403, "Action réservée aux administrateurs", "the caller is not an admin")
HOST_REFUSED = ErrorCase(
    403,
    "hôte non autorisé par la configuration: db.example.com",
    "`BACKUP_API_ALLOWED_DB_HOSTS` is set and `host` resolves outside it",
)
HOST_UNRESOLVED = ErrorCase(
    403,
    "hôte introuvable: db.example.com",
    "`BACKUP_API_ALLOWED_DB_HOSTS` is set and `host` does not resolve, so it cannot be checked",
)
REGISTRATION_CLOSED = ErrorCase(
    403,
    "Les inscriptions sont fermées",
    "`BACKUP_API_ALLOW_REGISTRATION` is false and the caller is not an admin",
)
ADMIN_ROLE_REFUSED = ErrorCase(
    403,
    "Seul un administrateur peut créer un compte administrateur",
    '`role` is "admin", the caller is not an admin and accounts already exist',
)
STORAGE_OF_ANOTHER = ErrorCase(
    403, Forbidden.default_message, "a storage in `storage_ids` belongs to another account"
)

# --- 404
DATABASE_NOT_FOUND = ErrorCase(404, "Base de données introuvable", "no database has this id")
BACKUP_NOT_FOUND = ErrorCase(404, "Sauvegarde introuvable", "no backup has this id")
RETENTION_NOT_FOUND = ErrorCase(
    404,
    "Aucune politique de rétention pour cette base de données",
    "the database has no retention policy (every backup is kept)",
)
STORAGE_NOT_FOUND = ErrorCase(404, "Stockage introuvable", "no storage has this id")
NOTIFICATION_NOT_FOUND = ErrorCase(
    404, "Canal de notification introuvable", "no notification channel has this id"
)
RESTORE_NOT_FOUND = ErrorCase(404, "Restauration introuvable", "no restore has this id")
USER_NOT_FOUND = ErrorCase(404, "Utilisateur introuvable", "no account has this id")
SCHEDULE_NOT_FOUND = ErrorCase(
    404, "Aucune planification pour cette base de données", "the database has no schedule"
)
TARGET_NOT_FOUND = ErrorCase(
    404, "Base de données cible introuvable", "no database has the target `database_id`"
)
BACKUP_FILE_MISSING = ErrorCase(
    404,
    "Fichier de sauvegarde introuvable",
    "the backup is completed but its file is gone from the backup root",
)

# --- 409
EMAIL_TAKEN = ErrorCase(
    409, "Un compte existe déjà avec cet email", "an account has this e-mail (in any case)"
)
BACKUP_NOT_COMPLETED = ErrorCase(
    409,
    "La sauvegarde n'est pas terminée (statut: pending)",
    "the backup's archive was never made (still `pending`, or `failed` with no copy)",
)
DATABASE_BUSY = ErrorCase(
    409,
    "Une sauvegarde ou restauration de cette base est en cours",
    "a connection field changes while a backup or restore of the database runs",
)
DATABASE_BUSY_DELETE = ErrorCase(
    409,
    "Impossible de supprimer la base: une sauvegarde ou restauration est en cours",
    "a backup or restore of the database runs",
)
STORAGE_IN_USE = ErrorCase(
    409,
    "Impossible de supprimer le stockage: des bases de données y envoient leurs sauvegardes "
    "(prod); retirez-le de leurs destinations",
    "databases still send their backups to the storage (named)",
)
STORAGE_HOLDS_COPIES = ErrorCase(
    409,
    "Impossible de supprimer le stockage: il contient encore des sauvegardes (3 copies); "
    "supprimez ces sauvegardes d'abord",
    "the storage still holds copies of backups (complete, or whose deletion failed)",
)
STORAGE_BEING_WRITTEN = ErrorCase(
    409,
    "Impossible de supprimer le stockage: une sauvegarde y écrit en ce moment",
    "a backup (or a retry of its copies) is writing to the storage",
)
COPIES_NOT_DELETED = ErrorCase(
    409,
    "Suppression incomplète: s3-prod: objet verrouillé jusqu'au 2026-12-31 00:00:00 UTC",
    "some copies could not be deleted: they stay `delete_failed` with the reason, the "
    "backup stays; a new deletion or `POST /api/backups/{id}/copies/retry` finishes it",
)
NO_COMPLETE_COPY = ErrorCase(
    409, "Aucune copie complète de cette sauvegarde", "no copy of the backup is complete"
)
COPY_NOT_COMPLETE = ErrorCase(
    409,
    "La copie sur s3-prod n'est pas complète (statut: failed)",
    "the copy asked for (`storage_id`) is not complete",
)
NO_SUCH_COPY = ErrorCase(
    404,
    "Aucune copie de cette sauvegarde sur ce stockage",
    "the backup has no copy on the storage asked for (`storage_id`)",
)
STORAGE_UNREACHABLE = ErrorCase(
    502,
    "Stockage distant indisponible: stockage injoignable",
    "the storage holding the copy did not answer (the reason follows)",
)
NOTHING_TO_RETRY = ErrorCase(
    409,
    "Aucune copie manquante à renvoyer",
    "every copy is complete, none is complete to send from, or a retry already runs",
)
RESTORE_RUNNING = ErrorCase(
    409,
    "Une restauration en cours ou en attente utilise cette sauvegarde",
    "a restore from this backup runs",
)
TARGET_BUSY = ErrorCase(
    409,
    "Une sauvegarde ou restauration de la base cible est déjà en cours",
    "a backup or restore of the target database runs",
)
LAST_ADMIN = ErrorCase(
    409, "Impossible de retirer le dernier administrateur", "the account is the last admin"
)
DELETE_SELF = ErrorCase(
    409,
    "Un administrateur ne peut pas se supprimer lui-même",
    "an admin tries to delete their own account",
)

# --- 429
LOGIN_THROTTLED = ErrorCase(
    429,
    TooManyRequests.default_message,
    "too many failed logins for this e-mail or from this address "
    "(`BACKUP_API_LOGIN_MAX_FAILURES` within `BACKUP_API_LOGIN_WINDOW_SECONDS`)",
)
JOBS_THROTTLED = ErrorCase(
    429,
    "Trop de sauvegardes et restaurations en cours pour cet utilisateur, réessayez plus tard",
    "the account already has `BACKUP_API_MAX_ACTIVE_BACKUPS_PER_USER` backups and restores pending",
)

CONNECTION_TESTS_THROTTLED = ErrorCase(
    429,
    "Trop de tests de connexion pour cet utilisateur, réessayez plus tard",
    "the account ran `BACKUP_API_CONNECTION_TESTS_PER_USER` connection tests within "
    "`BACKUP_API_CONNECTION_TESTS_WINDOW_SECONDS`",
)
STORAGE_TESTS_THROTTLED = ErrorCase(
    429,
    "Trop de tests de connexion pour cet utilisateur, réessayez plus tard",
    "the account ran `BACKUP_API_CONNECTION_TESTS_PER_USER` connection tests (of databases "
    "and storages together) within `BACKUP_API_CONNECTION_TESTS_WINDOW_SECONDS`",
)

# --- 507
QUOTA_REACHED = ErrorCase(
    507,
    "Quota de stockage atteint: vos sauvegardes occupent 1048576 octets sur 1048576 "
    "autorisés; supprimez-en pour en créer de nouvelles",
    "the account's completed backups fill `BACKUP_API_USER_QUOTA_BYTES`",
)
DISK_RESERVE_REACHED = ErrorCase(
    507,
    "Espace disque insuffisant sur le serveur de sauvegarde: aucune sauvegarde ne peut "
    "démarrer pour le moment, réessayez plus tard",
    "the backup root's free space is below `BACKUP_API_DISK_RESERVE_PERCENT`",
)


def errors(*cases: ErrorCase | int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: 400 and 500 always, plus the errors given.

    The route's shared errors (its parameters', its body's, a missing token's) are added
    when the document is built; see ``backup_api.openapi``.
    """
    by_status: dict[int, list[ErrorCase]] = {400: [], 500: []}
    for case in cases:
        if isinstance(case, int):
            by_status.setdefault(case, [])
        else:
            by_status.setdefault(case.status, []).append(case)
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(by_status):
        listed = by_status[status] or ([_DEFAULTS[status]] if status in _DEFAULTS else [])
        responses[status] = {
            "model": ErrorResponse,
            "description": HEADLINES[status],
            "content": {"application/json": {"examples": examples(listed)}},
        }
    return responses


def examples(cases: list[ErrorCase]) -> dict[str, dict[str, Any]]:
    """OpenAPI ``examples``: one per case, named after when it happens."""
    return {
        _slug(case.when): {"summary": case.when, "value": {"error": case.message}} for case in cases
    }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60]


# Kept for routes that only name statuses; prefer the cases above, which say when.
AUTHENTICATED = (401, 403)


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """The model serialized once; returned as is, FastAPI would validate it a second time
    (it matters on the hot listing routes)."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


# --- restore drills
DRILL_NOT_FOUND = ErrorCase(404, "Restauration d'essai introuvable", "no drill has this id")
DRILL_SCHEDULE_NOT_FOUND = ErrorCase(
    404,
    "Aucune restauration d'essai planifiée pour cette base de données",
    "the database has no drill set",
)
DRILL_NOT_SCRATCH = ErrorCase(
    409,
    'La base cible doit être une base d\'essai ("scratch": true), que le service écrase '
    "librement, et pas la base source",
    "the target is not marked `scratch` (or is the source itself)",
)
DRILL_TARGET_NOW_BACKED_UP = ErrorCase(
    409,
    "La base cible est, sur le même serveur (adresse, port, nom), une base sauvegardée: "
    "elle ne peut pas servir de base d'essai",
    "the scratch target is, by resolved address, port and name, a backed-up database",
)
DRILL_SOURCE_IS_SCRATCH = ErrorCase(
    409,
    "Une base d'essai (scratch) ne peut pas être la source d'une restauration d'essai",
    "the database is itself a scratch database",
)
DRILL_TARGET_BACKED_UP = ErrorCase(
    400,
    "Données invalides: scratch: cette base est, sur le même serveur (adresse, port, "
    "nom), une base sauvegardée: elle ne peut pas servir de base d'essai",
    "the scratch database is, by resolved address, port and name, a backed-up database",
)
DRILL_RECIPIENTS = ErrorCase(
    400,
    "Données invalides: les sauvegardes de cette base sont chiffrées pour des "
    "destinataires age: le service n'en détient pas l'identité et ne peut pas les "
    "restaurer sans vous (une phrase secrète, qu'il détient, le permet)",
    "the backups are encrypted to age recipients: the service cannot open them alone",
)
DRILL_MISSING_TARGET = ErrorCase(
    409,
    "Aucune restauration d'essai planifiée pour la base de cette sauvegarde: nommez la base "
    "d'essai où restaurer (target_database_id)",
    "no `target_database_id`, and the backup's database has no drill set",
)
DRILL_NO_COUNTS = ErrorCase(
    409,
    "Cette sauvegarde n'a pas de comptage des lignes par table (antérieure aux "
    "restaurations d'essai): rien à vérifier",
    "the backup was taken without row counts",
)
DRILL_TARGET_BUSY = ErrorCase(
    409,
    "Une sauvegarde, restauration ou restauration d'essai de la base cible est en cours",
    "a job on the target database is queued or runs",
)
SCRATCH_CONFIRM_REQUIRED = ErrorCase(
    400,
    "Données invalides: confirm: requis pour marquer la base comme base d'essai "
    "(scratch: le service l'écrasera librement): envoyez son db_name",
    "`scratch: true` without `confirm` holding the database's `db_name`",
)

#: The documentation of an event stream's 200 answer.
EVENT_STREAM = {
    # One event (OpenAPI before 3.2 has an event stream's schema describe each event).
    "content": {
        "text/event-stream": {
            "schema": {
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"type": "string", "enum": ["progress", "done", "error"]},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "description": "The job's document, as its `GET` answers it "
                        '(`{"backup": {...}}`, `{"restore": {...}}`); `{"error": ...}` '
                        "for an `error` event",
                    },
                },
            }
        }
    },
    "description": "Server-Sent Events: `progress` (the job's document, as its `GET` "
    "answers it) at least once a second while it is pending, then `done` (the final "
    'record), and the stream ends; `error` (`{"error": ...}`) if the job is deleted '
    "meanwhile",
}
