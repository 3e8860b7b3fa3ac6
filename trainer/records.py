"""Crash-safe outputs: the run table ``OUT/runs.csv`` and per-run metadata JSON.

Protocol that keeps ``runs.csv`` free of lost or duplicated rows across a crash:

1. Evaluation rows are appended (one ``write`` per evaluation, then ``fsync``) under
   an exclusive lock on ``runs.csv.lock``, so several processes (``sweep --shard``)
   can share one output folder.
2. Every ``checkpoint_every`` steps the checkpoint is written *after* the rows of its
   step were appended. A checkpoint at step k therefore implies that every row with
   step <= k is on disk.
3. When a run (re)starts from the checkpoint at step k (k = 0 without one), its rows
   with step > k are removed by an atomic rewrite of the table; the deterministic
   run then writes them again.

A line cut short by a crash during an append is dropped before the next append or
rewrite (it always belongs to a step past its run's checkpoint). Whole-file writes go
to a temporary file in the same folder, are flushed to disk and moved into place with
``os.replace``. ``OSError(ENOSPC)`` becomes :class:`~.config.DiskFullError`.

A run is trained by one process at a time: :func:`run_lock` holds ``flock`` on
``OUT/locks/<run>.lock`` (without fcntl, on Windows, there is no lock: one writer per
output folder). Tables written by earlier versions (:data:`LAYOUTS`: before
``vocab_size``, before the schedule columns, before ``micro_batch_tokens``) keep their
layout: rows appended to them leave the newer columns out.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from .config import DiskFullError, RunBusyError, TrainerError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one writer per output folder.
    fcntl = None

RUN_TABLE = "runs.csv"
COLUMNS = (
    "run",
    "params",
    "batch_tokens",
    "step",
    "loss",
    "tokens",
    "split",
    "lr",
    "seed",
    "params_total",
    "context",
    "schedule",
    "warmup_steps",
    "micro_batch_tokens",
    "learning_rate",
    "final_lr_fraction",
    "decay_fraction",
    "total_steps",
    "vocab_size",
)
#: Every header this trainer has written, newest first: today's, the one before
#: vocab_size, the one before the schedule columns (learning_rate ... total_steps), the
#: one before micro_batch_tokens. Tables with an older header are still appended to, in
#: their own layout.
LAYOUTS = (COLUMNS, COLUMNS[:-1], COLUMNS[:-5], COLUMNS[:-6])
LOCK_DIR = "locks"
FINAL_STATUSES = ("finished", "diverged")
# Permissions of files written atomically (mkstemp would leave them private, 0600).
FILE_MODE = 0o644


@contextlib.contextmanager
def disk_errors(path: Path) -> Iterator[None]:
    """Turn ``OSError(ENOSPC)`` raised inside the block into :class:`DiskFullError`."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(
                f"no space left on device while writing {path}; free disk space or choose another --out"
            ) from exc
        raise


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Atomically create or replace ``path`` with what ``write(handle)`` writes.

    Writes to a temporary file in the same folder, flushes it to disk, then
    ``os.replace``-s it over ``path``; a crash leaves the old file or the new one,
    never a mixture.
    """
    path = Path(path)
    with disk_errors(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.chmod(tmp, FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Atomically write ``data`` to ``path`` (see :func:`atomic_write`)."""
    atomic_write(path, lambda handle: handle.write(data))


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Atomically write ``record`` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(record, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when the file does not exist."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TrainerError(f"{path} is not valid JSON ({exc}); delete it to restart that run") from exc


@contextlib.contextmanager
def table_lock(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``OUT/runs.csv.lock`` (no-op without fcntl)."""
    lock_path = Path(out_dir) / (RUN_TABLE + ".lock")
    with disk_errors(lock_path), open(lock_path, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def run_lock(out_dir: Path, run: str) -> Iterator[None]:
    """Hold ``OUT/locks/<run>.lock`` exclusively for the block, or raise RunBusyError at once.

    ``flock`` belongs to the open file, so the operating system releases it when the
    holding process exits or is killed: a crashed run never blocks the next one. The
    lock files stay (removing one could split a waiting and a new holder between two
    files).
    """
    path = Path(out_dir) / LOCK_DIR / f"{run}.lock"
    with disk_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")
    with handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise RunBusyError(
                    f"run {run} is being trained by another process (it holds {path}); "
                    "wait for it to finish, or train into another --out"
                ) from exc
        yield


def _format_rows(rows: Sequence[dict[str, Any]], header: bool, columns: Sequence[str] = COLUMNS) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="raise")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_value(row[k]) for k in columns})
    return buffer.getvalue().encode()


def csv_value(value: Any) -> Any:
    """A cell as the run table stores it: ``repr`` of a float (it round-trips exactly), other values as they are."""
    return repr(value) if isinstance(value, float) else value


def _check_header(path: Path, first_line: bytes) -> tuple[str, ...]:
    """The columns of the table whose first line is ``first_line``: one of :data:`LAYOUTS`."""
    found = first_line.decode(errors="replace").strip()
    for columns in LAYOUTS:
        if found == ",".join(columns):
            return columns
    raise TrainerError(
        f"{path} has columns '{found}', expected '{','.join(COLUMNS)}'; choose another --out or move the file away"
    )


def _drop_partial_line(path: Path) -> None:
    """Truncate a trailing line without newline (left by a crash during an append)."""
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        position = size
        chunk = 4096
        while position > 0:
            start = max(0, position - chunk)
            handle.seek(start)
            data = handle.read(position - start)
            cut = data.rfind(b"\n")
            if cut >= 0:
                handle.truncate(start + cut + 1)
                return
            position = start
        handle.truncate(0)


def append_rows(out_dir: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Append ``rows`` (dicts with :data:`COLUMNS` keys) to ``OUT/runs.csv`` durably.

    Writes the header when the file is new or empty, checks it otherwise (a table
    with an older header of :data:`LAYOUTS` gets rows in that layout).
    """
    if not rows:
        return
    path = Path(out_dir) / RUN_TABLE
    with table_lock(out_dir), disk_errors(path):
        exists = path.exists() and path.stat().st_size > 0
        columns: Sequence[str] = COLUMNS
        if exists:
            _drop_partial_line(path)
            with open(path, "rb") as handle:
                first = handle.readline()
            exists = bool(first)
            if exists:
                columns = _check_header(path, first)
        with open(path, "ab") as handle:
            handle.write(_format_rows(rows, header=not exists, columns=columns))
            handle.flush()
            os.fsync(handle.fileno())


def read_table(out_dir: Path) -> list[dict[str, str]]:
    """All complete rows of ``OUT/runs.csv`` as dicts of strings ([] if absent)."""
    path = Path(out_dir) / RUN_TABLE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    if not data:
        return []
    complete = data[: data.rfind(b"\n") + 1]
    lines = complete.decode().splitlines()
    if not lines:
        return []
    _check_header(path, lines[0].encode())
    return list(csv.DictReader(lines))


def truncate_run(out_dir: Path, run: str, after_step: int) -> int:
    """Remove the rows of ``run`` with step > ``after_step``; return how many.

    Rewrites ``OUT/runs.csv`` atomically under the table lock, in its own layout
    (only when something has to go, or a partial last line has to be dropped).
    """
    path = Path(out_dir) / RUN_TABLE
    with table_lock(out_dir):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return 0
        rows = read_table(out_dir)
        keep = [r for r in rows if not (r["run"] == run and int(r["step"]) > after_step)]
        removed = len(rows) - len(keep)
        if removed or (data and not data.endswith(b"\n")):
            columns = list(rows[0]) if rows else COLUMNS
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(keep)
            atomic_write_bytes(path, buffer.getvalue().encode())
        return removed
