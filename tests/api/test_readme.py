"""The README's curl examples, run as a reader pastes them (with bash, in order) against a
real service process and the suite's PostgreSQL: every command succeeds, and the flow ends
with a completed backup restored into the second database."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx

from backup_api.config import Settings
from tests.support.apphelpers import unique_name
from tests.support.sample_data import create_filled, snapshot
from tests.support.serverproc import server_process
from tests.support.servers.s3 import S3Server

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.M | re.S)
# Under `set -e`, a curl that gets an HTTP error fails the script (and still shows the body).
PRELUDE = """set -eu
curl() { command curl --silent --show-error --fail-with-body "$@"; }
"""


def readme_blocks() -> list[str]:
    """The README's bash blocks that call the API (the others start scripts)."""
    return [block for block in BLOCK.findall((ROOT / "README.md").read_text()) if "curl" in block]


def test_every_curl_command_of_the_readme_is_run() -> None:
    blocks = readme_blocks()
    assert blocks
    commands = [
        line
        for line in (ROOT / "README.md").read_text().splitlines()
        if re.match(r"\s*(?:[A-Z]+=\$\()?curl ", line)
    ]
    assert len(commands) >= 15
    for line in commands:
        assert any(line in block for block in blocks), line


def _bash_single_quoted_json(value: str) -> str:
    """``value`` as it must appear inside a JSON string inside bash single quotes."""
    return json.dumps(value)[1:-1].replace("'", "'\\''")


def test_readme_flow_backs_up_and_restores(
    pg_server: Any, s3_server: S3Server, tmp_path: Path
) -> None:
    source, target = unique_name("readme_src"), unique_name("readme_dst")
    scratch = unique_name("readme_scratch")
    expected = create_filled(pg_server, source)
    pg_server.create_database(target)
    pg_server.create_database(scratch)
    try:
        (tmp_path / "service").mkdir()
        bucket = s3_server.make_bucket()
        with server_process(
            tmp_path / "service",
            allowed_db_hosts=pg_server.host,
            allowed_outbound_hosts="127.0.0.1",
            metrics_token="un-long-jeton-aleatoire",
        ) as server:
            server.start()
            # The admin the README's audit example logs in as, made as it says.
            subprocess.run(
                [sys.executable, "-m", "backup_api.cli", "create-admin", "admin@example.com"],
                env={**server.env, "BACKUP_API_ADMIN_PASSWORD": "motdepasse-admin"},
                capture_output=True,
                check=True,
                timeout=60,
            )
            # The README's conventions, each replaced by the suite's value.
            replacements = {
                "http://localhost:3000": server.url,
                '"host": "localhost"': f'"host": "{pg_server.host}"',
                '"port": "5432"': f'"port": "{pg_server.port}"',
                '"username": "postgres"': f'"username": "{pg_server.user}"',
                '"password": "motdepasse"': (
                    f'"password": "{_bash_single_quoted_json(pg_server.password)}"'
                ),
                "ma_base_de_donnees": source,
                "ma_base_restauree": target,
                "ma_base_essai": scratch,
                # The storage: the suite's S3 server (path-style on its local address).
                "https://s3.eu-west-3.amazonaws.com": s3_server.endpoint,
                '"region": "eu-west-3"': f'"region": "{s3_server.region}"',
                "acme-backups": bucket,
                "AKIAEXAMPLE": s3_server.access_key_id,
                "cle-secrete": _bash_single_quoted_json(s3_server.secret_access_key),
                '"path_style": false': '"path_style": true',
                # Notification targets: a local port nothing listens on (listed above).
                "https://hooks.example.com": "http://127.0.0.1:9",
                "https://hc-ping.com": "http://127.0.0.1:9",
            }
            script = "\n".join(readme_blocks())
            for convention, value in replacements.items():
                assert convention in script, convention
                script = script.replace(convention, value)
            # Nothing left pointing at a database service this test does not own.
            assert not re.search(r"localhost|5432|3306", script), script
            workdir = tmp_path / "reader"
            workdir.mkdir()
            result = subprocess.run(
                ["bash", "-c", PRELUDE + script],
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
            assert "error" not in result.stderr.lower(), result.stderr

            with httpx.Client(base_url=server.url, timeout=10) as client:
                login = {"email": "user@example.com", "password": "motdepasse123"}
                token = client.post("/auth/login", json=login).json()["token"]
                headers = {"Authorization": f"Bearer {token}"}
                restores = client.get("/api/restores", headers=headers).json()["restores"]
                drills = client.get("/api/drills", headers=headers).json()["drills"]
                databases = client.get("/api/databases", headers=headers).json()["databases"]
        assert restores, "the README restores nothing"
        assert {r["status"] for r in restores} == {"completed"}, restores
        # The drill proved backup 2 into the scratch database, table by table.
        assert [(d["backup_id"], d["status"]) for d in drills] == [(2, "passed")], drills
        assert {t["name"] for t in drills[0]["tables"]} == {"public.items", "public.notes"}
        # Each database the README restored into (and still lists) holds the source's data.
        names = {d["id"]: d["db_name"] for d in databases}
        restored = [names[r["database_id"]] for r in restores if r["database_id"] in names]
        assert restored, (restores, databases)
        for name in restored:
            assert snapshot(pg_server, name) == expected, name
        assert snapshot(pg_server, source) == expected
        with zipfile.ZipFile(workdir / "ma_sauvegarde.zip") as archive:
            names = archive.namelist()
            assert archive.testzip() is None
        assert len(names) == 1
        assert names[0].startswith(source)
        assert names[0].endswith(".sql")
        # The copy downloaded from the bucket is the archive the bucket holds.
        downloaded = (workdir / "copie_s3.zip").read_bytes()
        [key] = [k for k in s3_server.keys(bucket) if k.endswith(".zip")]
        assert s3_server.object_bytes(bucket, key) == downloaded
    finally:
        pg_server.drop_database(source)
        pg_server.drop_database(target)
        pg_server.drop_database(scratch)


def configuration_table() -> list[tuple[list[str], list[str]]]:
    """The README's configuration rows: the settings each names, and its default column's
    backquoted values."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows.append((re.findall(r"`([A-Z_]+)`", cells[0]), re.findall(r"`([^`]*)`", cells[1])))
    return rows


def _as_written(value: Any) -> str:
    """A default as the README writes it (``true``, ``10``, ``db/backups``)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_the_configuration_table_matches_the_settings() -> None:
    """Every setting is in the README's table, nothing else is, and every default the
    table writes as a plain value is the code's."""
    rows = configuration_table()
    listed = [name.lower() for names, _ in rows for name in names]
    assert sorted(listed) == sorted(Settings.model_fields), "README table vs config.py"
    for names, defaults in rows:
        if len(defaults) != len(names):
            continue  # a default in words ("number of cores", "generated into jwt.key")
        for name, written in zip(names, defaults, strict=True):
            field = Settings.model_fields[name.lower()]
            if field.default is None or field.default_factory is not None:
                continue  # computed at start, described in words beside its example
            assert written == _as_written(field.default), name
