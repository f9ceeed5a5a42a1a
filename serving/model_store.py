"""The served model: resolved from the registry alias, loaded, and swapped atomically when the alias moves.

The registry is the source: the server never opens the warehouse. A version that fails to load is
refused and the one already loaded keeps serving. The last versions that loaded are also kept in a local
cache, so a server restarted while the champion is broken (or the registry down) serves the last good one.

The challenger is followed by the same class as an *optional* alias: it serves only the version its alias
names. While the alias is missing, its version does not load, or a `stand_down` rule says so (it points at
the champion's version), it serves nothing and says why; only an unreachable registry keeps what it
serves (or, at start, its last good version).
"""

import contextlib
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import mlflow
import numpy as np
import orjson
import sklearn
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from churn_assets.ml.explain import row_contributions
from churn_assets.ml.pyfunc import RAW_COLUMNS, REQUEST_RELATION, ChurnModel
from serving.workers import write_atomically

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """One registered version, ready to score raw records with its own feature SQL."""

    name: str
    version: str
    run_id: str
    model: ChurnModel
    info: dict[str, Any]
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def __post_init__(self) -> None:
        # DuckDB binds and plans the feature SQL in ~5 ms, and re-binds a prepared statement that scans a
        # table or a registered Arrow object on every execution; it keeps the plan of one whose input are
        # parameters. So the records come in as parameters: one record as its values, a batch as one JSON
        # document of its columns (`from_json` + `unnest`). Both statements are prepared once per loaded
        # version, on a connection used by one worker thread.
        self._db = duckdb.connect(config={"threads": 1})  # one request at a time per worker: no pool to wake
        columns = ", ".join(self.model.feature_columns)
        params = ", ".join(f"${i}::varchar as {c}" for i, c in enumerate(RAW_COLUMNS, start=1))
        self._db.execute(
            f"prepare one_row as with {REQUEST_RELATION} as (select {params}) "
            f"select {columns} from ({self.model.feature_sql})"
        )
        document = "{" + ", ".join(f'"{c}": "VARCHAR[]"' for c in RAW_COLUMNS) + "}"
        unnested = ", ".join(f"unnest(document.{c}) as {c}" for c in RAW_COLUMNS)
        self._db.execute(
            f"prepare many_rows as with {REQUEST_RELATION} as (select {unnested} from "
            f"(select from_json($1::varchar, '{document}') as document)) "
            f"select {columns} from ({self.model.feature_sql})"
        )

    def features(self, columns: dict[str, list[str | None]]) -> np.ndarray:
        """Run the model's feature SQL over validated records (raw columns as text); the feature matrix."""
        if len(columns[RAW_COLUMNS[0]]) == 1:
            values = ", ".join(_literal(columns[c][0]) for c in RAW_COLUMNS)
            return np.array(self._db.execute(f"execute one_row({values})").fetchall(), dtype=np.float64)
        else:
            self._db.execute("set variable request_document = ?", [orjson.dumps(columns).decode()])
            result = self._db.execute("execute many_rows(getvariable('request_document'))").fetchnumpy()
        return np.column_stack([np.asarray(result[c], dtype=np.float64) for c in self.model.feature_columns])

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        # The server checks the matrix is finite itself; skip scikit-learn's per-call re-validation.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return self.model.estimator.predict_proba(matrix)[:, 1]

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        return row_contributions(self.model.estimator, matrix)


def _literal(text: str | None) -> str:
    return "NULL" if text is None else "'" + text.replace("'", "''") + "'"


def load_version(client: MlflowClient, name: str, version: str, cache_dir: Path) -> LoadedModel:
    """Load one registered version, from the local cache when it holds it, else from the registry.

    A version is cached only after it loaded, under its name, version and MLflow run id (a new registry
    reusing a version number has other run ids). A cached copy that no longer loads is dropped and
    downloaded again.
    """
    details = client.get_model_version(name, version)
    run_id = details.run_id
    if run_id is None:
        raise ValueError(f"{name} v{version} names no MLflow run: not a version a training run registered")
    cached = cache_dir / f"{name}-v{version}-{run_id}"
    if (cached / INFO).is_file():
        try:
            return _load_local(cached, name)
        except Exception as exc:
            log.warning(
                "cached copy of %s v%s unusable (%s): downloading it again", name, version, redact(str(exc))
            )
            shutil.rmtree(cached, ignore_errors=True)
    # Per process and thread: a worker's champion and challenger stores may load the same version at once.
    staging = cache_dir / f".{cached.name}-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=str(staging / "model")
        )
        model = _unwrap(mlflow.pyfunc.load_model(local), name, version)
        run = client.get_run(run_id)
        info = {
            "name": name,
            "version": version,
            "run_id": run_id,
            "trained_at": datetime.fromtimestamp(run.info.start_time / 1000, UTC).isoformat(),
            "data_version": details.tags.get("data_version"),
            "family": details.tags.get("family"),
            "threshold": model.threshold,
            "test_metrics": {k: v for k, v in run.data.metrics.items() if k.startswith("test_")},
            "features": model.feature_columns,
        }
        model_dir = str(Path(local).relative_to(staging))
        write_atomically(staging / INFO, json.dumps({**info, "model_dir": model_dir}))
        with contextlib.suppress(OSError):  # another worker cached it first: the same run's artifacts
            staging.rename(cached)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return LoadedModel(name, version, run_id, model, info)


def _load_local(cached: Path, name: str) -> LoadedModel:
    stored = json.loads((cached / INFO).read_text())
    version = stored["version"]
    model = _unwrap(mlflow.pyfunc.load_model(str(cached / stored.pop("model_dir"))), name, version)
    return LoadedModel(name, version, stored["run_id"], model, stored)


def _unwrap(pyfunc: Any, name: str, version: str) -> ChurnModel:
    model = pyfunc.unwrap_python_model()
    if not isinstance(model, ChurnModel):
        raise TypeError(f"{name} v{version} is a {type(model).__name__}, not a ChurnModel")
    return model


# An absolute path or file/sqlite URI in an error text: replaced so no answer maps the host's filesystem.
_PATH = re.compile(r"(?:file:(?://)?|sqlite:///)?(?<![\w:.])(?:/[^/\s'\"():,;]+){2,}/?")


def redact(text: str) -> str:
    return _PATH.sub("<path>", text)


class ModelStore:
    """Holds the current LoadedModel and polls the alias; readers take `current` once per request.

    When the alias's version cannot be loaded (or the registry reached) and nothing is served yet, the
    last version this model name and alias served here is taken from the local cache; the alias's version
    is taken as soon as it loads.

    An `optional` store (the challenger) serves nothing while its alias is missing, its version fails to
    load, or `stand_down(version)` gives a reason not to serve that version; `standing_down` then says why.
    """

    def __init__(
        self,
        tracking_uri: str,
        name: str,
        alias: str,
        poll_s: float,
        cache_dir: Path,
        on_event=None,
        *,
        optional: bool = False,
        stand_down: Callable[[str], str | None] | None = None,
    ) -> None:
        self.client = MlflowClient(tracking_uri)
        mlflow.set_tracking_uri(tracking_uri)
        self.name, self.alias, self.poll_s, self.cache_dir = name, alias, poll_s, cache_dir
        self.optional, self.stand_down = optional, stand_down
        self.last_good = cache_dir / f"last-good-{name}@{alias}"
        self.current: LoadedModel | None = None
        self.alias_version: str | None = None  # the version the alias names, loaded or not
        self.last_error: str | None = None
        self.standing_down: str | None = None  # why an optional store serves nothing
        self._on_event = on_event or (lambda kind, detail: None)

    def refresh(self) -> bool:
        """Load the version the alias points to if it is not the one served; True when it swapped."""
        try:
            version = str(self.client.get_model_version_by_alias(self.name, self.alias).version)
        except Exception as exc:  # no alias yet, registry unreachable: keep what is served
            message = f"cannot resolve {self.name}@{self.alias}: {redact(str(exc))}"
            if self.optional and _answered_no(exc):  # the registry says there is none: serve none
                self.alias_version = None
                self._stand_down(f"{self.name}@{self.alias} is not set")
            else:
                self._failed("unresolved", message)
            return False
        self.alias_version = version
        reason = self.stand_down(version) if self.stand_down else None
        if reason is not None:
            self._stand_down(reason)
            return False
        if self.current is not None and self.current.version == version:
            self._cleared(version)
            return False
        try:
            loaded = load_version(self.client, self.name, version, self.cache_dir)
        except Exception as exc:
            message = f"refused {self.name} v{version}: {type(exc).__name__}: {redact(str(exc))}"
            if self.optional:  # never an older challenger instead of the one the alias names
                self._stand_down(message, kind="load_failed")
            else:
                self._failed("load_failed", message)
            return False
        self._serve(loaded)
        return True

    def _serve(self, loaded: LoadedModel) -> None:
        self.current = loaded  # one reference assignment: requests in flight keep the model they took
        self.last_error = self.standing_down = None
        self._on_event("loaded", loaded.version)
        try:  # bookkeeping of the cache: its failure must not stop serving or polling
            write_atomically(self.last_good, f"{self.name}-v{loaded.version}-{loaded.run_id}")
            prune_cache(self.cache_dir, keep=CACHED_VERSIONS)
        except OSError as exc:
            log.warning("model cache bookkeeping failed: %s", redact(str(exc)))

    def _stand_down(self, reason: str, kind: str = "stood_down") -> None:
        """An optional store stops serving (once per distinct reason, not once per poll)."""
        if reason == self.standing_down and self.current is None:
            return
        self.current, self.standing_down = None, reason
        self.last_error = reason if kind == "load_failed" else None
        (log.error if kind == "load_failed" else log.info)(
            "%s@%s serves nothing: %s", self.name, self.alias, reason
        )
        self._on_event(kind, reason)

    def _cleared(self, version: str) -> None:
        """The alias's version, already served, answered again: a failure reported before is over."""
        if self.last_error is not None:
            self.last_error = None
            self._on_event("recovered", version)

    def _failed(self, kind: str, message: str) -> None:
        if message != self.last_error:  # once per distinct failure, not once per poll
            self.last_error = message
            log.error(message)
            self._on_event(kind, message)
        if self.current is None:
            self._serve_last_good()

    def _serve_last_good(self) -> None:
        if not self.last_good.is_file():
            return  # this name and alias never served here
        try:
            loaded = _load_local(self.cache_dir / self.last_good.read_text().strip(), self.name)
        except Exception as exc:  # the copy is gone or unreadable
            log.warning("cannot fall back on the last good version: %s", redact(str(exc)))
            return
        if self.stand_down is not None and self.stand_down(loaded.version) is not None:
            return
        log.warning(
            "serving the last good version v%s from the local cache: %s", loaded.version, self.last_error
        )
        self.current = loaded
        self._on_event("loaded", loaded.version)

    def start_polling(self) -> None:
        def loop() -> None:
            while True:
                time.sleep(self.poll_s)
                try:
                    self.refresh()
                except Exception:  # never let one bad poll end the following ones
                    log.exception("model poll failed")

        threading.Thread(target=loop, name=f"model-poll-{self.alias}", daemon=True).start()


def _answered_no(exc: Exception) -> bool:
    """The registry answered that the model or alias does not exist (not: it could not be reached)."""
    return isinstance(exc, MlflowException) and exc.error_code in (
        "RESOURCE_DOES_NOT_EXIST",
        "INVALID_PARAMETER_VALUE",
    )


INFO = "info.json"
CACHED_VERSIONS = 3  # the served one and the two before it: a rollback needs no download


STAGING_ABANDONED_S = 3600  # a download this old was left by a killed worker


def prune_cache(cache_dir: Path, keep: int) -> list[Path]:
    """Delete all but the `keep` most recently cached versions (a last good version always stays) and
    downloads abandoned by killed workers. Several workers prune at once: what another deleted is skipped."""
    pinned = set()
    for pointer in cache_dir.glob("last-good-*"):
        with contextlib.suppress(OSError):
            pinned.add(pointer.read_text().strip())
    cached, abandoned = [], []
    for path in cache_dir.iterdir():
        with contextlib.suppress(OSError):
            if not path.is_dir():
                continue
            if path.name.startswith("."):
                if time.time() - path.stat().st_mtime > STAGING_ABANDONED_S:
                    abandoned.append(path)
            elif path.name not in pinned:
                cached.append((path.stat().st_mtime, path))
    pinned_kept = len(pinned & {p.name for p in cache_dir.iterdir()})
    cached.sort(reverse=True)
    expired = [path for _, path in cached[max(keep - pinned_kept, 0) :]] + abandoned
    for path in expired:
        shutil.rmtree(path, ignore_errors=True)
    return expired
