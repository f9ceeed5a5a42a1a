"""Per-request metric updates give exactly what per-record updates gave."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from churn_assets.ml.champion import CHAMPION_ALIAS
from serving.metrics import observe_many


def _samples(histogram: Histogram) -> dict[tuple, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in histogram.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def test_observe_many_equals_one_observe_per_value() -> None:
    buckets = [i / 10 for i in range(1, 11)]
    one = Histogram("one", "one by one", ["alias"], buckets=buckets, registry=CollectorRegistry())
    many = Histogram("many", "all at once", ["alias"], buckets=buckets, registry=CollectorRegistry())
    values = np.concatenate([np.random.default_rng(3).random(997), [0.0, 0.1, 0.2, 0.5, 1.0, 1.5]])
    for v in values:
        one.labels(CHAMPION_ALIAS).observe(v)
    observe_many(many.labels(CHAMPION_ALIAS), values)
    observe_many(many.labels(CHAMPION_ALIAS), np.array([]))
    rename = lambda samples: {(n.replace("many", "one"), labels): v for (n, labels), v in samples.items()}  # noqa: E731
    got = rename(_samples(many))
    expected = _samples(one)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert np.isclose(got[key], value), key
