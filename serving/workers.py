"""Worker status files: each inference worker writes what it serves; the API servers read them.

One JSON file per worker process (`<api>-<pid>.json` under the status directory), replaced atomically. A
killed worker cannot remove its file, so readers keep only the files of processes still alive.
"""

import contextlib
import json
import os
from pathlib import Path
from typing import Any


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old text or the new, never half of it (a per-process temporary file, renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    partial.replace(path)


def write_status(path: Path, status: dict[str, Any]) -> None:
    write_atomically(path, json.dumps(status))


def forget_dead(status_dir: Path) -> None:
    """Delete the status files of workers that are gone, so a later process reusing a pid is not taken
    for them (called by each worker as it starts, e.g. the replacement of a killed one)."""
    for path in status_dir.glob("*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            if not alive(json.loads(path.read_text())["pid"]):
                path.unlink()


def live_statuses(status_dir: Path) -> list[dict[str, Any]]:
    """The status of every live worker, oldest file name first."""
    statuses = []
    for path in sorted(status_dir.glob("*.json")):
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced right now
        if alive(status["pid"]):
            statuses.append(status)
    return statuses


def alive(pid: int) -> bool:
    """True while `pid` runs; a dead worker that is not yet reaped (a zombie) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True  # no /proc on this system: signal 0 is all there is
