"""Obtain the public IBM Telco Customer Churn CSV and land it as one batch.

From a local copy (``--source`` or ``CHURN_SOURCE_CSV``) or from its public URL, where the sha256 is
verified before the file becomes visible in the landing zone (it is written as ``*.part`` first).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from churn_assets.ingest.parse import file_sha256
from churn_assets.ingest.store import landed_files


class FetchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Landed:
    path: Path
    sha256: str
    matches_public_file: bool
    already_landed: bool


def land_dataset(
    landing_dir: Path, *, source: Path | None, url: str, expected_sha256: str, timeout_s: float = 30.0
) -> Landed:
    """Land ``source`` (or the download from ``url``) unless a file with the same content is already there."""
    landing_dir.mkdir(parents=True, exist_ok=True)
    if source is not None:
        if not source.is_file():
            raise FetchError(f"--source / CHURN_SOURCE_CSV points at {source}, which is not a file")
        data = source.read_bytes()
        name = source.name
    else:
        data = _download(url, expected_sha256, timeout_s)
        name = Path(url).name
    sha = file_sha256(data)
    for existing in landed_files(landing_dir):
        if file_sha256(existing.read_bytes()) == sha:
            return Landed(existing, sha, sha == expected_sha256, already_landed=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = landing_dir / f"{stamp}_{name}"
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(data)
    partial.replace(target)
    return Landed(target, sha, sha == expected_sha256, already_landed=False)


def _download(url: str, expected_sha256: str, timeout_s: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # nosec B310 # the operator's CHURN_SOURCE_URL (default https), content checked by sha256
            data = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise FetchError(
            f"Could not download the Telco data set from {url} ({exc}); pass a local copy with "
            "`churn data fetch --source PATH` or set CHURN_SOURCE_CSV=PATH."
        ) from exc
    actual = file_sha256(data)
    if actual != expected_sha256:
        raise FetchError(f"Downloaded file from {url} has sha256 {actual}, expected {expected_sha256}")
    return data
