"""The app of these tests: passphrase-encrypted backups use a cheap scrypt work factor
(production uses what ``age -p`` writes; ``age -d`` opens both)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from backup_api.config import Settings
from tests.support.apphelpers import running_app

FAST_LOG_N = 10


@pytest.fixture
async def app_client(
    settings_factory: Callable[..., Settings],
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(settings_factory(age_scrypt_log_n=FAST_LOG_N)) as pair:
        yield pair
