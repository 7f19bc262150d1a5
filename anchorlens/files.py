"""Writing files safely: atomic writes, an exclusive file lock, sha256 hashes.

Shared by the model cache (`anchorlens.models`), the result store (`anchorlens.runs`), figures and β files.
Every file is written to a temporary file in its folder and renamed over the target: a symlink planted in
the folder is replaced, never followed, and no reader sees half a file. Errors a user can act on (a file in
the way, a folder that cannot be written) are one-line `InvalidConfigError`s naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from anchorlens.errors import InvalidConfigError


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _unwritable(path: Path, error: OSError) -> InvalidConfigError:
    reason = os.strerror(error.errno) if error.errno else str(error)
    return InvalidConfigError(
        f"cannot write {path} ({reason.lower()}); choose a writable --out folder (results already there can still "
        "be read)"
    )


def ensure_folder(folder: Path) -> None:
    """Create `folder` (and parents), with a one-line error when a file is in the way or it cannot be made."""
    for parent in [folder, *folder.parents]:
        if parent.exists() and not parent.is_dir():
            raise InvalidConfigError(f"output path {folder} lies below {parent}, which is a file; choose a folder")
        if parent.is_dir():
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InvalidConfigError(f"output path {folder} exists and is not a folder; choose a folder") from None
    except OSError as error:
        raise _unwritable(folder, error) from None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`.

    A symlink at `path` is replaced by the file, never followed; a reader sees the old or the new file whole.
    """
    path = Path(path)
    ensure_folder(path.parent)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _unwritable(path, error) from None
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; results are for everyone who may read them
        os.replace(temporary, path)
    except OSError as error:
        raise _unwritable(path, error) from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_frame(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a CSV atomically (temporary file, then rename)."""
    atomic_write_text(path, frame.to_csv(index=False))


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, compression="zstd")
    return buffer.getvalue()


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a parquet file atomically (zstd-compressed)."""
    atomic_write_bytes(path, parquet_bytes(frame))


def bytes_sha256(data: bytes) -> str:
    """Hex sha256 of bytes in memory."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 4 MiB blocks (model weights do not fit in memory twice)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path`, created if missing, opened without following a symlink and never truncated.

    The lock file is removed on release, so a finished run leaves none behind. Removing it is safe against a
    second process waiting on the same file: a waiter that gets the lock checks that `path` still names the file
    it locked, and opens the new one if the holder removed it meanwhile (the usual flock-and-unlink protocol).
    """
    ensure_folder(path.parent)
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise InvalidConfigError(
                    f"{path} is a symbolic link; anchorlens does not follow links in its output folders. Remove it"
                ) from None
            raise _unwritable(path, error) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except BaseException:
            os.close(descriptor)
            raise
        if _still_names(path, descriptor):
            break
        os.close(descriptor)  # the holder removed the file we waited on: lock the current one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # a read-only folder keeps its lock file; the lock still works
            os.unlink(path)
        os.close(descriptor)  # closing releases the lock


def _still_names(path: Path, descriptor: int) -> bool:
    """Whether `path` is the file open as `descriptor` (not removed, nor replaced by another)."""
    try:
        named = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    opened = os.fstat(descriptor)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)
