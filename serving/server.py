"""The LitServe server: two scoring APIs on worker processes, plus health, model info, metrics and docs.

Workers (spawned by LitServe) each hold a ModelStore that follows the registry alias; the API-server
processes never load a model: they validate, route, count, and read the workers' status files.
"""

import json
import logging
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from mlflow import MlflowClient
from pydantic import ConfigDict, Field, RootModel

from churn_assets.settings import restrict_to_owner
from serving.config import ServeSettings

SETTINGS = ServeSettings()
# prometheus_client reads this at import: set it before serving.metrics (and edge) import it.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(SETTINGS.metrics_dir))
SETTINGS.metrics_dir.mkdir(parents=True, exist_ok=True)

import litserve as ls  # noqa: E402
import numpy as np  # noqa: E402

from serving import metrics  # noqa: E402
from serving.edge import EdgeMiddleware, header_timeout_protocol, validation_error_handler  # noqa: E402
from serving.model_store import LoadedModel, ModelStore  # noqa: E402
from serving.prediction_log import PredictionLog  # noqa: E402
from serving.schemas import EXAMPLE, BatchPrediction, CustomerRecord, Prediction  # noqa: E402
from serving.workers import forget_dead, live_statuses, write_status  # noqa: E402

log = logging.getLogger("serving")


class BatchRequest(
    RootModel[Annotated[list[CustomerRecord], Field(min_length=1, max_length=SETTINGS.batch_limit)]]
):
    """A non-empty list of records, at most CHURN_BATCH_LIMIT of them (over it: 413). Module level: it is
    pickled to the workers."""

    model_config = ConfigDict(json_schema_extra={"examples": [[EXAMPLE]]})


TOP_FEATURES = 5


def risk_band(probability: float, threshold: float) -> str:
    """high: at or over the decision threshold; medium: over half of it; low: the rest."""
    if probability >= threshold:
        return "high"
    return "medium" if probability >= threshold / 2 else "low"


class _ScoringAPI(ls.LitAPI):
    """Shared by /predict and /batch-predict: score raw records with the served model's feature SQL."""

    def setup(self, device: str) -> None:
        self.settings = ServeSettings()
        self._served_version: str | None = None
        self.status_file = self.settings.status_dir / f"{self.api_path.strip('/')}-{os.getpid()}.json"
        forget_dead(self.settings.status_dir)  # e.g. the worker this one replaces
        self.prediction_log = PredictionLog(
            self.settings.prediction_log_dir,
            self.settings.log_flush_s,
            self.settings.log_flush_rows,
            self.settings.prediction_log_retention_days,
        )
        self.store = ModelStore(
            str(self.settings.paths.mlflow_tracking_uri),
            self.settings.model_name,
            self.settings.model_alias,
            self.settings.model_poll_s,
            self.settings.model_cache_dir,
            on_event=self._on_model_event,
        )
        self.store.refresh()
        self.store.start_polling()

    def _on_model_event(self, kind: str, detail: str) -> None:
        if kind == "load_failed":
            metrics.MODEL_LOAD_FAILURES.inc()
        if kind == "loaded":
            if self._served_version is not None:
                metrics.MODEL_VERSION.labels(self.settings.model_name, self._served_version).set(0)
            metrics.MODEL_VERSION.labels(self.settings.model_name, detail).set(1)
            self._served_version = detail
        current = self.store.current
        status = {
            "pid": os.getpid(),
            "api_path": self.api_path,
            "model": current.info | {"loaded_at": current.loaded_at} if current else None,
            "champion_version": self.store.champion_version,
            "last_error": self.store.last_error,
            "updated_at": datetime.now(UTC).isoformat(),
        }
        write_status(self.status_file, status)

    def score(self, records: list[dict[str, Any]]) -> tuple[LoadedModel, list[dict[str, Any]], str]:
        model = self.store.current
        if model is None:
            raise HTTPException(503, f"no model loaded yet: {self.store.last_error}")
        request_id = uuid.uuid4().hex
        ids, matrix = model.features(records)
        if not np.isfinite(matrix).all():
            rows = sorted({int(i) for i in np.argwhere(~np.isfinite(matrix))[:, 0]})
            message = "yields non-finite features: charges outside any range the model knows"
            raise HTTPException(
                422,
                [
                    {
                        "loc": ["body", row] if self.batch_input else ["body"],
                        "msg": message,
                        "type": "value_error",
                    }
                    for row in rows
                ],
            )
        proba = model.probabilities(matrix)
        explain = [i for i, r in enumerate(records) if r.get("explain")]
        contributions = None
        if explain:
            try:
                contributions = model.contributions(matrix[explain])
            except TypeError as exc:
                raise HTTPException(422, f"explain is not available for this model: {exc}") from exc
        threshold = model.model.threshold
        predictions, logged = [], []
        now = datetime.now(UTC)
        for i, (customer_id, p) in enumerate(zip(ids, proba.tolist(), strict=True)):
            prediction = {
                "customerID": records[i].get("customerID"),
                "churn_probability": p,
                "churn": p >= threshold,
                "risk_band": risk_band(p, threshold),
                "model_version": model.version,
                "request_id": request_id,
            }
            if contributions is not None and i in explain:
                row = contributions[explain.index(i)]
                top = sorted(range(len(row)), key=lambda j: -abs(row[j]))[:TOP_FEATURES]
                names = model.model.feature_columns
                prediction["top_features"] = [
                    {"feature": names[j], "value": float(matrix[i, j]), "contribution": float(row[j])}
                    for j in top
                ]
            predictions.append(prediction)
            logged.append(
                {
                    "request_id": request_id,
                    "served_at": now,
                    "endpoint": self.api_path,
                    "model_name": model.name,
                    "model_version": model.version,
                    "customer_id": customer_id,
                    "record": json.dumps({k: v for k, v in records[i].items() if k != "explain"}),
                    "features": json.dumps(
                        dict(zip(model.model.feature_columns, matrix[i].tolist(), strict=True))
                    ),
                    "churn_probability": p,
                    "churn": p >= threshold,
                }
            )
        self.prediction_log.append(logged)
        metrics.BATCH_SIZE.observe(len(records))
        for p in proba:
            metrics.PROBABILITY.observe(p)
        decided = int((proba >= threshold).sum())
        metrics.PREDICTIONS.labels("churn").inc(decided)
        metrics.PREDICTIONS.labels("stay").inc(len(records) - decided)
        return model, predictions, request_id


class PredictAPI(_ScoringAPI):
    batch_input = False

    def decode_request(self, request: CustomerRecord) -> dict[str, Any]:
        return request.model_dump()

    def predict(self, record: dict[str, Any]) -> dict[str, Any]:
        _, predictions, _ = self.score([record])
        return predictions[0]

    def encode_response(self, output: dict[str, Any]) -> Prediction:
        return output


class BatchPredictAPI(_ScoringAPI):
    batch_input = True

    def decode_request(self, request: BatchRequest) -> list[dict[str, Any]]:
        return [record.model_dump() for record in request.root]

    def predict(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        model, predictions, request_id = self.score(records)
        return {"predictions": predictions, "model_version": model.version, "request_id": request_id}

    def encode_response(self, output: dict[str, Any]) -> BatchPrediction:
        return output


def readiness(settings: ServeSettings, api_paths: list[str]) -> tuple[str, list[str]]:
    """`ok`, `degraded` (serving, but a worker is down or a model is not the champion) or `not ready`
    (an API has no live worker with a model), with the reasons."""
    statuses = live_statuses(settings.status_dir)
    missing, degraded = [], []
    for api_path in api_paths:
        workers = [s for s in statuses if s["api_path"] == api_path]
        loaded = [s for s in workers if s["model"]]
        errors = sorted({s["last_error"] for s in workers if s["last_error"]})
        if not loaded:
            missing.append(f"{api_path}: " + ("; ".join(errors) or "no live worker with a model yet"))
            continue
        if len(workers) < settings.serve_workers:
            degraded.append(f"{api_path}: {len(workers)} of {settings.serve_workers} workers alive")
        stale = sorted(
            {s["model"]["version"] for s in loaded if s["model"]["version"] != s["champion_version"]}
        )
        if stale or errors:
            detail = "; ".join(errors) or f"the champion is v{loaded[0]['champion_version']}"
            degraded.append(
                f"{api_path}: serving v{', v'.join(stale) or loaded[0]['model']['version']}: {detail}"
            )
    if missing:
        return "not ready", missing + degraded
    return ("degraded" if degraded else "ok"), degraded


def build_server(settings: ServeSettings) -> ls.LitServer:
    apis = [PredictAPI(api_path="/predict"), BatchPredictAPI(api_path="/batch-predict")]
    server = ls.LitServer(
        apis,
        accelerator="cpu",
        workers_per_device=settings.serve_workers,
        timeout=settings.request_timeout_s,
        healthcheck_path="/litserve/health",
        info_path="/litserve/info",
        # A worker that dies (killed, out of memory) is started again; only its requests in flight fail.
        restart_workers=True,
        middlewares=[
            (
                EdgeMiddleware,
                {
                    "api_key": settings.api_key,
                    "max_body_bytes": settings.max_body_bytes,
                    "body_timeout_s": settings.body_timeout_s,
                    "answer_timeout_s": settings.request_timeout_s,
                },
            )
        ],
    )
    app = server.app
    for route in app.routes:  # LitServe's own plain-text routes; /health and /model-info are ours
        if getattr(route, "path", "") in ("/", "/litserve/health", "/litserve/info"):
            route.include_in_schema = False
    app.add_exception_handler(RequestValidationError, validation_error_handler(settings.batch_limit))
    api_paths = [api.api_path for api in apis]

    @app.get("/metrics", tags=["operations"])
    def prometheus_metrics() -> Response:
        """Prometheus metrics of all API-server and worker processes."""
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/health", tags=["operations"])
    def health() -> JSONResponse:
        """200 `ok`, or 200 `degraded` while serving with a worker down or a version other than the champion
        (the reason says which); 503 `not ready` while a scoring API has no live worker with a model."""
        status, reasons = readiness(settings, api_paths)
        body = {"status": status} | ({"reason": " | ".join(reasons)} if reasons else {})
        return JSONResponse(body, status_code=503 if status == "not ready" else 200)

    @app.get("/model-info", tags=["operations"])
    def model_info() -> JSONResponse:
        """The model the workers serve: name, version, run, trained-at, data version, metrics, threshold,
        and the champion's version when it differs (a version that failed to load). Needs the API key."""
        statuses = live_statuses(settings.status_dir)
        loaded = [s for s in statuses if s["model"]]
        if not loaded:
            raise HTTPException(503, "no model loaded yet")
        versions = sorted({s["model"]["version"] for s in loaded}, key=int)
        newest = max(loaded, key=lambda s: int(s["model"]["version"]))["model"]
        champions = {s["champion_version"] for s in statuses if s["champion_version"]}
        errors = sorted({s["last_error"] for s in statuses if s["last_error"]})
        return JSONResponse(
            {
                **newest,
                "versions_served": versions,
                "champion_version": max(champions, key=int) if champions else None,
                "load_errors": errors,
            }
        )

    return server


def main() -> None:
    settings = SETTINGS
    restrict_to_owner()  # the prediction log holds every scored record: owner-only files
    for directory in (settings.metrics_dir, settings.status_dir):  # state of a previous server
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)
    # Create (and migrate) the tracking store once here: workers starting together on an empty home would race.
    tracking_uri = str(settings.paths.mlflow_tracking_uri)
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    MlflowClient(tracking_uri).search_registered_models(max_results=1)
    server = build_server(settings)
    server.run(
        host=settings.serve_host,
        port=settings.serve_port,
        generate_client_file=False,
        log_level="warning",
        http=header_timeout_protocol(settings.header_timeout_s),
    )
