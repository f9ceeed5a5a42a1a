"""The LitServe server: two scoring APIs on worker processes, plus health, model info, metrics and docs.

Workers (spawned by LitServe) each hold a ModelStore that follows the registry alias, and do a request's
work: parse its body, validate it column-wise, run the feature SQL, score, and encode the answer and the
prediction-log rows. The API-server processes never load a model: they check the key and the body's
size, hand the body on as bytes (`serving.spec`), count, and read the workers' status files.
"""

import logging
import os
import shutil
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import fastapi_offline
import litserve as ls
import orjson
from fastapi import HTTPException
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from mlflow import MlflowClient
from pydantic import ConfigDict, Field, RootModel
from pydantic.json_schema import models_json_schema

from churn_assets.ml.champion import CHALLENGER_ALIAS
from churn_assets.settings import restrict_to_owner
from serving import metrics, scoring
from serving.config import ServeSettings
from serving.edge import EdgeMiddleware, header_timeout_protocol
from serving.model_store import LoadedModel, ModelStore
from serving.payload import Refused, parse_body
from serving.prediction_log import PredictionLog
from serving.schemas import EXAMPLE, BatchPrediction, CustomerRecord, Prediction
from serving.scoring import Arm
from serving.spec import Answer, Body, ScoringSpec
from serving.validation import Batch, validate
from serving.workers import forget_dead, live_statuses, write_status

log = logging.getLogger("serving")


def batch_request_model(limit: int) -> type[RootModel]:
    """The documented body of /batch-predict: a non-empty list of at most `limit` records (over it: 413).
    The worker validates it column-wise (`serving.validation`); this model only documents it."""

    class BatchRequest(RootModel[Annotated[list[CustomerRecord], Field(min_length=1, max_length=limit)]]):
        """A non-empty list of records, at most CHURN_BATCH_LIMIT of them."""

        model_config = ConfigDict(json_schema_extra={"examples": [[EXAMPLE]]})

    return BatchRequest


class _ScoringAPI(ls.LitAPI):
    """Shared by /predict and /batch-predict: score raw records with the served model's feature SQL.

    Each worker follows the champion alias; with a challenger share or shadow mode also the challenger
    alias (same ModelStore class). The challenger answers (or shadows) only while it is loaded and is not
    the champion's own version; otherwise everything goes to the champion and the status says why.
    """

    def setup(self, device: str) -> None:
        self.settings = ServeSettings()
        self._served_versions: dict[str, str] = {}  # alias -> version in the version gauge
        self._status_lock = threading.Lock()  # the two stores' poll threads both write the status
        self.status_file = self.settings.status_dir / f"{self.api_path.strip('/')}-{os.getpid()}.json"
        forget_dead(self.settings.status_dir)  # e.g. the worker this one replaces
        self.prediction_log = PredictionLog(
            self.settings.prediction_log_dir,
            self.settings.log_flush_s,
            self.settings.log_flush_rows,
            self.settings.prediction_log_retention_days,
        )
        # Counters start at 0 for what this worker can count: dashboards and alerts see 0, not a missing series.
        metrics.MODEL_LOAD_FAILURES.labels(self.settings.model_alias)
        metrics.SHADOW_FAILURES.labels(self.api_path)
        if self.settings.challenger_on:
            metrics.MODEL_LOAD_FAILURES.labels(CHALLENGER_ALIAS)
        self.challenger: ModelStore | None = None
        self.store = self._model_store(self.settings.model_alias)
        if self.settings.challenger_on:
            self.challenger = self._model_store(
                CHALLENGER_ALIAS, optional=True, stand_down=self._same_as_champion
            )
        for store in (self.store, self.challenger):
            if store is not None:
                store.refresh()
                store.start_polling()

    def _model_store(self, alias: str, **kwargs: Any) -> ModelStore:
        return ModelStore(
            str(self.settings.paths.mlflow_tracking_uri),
            self.settings.model_name,
            alias,
            self.settings.model_poll_s,
            self.settings.model_cache_dir,
            on_event=lambda kind, detail: self._on_model_event(alias, kind, detail),
            **kwargs,
        )

    def _same_as_champion(self, version: str) -> str | None:
        champion = self.store.current
        if champion is not None and champion.version == version:
            return f"{self.settings.model_name}@{CHALLENGER_ALIAS} is the champion's version v{version}"
        return None

    def _on_model_event(self, alias: str, kind: str, detail: str) -> None:
        if kind == "load_failed":
            metrics.MODEL_LOAD_FAILURES.labels(alias).inc()
        if kind in ("loaded", "stood_down", "load_failed"):
            store = self.challenger if alias == CHALLENGER_ALIAS and self.challenger else self.store
            current = store.current
            served = current.version if current else None
            previous = self._served_versions.pop(alias, None)
            if previous is not None and previous != served:
                metrics.MODEL_VERSION.labels(self.settings.model_name, previous, alias).set(0)
            if current is not None:
                metrics.MODEL_VERSION.labels(self.settings.model_name, current.version, alias).set(1)
                trained_at = datetime.fromisoformat(current.info["trained_at"])
                metrics.MODEL_TRAINED.labels(alias).set(trained_at.timestamp())
                self._served_versions[alias] = current.version
        self._write_status()

    def _write_status(self) -> None:
        current = self.store.current
        status = {
            "pid": os.getpid(),
            "api_path": self.api_path,
            "model": _described(current),
            "champion_version": self.store.alias_version,
            "last_error": self.store.last_error,
            "challenger": None,
            "updated_at": datetime.now(UTC).isoformat(),
        }
        if self.challenger is not None:
            active, off = self._active_challenger()
            status["challenger"] = {
                "model": _described(active),
                "alias_version": self.challenger.alias_version,
                "off_reason": off,
                "last_error": self.challenger.last_error,
            }
        with self._status_lock:
            write_status(self.status_file, status)

    def _active_challenger(self) -> tuple[LoadedModel | None, str | None]:
        """The challenger that answers or shadows now, or None and why not (everything to the champion)."""
        store = self.challenger
        if store is None:
            return None, "no challenger share and no shadow mode configured"
        model = store.current
        if model is None:
            return None, store.standing_down or store.last_error or "not loaded yet"
        # The champion moved onto the challenger's version and the challenger's poll has not seen it yet.
        return (None, reason) if (reason := self._same_as_champion(model.version)) else (model, None)

    def decode_request(self, request: Body) -> Batch | Answer:
        """The validated records, or the 4xx answer that refuses them."""
        try:
            batch = validate(
                parse_body(request.content, request.content_type),
                single=not self.batch_input,
                limit=self.settings.batch_limit,
            )
        except Refused as refused:
            return Answer(orjson.dumps(refused.body()), refused.status)
        if request.explain:
            batch = replace(batch, explain=[True] * batch.size)
        return batch

    def predict(self, batch: Batch | Answer) -> Answer:
        if isinstance(batch, Answer):
            return batch
        model = self.store.current
        if model is None:
            raise HTTPException(503, f"no model loaded yet: {self.store.last_error}")
        challenger = None
        if self.challenger is not None and (active := self._active_challenger()[0]) is not None:
            challenger = Arm(active, CHALLENGER_ALIAS)
        request_id = uuid.uuid4().hex
        predictions, served = scoring.score(
            batch,
            Arm(model, self.store.alias),
            challenger,
            share=self.settings.challenger_share,
            shadow=self.settings.shadow_challenger,
            request_id=request_id,
            endpoint=self.api_path,
            served_at=datetime.now(UTC),
            batch_input=self.batch_input,
        )
        self.prediction_log.append(served)
        if not self.batch_input:
            return Answer(orjson.dumps(predictions[0]))
        return Answer(
            orjson.dumps(
                {"predictions": predictions, "model_version": model.version, "request_id": request_id}
            )
        )

    def encode_response(self, output: Answer) -> Answer:
        return output


class PredictAPI(_ScoringAPI):
    batch_input = False


class BatchPredictAPI(_ScoringAPI):
    batch_input = True


def route_docs(batch_limit: int) -> dict[str, tuple[type, type, str]]:
    """The scoring routes as documented: request model, response model, summary (the worker validates)."""
    return {
        "/predict": (CustomerRecord, Prediction, "Score one customer record."),
        "/batch-predict": (
            batch_request_model(batch_limit),
            BatchPrediction,
            "Score a JSON list of records, or a text/csv body with the data set's header (at most CHURN_BATCH_LIMIT).",
        ),
    }


def _document_scoring_routes(app: Any, docs: dict[str, tuple[type, type, str]]) -> None:
    """LitServe registers a spec's routes bare: give them their request and response schemas.

    The request models are added to the schema's components (FastAPI adds only the models of parameters
    it parses itself) and the routes refer to them, as for any FastAPI body.
    """
    components = "#/components/schemas/{model}"
    for route in list(app.routes):
        if getattr(route, "path", None) in docs and "POST" in getattr(route, "methods", ()):
            request_model, response_model, summary = docs[route.path]
            app.routes.remove(route)
            app.add_api_route(
                route.path,
                route.endpoint,
                methods=["POST"],
                name=route.path.strip("/").replace("-", "_"),
                dependencies=route.dependencies,
                response_model=response_model,
                summary=summary,
                tags=["scoring"],
                openapi_extra={
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": components.format(model=request_model.__name__)}
                            }
                        },
                    }
                },
            )
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _, defined = models_json_schema(
                [(model, "validation") for model, _, _ in docs.values()], ref_template=components
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defined["$defs"])
        return app.openapi_schema

    app.openapi = openapi


DOCS_ASSETS = "/docs-assets"


def _serve_docs_locally(app: Any) -> None:
    """Swagger UI from the files of the `fastapi-offline` package rather than FastAPI's default CDN, so
    /docs works on a machine without internet. Replaces FastAPI's own /docs and /redoc pages."""
    for route in list(app.routes):
        if getattr(route, "path", None) in ("/docs", "/redoc", app.swagger_ui_oauth2_redirect_url):
            app.routes.remove(route)
    static = Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=static), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=app.swagger_ui_oauth2_redirect_url,
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )

    @app.get(app.swagger_ui_oauth2_redirect_url, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()


def _described(model: LoadedModel | None) -> dict[str, Any] | None:
    return model.info | {"loaded_at": model.loaded_at} if model else None


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
    apis = [PredictAPI(spec=ScoringSpec("/predict")), BatchPredictAPI(spec=ScoringSpec("/batch-predict"))]
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
    _document_scoring_routes(app, route_docs(settings.batch_limit))
    _serve_docs_locally(app)
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
        """The champion the workers serve: name, version, run, trained-at, data version, metrics, threshold,
        and the champion's version when it differs (a version that failed to load); the challenger share and
        shadow mode, and with either on the challenger (its version, or why everything goes to the champion).
        Needs the API key."""
        statuses = live_statuses(settings.status_dir)
        loaded = [s for s in statuses if s["model"]]
        if not loaded:
            raise HTTPException(503, "no model loaded yet")
        champions = {s["champion_version"] for s in statuses if s["champion_version"]}
        return JSONResponse(
            {
                **_newest([s["model"] for s in loaded]),
                "alias": settings.model_alias,
                "versions_served": _versions(s["model"] for s in loaded),
                "champion_version": max(champions, key=int) if champions else None,
                "load_errors": sorted({s["last_error"] for s in statuses if s["last_error"]}),
                "challenger_share": settings.challenger_share,
                "shadow_challenger": settings.shadow_challenger,
                "challenger": _challenger_info(statuses) if settings.challenger_on else None,
            }
        )

    return server


def _newest(models: list[dict[str, Any]]) -> dict[str, Any]:
    return max(models, key=lambda m: int(m["version"]))


def _versions(models: Any) -> list[str]:
    return sorted({m["version"] for m in models}, key=int)


def _challenger_info(statuses: list[dict[str, Any]]) -> dict[str, Any]:
    """The challenger across the workers: what answers or shadows, or why everything goes to the champion."""
    states = [s["challenger"] for s in statuses if s.get("challenger")]
    active = [c["model"] for c in states if c["model"]]
    aliased = {c["alias_version"] for c in states if c["alias_version"]}
    return {
        "alias": CHALLENGER_ALIAS,
        "active": bool(active),
        "active_workers": len(active),  # of `workers`: while the alias moves, some may not have it yet
        "workers": len(states),
        "version": _newest(active)["version"] if active else None,
        "versions_served": _versions(active),
        "alias_version": max(aliased, key=int) if aliased else None,
        "off_reasons": sorted({c["off_reason"] for c in states if c["off_reason"]}),
        "load_errors": sorted({c["last_error"] for c in states if c["last_error"]}),
        "model": _newest(active) if active else None,
    }


def main(settings: ServeSettings) -> None:
    """Run the server (`python -m serving`); PROMETHEUS_MULTIPROC_DIR must already name
    `settings.metrics_dir`, set before prometheus_client was first imported (`serving.__main__` does)."""
    restrict_to_owner()  # the prediction log holds every scored record: owner-only files
    for directory in (settings.metrics_dir, settings.status_dir):  # state of a previous server
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)
    # Create (and migrate) the tracking store once here: workers starting together on an empty home would race.
    tracking_uri = settings.paths.mlflow_tracking_uri
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
