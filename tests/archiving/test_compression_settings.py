"""``COMPRESSION`` and ``COMPRESSION_LEVEL`` as a user sees them: the archive downloaded
through the API is compressed with that method, at that level."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

from tests.support.apphelpers import Api, make_settings, running_app, unique_name
from tests.support.sample_data import create_filled


def entry(archive: bytes) -> tuple[zipfile.ZipInfo, bytes, bytes]:
    """The archive's one entry: its header, its data as stored, and its content."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        (info,) = zipped.infolist()
        content = zipped.read(info)
    name_length, extra_length = struct.unpack_from("<HH", archive, info.header_offset + 26)
    start = info.header_offset + 30 + name_length + extra_length
    return info, archive[start : start + info.compress_size], content


async def backup_with(tmp_path: Path, server: Any, name: str, **compression: Any) -> bytes:
    settings = make_settings(tmp_path / "_".join(map(str, compression.values())), **compression)
    async with running_app(settings) as (_, client):
        api = await Api(client).signup()
        database = await api.add_database(server, name)
        backup = await api.wait_backup((await api.start_backup(database["id"]))["id"])
        assert backup["status"] == "completed", backup["error_msg"]
        response = await api.get(f"/api/backups/{backup['id']}/download")
        assert response.status_code == 200
        return response.content


async def test_compression_method_and_level_reach_the_archive(
    mysql_server: Any, tmp_path: Path
) -> None:
    # MySQL: its dumps of the same data are the same bytes (no random key, no date).
    name = unique_name("compress")
    create_filled(mysql_server, name)
    try:
        archives = {
            (method, level): await backup_with(
                tmp_path, mysql_server, name, compression=method, compression_level=level
            )
            for method, level in [("stored", 0), ("zlib", 1), ("zlib", 9), ("isal", 0), ("isal", 3)]
        }
    finally:
        mysql_server.drop_database(name)
    entries = {key: entry(archive) for key, archive in archives.items()}
    contents = {content for _, _, content in entries.values()}
    assert len(contents) == 1, "the same database dumped differently"
    (sql,) = contents

    info, data, _ = entries["stored", 0]
    assert info.compress_type == zipfile.ZIP_STORED
    assert data == sql
    for level in (1, 9):
        info, data, _ = entries["zlib", level]
        assert info.compress_type == zipfile.ZIP_DEFLATED
        # zlib's stream for a given input and level does not depend on how the input was
        # fed: the archive holds exactly that level's deflate stream.
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
        assert data == compressor.compress(sql) + compressor.flush(), f"not zlib level {level}"
    fast, small = entries["isal", 0], entries["isal", 3]
    assert fast[0].compress_type == small[0].compress_type == zipfile.ZIP_DEFLATED
    assert len(small[1]) < len(fast[1]) < len(sql), "ISA-L's levels make no difference"
