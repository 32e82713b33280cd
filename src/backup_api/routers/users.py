"""User management, for administrators only."""

from __future__ import annotations

from fastapi import APIRouter

from backup_api import audit
from backup_api.deps import AdminUser, IdPath, PageDep, StateDep
from backup_api.models import MessageResponse, UserItem, UserList, UserPublic, UserRoleUpdate
from backup_api.routers.responses import (
    ADMIN_ONLY,
    DELETE_SELF,
    LAST_ADMIN,
    USER_NOT_FOUND,
    errors,
)
from backup_api.services import admin as admin_service
from backup_api.services import users as users_service

router = APIRouter(prefix="/api/users", tags=["users (admin)"])


def _public(user: object) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)


@router.get("", response_model=UserList, summary="List accounts", responses=errors(ADMIN_ONLY))
async def list_users(_: AdminUser, state: StateDep, page: PageDep) -> UserList:
    """List every account."""
    users = await users_service.list_users(
        metadata=state.metadata, limit=page.limit, offset=page.offset
    )
    return UserList(users=[_public(u) for u in users])


@router.get(
    "/{user_id}",
    response_model=UserItem,
    summary="Get an account",
    responses=errors(ADMIN_ONLY, USER_NOT_FOUND),
)
async def get_user(user_id: IdPath, _: AdminUser, state: StateDep) -> UserItem:
    """One account."""
    return UserItem(
        user=_public(await users_service.get_user(metadata=state.metadata, user_id=user_id))
    )


@router.put(
    "/{user_id}/role",
    response_model=UserItem,
    summary="Change an account's role",
    responses=errors(ADMIN_ONLY, USER_NOT_FOUND, LAST_ADMIN),
)
async def set_role(
    user_id: IdPath, data: UserRoleUpdate, _: AdminUser, state: StateDep
) -> UserItem:
    """Change an account's role."""
    user = await users_service.set_role(
        metadata=state.metadata, principals=state.principals, user_id=user_id, role=data.role
    )
    audit.record(
        audit.USER_ROLE_CHANGE,
        audit.SUCCESS,
        target_type=audit.USER,
        target_id=user_id,
        role=data.role.value,
    )
    return UserItem(user=_public(user))


@router.delete(
    "/{user_id}",
    response_model=MessageResponse,
    summary="Delete an account",
    responses=errors(ADMIN_ONLY, USER_NOT_FOUND, DELETE_SELF),
)
async def delete_user(user_id: IdPath, admin: AdminUser, state: StateDep) -> MessageResponse:
    """Delete an account with its databases, backups (files included) and restores."""
    user = await users_service.get_user(metadata=state.metadata, user_id=user_id)
    users_service.ensure_not_self(admin, user)
    await admin_service.delete_user(
        metadata=state.metadata,
        copy_store=state.copy_store,
        queue=state.queue,
        principals=state.principals,
        user=user,
    )
    audit.record(audit.USER_DELETE, audit.SUCCESS, target_type=audit.USER, target_id=user_id)
    return MessageResponse(message="Utilisateur supprimé avec succès")
