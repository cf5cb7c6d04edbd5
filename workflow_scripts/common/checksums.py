"""SHA-256 of files: content hashes of audio at ingestion, and checksum records of model files.

A model file (or directory) of a run is written with a checksum record beside it, in the format of
``sha256sum`` (``<hex>  <name>`` per line, so ``sha256sum -c`` checks it too):

* a file ``F``: the record ``F.sha256`` (a declared output of the rule that writes ``F``);
* a directory ``D``: the record ``D/SHA256SUMS``, one line per file under ``D``.

:func:`verify_checksum` refuses a file whose bytes no longer match its record (changed, replaced or
truncated after it was written), or that has no record, naming the file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workflow_scripts.common.files import atomic_path, write_json
from workflow_scripts.common.paths import CHECKSUM_DIRECTORY_RECORD as DIRECTORY_RECORD
from workflow_scripts.common.paths import SNAKEMAKE_DIRECTORY_FLAGS, checksum_of

CHUNK_BYTES = 1 << 20


class ChecksumError(ValueError):
    """A file that does not match its checksum record, or has none; the message names the file."""


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of the file's bytes, as 64 hex digits (read in chunks: no decoding, little memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_record(path: str | os.PathLike) -> Path:
    """Where the checksum record of a file (``<file>.sha256``) or a directory (``<dir>/SHA256SUMS``) is."""
    path = Path(path)
    return path / DIRECTORY_RECORD if path.is_dir() else Path(checksum_of(str(path)))


def _directory_files(directory: Path) -> list[Path]:
    """The files a directory's record lists: all but the record and Snakemake's flag files."""
    skipped = {DIRECTORY_RECORD, *SNAKEMAKE_DIRECTORY_FLAGS}
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name not in skipped)


def record_checksum(path: str | os.PathLike) -> Path:
    """Write the checksum record of ``path`` (a file, or every file under a directory), atomically."""
    path = Path(path)
    if path.is_dir():
        lines = [f"{sha256_file(f)}  {f.relative_to(path).as_posix()}" for f in _directory_files(path)]
    else:
        lines = [f"{sha256_file(path)}  {path.name}"]
    record = checksum_record(path)
    with atomic_path(record) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return record


def write_checked(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` the file ``path`` atomically (common/files.atomic_path), then its checksum record."""
    with atomic_path(path) as tmp:
        write(tmp)
    record_checksum(path)


def write_checked_json(path: str | os.PathLike, payload: Any) -> None:
    """:func:`common.files.write_json` and the checksum record of the file (an artifact predict reads)."""
    write_json(path, payload)
    record_checksum(path)


def _read_record(record: Path, path: Path) -> dict[str, str]:
    if not record.is_file():
        raise ChecksumError(
            f"{path}: no checksum record ({record}); predict loads only model files whose SHA-256 was recorded "
            "when the workflow wrote them: rebuild the run with this version of the workflow"
        )
    recorded = {}
    for number, line in enumerate(record.read_text(encoding="utf-8").splitlines(), start=1):
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise ChecksumError(f"{record}, line {number}: expected '<64 hex digits>  <file name>', got {line!r}")
        recorded[name] = digest
    return recorded


def verify_checksum(path: str | os.PathLike) -> None:
    """Check ``path`` (a file or a directory) against the checksum record written with it.

    Raises :class:`ChecksumError` naming the file that is missing, extra, changed or truncated.
    """
    path = Path(path)
    if not path.exists():
        raise ChecksumError(f"{path}: not found")
    record = checksum_record(path)
    recorded = _read_record(record, path)
    if path.is_dir():
        found = {f.relative_to(path).as_posix(): f for f in _directory_files(path)}
    else:
        found = {path.name: path}
    for name in sorted(set(recorded) | set(found)):
        if name not in found:
            raise ChecksumError(f"{path / name}: listed in {record} but missing")
        if name not in recorded:
            raise ChecksumError(f"{found[name]}: not listed in {record} (a file added after the run wrote it)")
        actual = sha256_file(found[name])
        if actual != recorded[name]:
            raise ChecksumError(
                f"{found[name]}: SHA-256 {actual[:16]}... differs from the {recorded[name][:16]}... recorded in "
                f"{record} when it was written ({os.path.getsize(found[name])} bytes now): the file was changed, "
                "replaced or truncated; refusing to load it (rebuild it with the workflow)"
            )
