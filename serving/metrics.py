"""Prometheus metrics, correct across LitServe's processes (prometheus-client multiprocess mode).

PROMETHEUS_MULTIPROC_DIR must be set before prometheus_client is imported anywhere; `serving.__main__`
sets it from the settings before importing the server, and the spawned workers inherit it.
"""

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "churn_requests_total", "HTTP requests by endpoint and status code", ["endpoint", "status"]
)
LATENCY = Histogram(
    "churn_request_latency_seconds",
    "HTTP request latency by endpoint",
    ["endpoint"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram(
    "churn_batch_size", "Records per scored request", buckets=(1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000)
)
# `alias`: the registry alias of the model that scored (champion, challenger); `shadow`: "true" for the
# challenger's shadow scores (logged, never returned), "false" for what was served.
PROBABILITY = Histogram(
    "churn_prediction_probability",
    "Churn probabilities by model alias and shadow scoring",
    ["alias", "shadow"],
    buckets=[i / 10 for i in range(1, 11)],
)
PREDICTIONS = Counter(
    "churn_predictions_total",
    "Predictions by decision, model alias and shadow scoring",
    ["decision", "alias", "shadow"],
)
MODEL_VERSION = Gauge(
    "churn_model_version_info",
    "1 for the model version a worker serves under an alias",
    ["name", "version", "alias"],
    multiprocess_mode="liveall",
)
MODEL_TRAINED = Gauge(
    "churn_model_trained_timestamp_seconds",
    "Unix time the training run of the version a worker serves under an alias started (its age is the model's)",
    ["alias"],
    multiprocess_mode="liveall",
)
MODEL_LOAD_FAILURES = Counter(
    "churn_model_load_failures_total", "Model versions refused because they failed to load", ["alias"]
)
SHADOW_FAILURES = Counter(
    "churn_shadow_failures_total",
    "Requests whose shadow scoring by the challenger failed (their answers were not affected)",
    ["endpoint"],
)


def render() -> tuple[bytes, str]:
    """The exposition text aggregated over every process that wrote to PROMETHEUS_MULTIPROC_DIR."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """`histogram.observe(v)` for every value, as one update per bucket instead of one per value.

    prometheus-client has no bulk observe; this writes the same bucket counts and sum that `observe` would
    (a value goes to the first bucket whose upper bound it does not exceed), through the same child
    counters. A test holds it equal to repeated `observe` calls, so a client upgrade that changes them fails.
    """
    histogram._raise_if_not_observable()
    if not len(values):
        return
    bounds = np.asarray(histogram._upper_bounds)
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for bucket, count in zip(histogram._buckets, counts.tolist(), strict=True):
        if count:
            bucket.inc(count)
    histogram._sum.inc(float(np.sum(values)))
