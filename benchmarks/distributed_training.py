"""When does training need XGBoost on Dask or Spark? Single-machine XGBoost fit time and peak memory as rows grow.

Each size runs in its own child process (so one size's memory is not the next one's): the child builds a
synthetic training matrix of the project's shape (float64, ~40 features: a few continuous charges and tenure
columns, a few small counts, the rest 0/1 flags, as ``churn_assets.ml.matrix.feature_matrix`` hands to the
model), then fits the project's own XGBoost estimator (``churn_assets.ml.families.build_estimator`` with the
family defaults: ``hist``, 300 trees of depth 4) once, uncalibrated, with ``--threads`` threads. It reports
wall seconds of the fit and its own peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) after the
imports, after the data and after the fit.

From the two largest sizes it extrapolates linearly (both grow linearly in rows for ``hist``):
- the memory limit: the row count at which one fit's peak RSS reaches ``--memory-budget-gib`` (default 20 of
  the machine's 24 GiB, the rest for the OS, Dagster and DuckDB);
- the time limit: the row count at which one retraining of the XGBoost family, ``FITS_PER_RETRAINING``
  full-size fits with the default ``TrainingConfig``, passes ``--window-hours``.
Past the smaller of the two, one machine is not enough and XGBoost on Dask (``xgboost.dask``) or Spark
(``xgboost.spark``) pays off.

Run: ``.venv/bin/python benchmarks/distributed_training.py --sizes 100000,1000000,5000000,10000000``
(about 5 minutes on 2 cores). Exit code 1 when a child failed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_SIZES = (100_000, 1_000_000, 5_000_000, 10_000_000)
CONTINUOUS, COUNTS, FLAGS = 6, 3, 31  # 40 features, as the customer_features mart feeds the model
CHUNK_ROWS = 1_000_000
MIB = 2**20
# Full-size-equivalent XGBoost fits in one retraining with the default TrainingConfig (fit time is linear in
# rows): the search, 6 trials x 3 folds on 2/3 of the rows (12); the quality CV, 5 repeats x 2 folds on half
# the rows, each calibrated = 5 fits on 4/5 of that plus one on all of it (10 x 0.5 x 5 = 25); the final
# calibrated fit (5). Trials that draw deeper or longer models than the defaults cost more: a lower bound.
FITS_PER_RETRAINING = 12 + 25 + 5


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def synthetic(rows: int, seed: int):
    """A float64 feature matrix of the project's shape and a ~26% churn label that depends on it."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = np.empty((rows, CONTINUOUS + COUNTS + FLAGS), dtype=np.float64)
    y = np.empty(rows, dtype=np.int64)
    for start in range(0, rows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, rows - start)
        block = X[start : start + n]
        block[:, 0] = rng.integers(0, 73, n)  # tenure_months
        block[:, 1] = rng.uniform(18, 120, n)  # monthly_charges
        block[:, 2] = block[:, 0] * block[:, 1] * rng.uniform(0.9, 1.1, n)  # total_charges
        block[:, 3:CONTINUOUS] = rng.normal(size=(n, CONTINUOUS - 3))
        block[:, CONTINUOUS : CONTINUOUS + COUNTS] = rng.integers(0, 7, (n, COUNTS))
        block[:, CONTINUOUS + COUNTS :] = rng.random((n, FLAGS)) < 0.4
        logit = -1.0 - 0.05 * block[:, 0] + 0.02 * block[:, 1] + 1.2 * block[:, 9] - 0.8 * block[:, 10]
        y[start : start + n] = rng.random(n) < 1 / (1 + np.exp(-logit))
    return X, y


def child(rows: int, threads: int, seed: int) -> dict[str, float]:
    from churn_assets.ml.families import build_estimator

    after_imports = maxrss_mib()
    X, y = synthetic(rows, seed)
    after_data = maxrss_mib()
    estimator = build_estimator("xgboost", {}, seed).set_params(model__n_jobs=threads)
    start = time.perf_counter()
    estimator.fit(X, y)
    fit_s = time.perf_counter() - start
    return {
        "rows": rows,
        "features": X.shape[1],
        "matrix_mib": X.nbytes / MIB,
        "fit_s": fit_s,
        "rss_after_imports_mib": after_imports,
        "rss_after_data_mib": after_data,
        "peak_rss_mib": maxrss_mib(),
        "churn_rate": float(y.mean()),
    }


def run_size(rows: int, threads: int, seed: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", str(rows), "--threads", str(threads), "--seed", str(seed)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{rows} rows: child exited {done.returncode}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def crossing(x0: float, y0: float, x1: float, y1: float, limit: float) -> float:
    """The x at which the line through (x0, y0) and (x1, y1) reaches `limit` (inf when it does not grow)."""
    slope = (y1 - y0) / (x1 - x0)
    return float("inf") if slope <= 0 else x1 + (limit - y1) / slope


def limits(results: list[dict[str, float]], budget_gib: float, window_h: float) -> dict[str, float]:
    a, b = results[-2], results[-1]
    memory_rows = crossing(a["rows"], a["peak_rss_mib"], b["rows"], b["peak_rss_mib"], budget_gib * 1024)
    retrain_s = window_h * 3600
    time_rows = crossing(
        a["rows"], a["fit_s"] * FITS_PER_RETRAINING, b["rows"], b["fit_s"] * FITS_PER_RETRAINING, retrain_s
    )
    return {
        "memory_limit_rows": memory_rows,
        "time_limit_rows": time_rows,
        "peak_rss_bytes_per_row": (b["peak_rss_mib"] - a["peak_rss_mib"]) * MIB / (b["rows"] - a["rows"]),
        "fit_us_per_row": (b["fit_s"] - a["fit_s"]) * 1e6 / (b["rows"] - a["rows"]),
    }


def table(results: list[dict[str, float]]) -> str:
    lines = [
        f"| rows | matrix MiB | fit s (1 fit) | retraining h (x{FITS_PER_RETRAINING} fits) | peak RSS MiB |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        retraining_h = r["fit_s"] * FITS_PER_RETRAINING / 3600
        lines.append(
            f"| {r['rows']:,} | {r['matrix_mib']:,.0f} | {r['fit_s']:.1f} | {retraining_h:.2f} "
            f"| {r['peak_rss_mib']:,.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="row counts, ascending")
    parser.add_argument("--threads", type=int, default=2, help="XGBoost threads (the machine's cores)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--memory-budget-gib", type=float, default=20.0)
    parser.add_argument("--window-hours", type=float, default=2.0, help="wall time one retraining may take")
    parser.add_argument("--output-json", type=Path)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.threads, args.seed)))
        return 0

    from benchmarks.machine import describe

    sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(","))
    if len(sizes) < 2:
        parser.error("--sizes needs at least two row counts to extrapolate")
    results = []
    for rows in sizes:
        try:
            results.append(run_size(rows, args.threads, args.seed))
        except RuntimeError as error:
            print(error, file=sys.stderr)
            return 1
        r = results[-1]
        print(f"{rows:>12,} rows: fit {r['fit_s']:.1f} s, peak RSS {r['peak_rss_mib']:,.0f} MiB", flush=True)
    found = limits(results, args.memory_budget_gib, args.window_hours)
    print(table(results))
    print(
        f"memory: {found['peak_rss_bytes_per_row']:.0f} bytes/row -> {args.memory_budget_gib:g} GiB "
        f"at {found['memory_limit_rows']:,.0f} rows; time: {found['fit_us_per_row']:.2f} us/row/fit -> "
        f"{FITS_PER_RETRAINING} fits in {args.window_hours:g} h at {found['time_limit_rows']:,.0f} rows"
    )
    if args.output_json:
        payload = {"machine": describe(), "threads": args.threads, "results": results, "limits": found}
        args.output_json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
