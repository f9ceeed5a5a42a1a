"""`churn` command line: land or simulate data, run the graph headless, start the UI, move the champion."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from churn_assets.settings import REPO_ROOT, Settings, get_settings, restrict_to_owner
from churn_assets.simulate import SCENARIOS


def main(argv: list[str] | None = None) -> int:
    restrict_to_owner()
    parser = argparse.ArgumentParser(prog="churn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="data set commands").add_subparsers(
        dest="data_command", required=True
    )
    fetch = data.add_parser("fetch", help="land the public Telco CSV (URL with checksum, or a local copy)")
    fetch.add_argument("--source", type=Path, help="local copy of the CSV (default: $CHURN_SOURCE_CSV)")
    simulate = data.add_parser("simulate", help="write a realistic new batch drawn from the real data")
    simulate.add_argument("--rows", type=int, default=1500)
    simulate.add_argument("--scenario", choices=SCENARIOS, default="none")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument(
        "--source", type=Path, help="the real CSV to draw from (default: $CHURN_SOURCE_CSV)"
    )
    where = simulate.add_mutually_exclusive_group()
    where.add_argument("--land", action="store_true", help="write it into the landing directory")
    where.add_argument("--out", type=Path, help="write it to this path (default: the current directory)")

    model = commands.add_parser("model", help="the registry's champion").add_subparsers(
        dest="model_command", required=True
    )
    model.add_parser("status", help="champion, challenger, champion history and recent decisions")
    promote = model.add_parser("promote", help="make VERSION the champion now")
    promote.add_argument("version")
    approve = model.add_parser("approve", help="promote a VERSION whose decision awaits approval")
    approve.add_argument("version")
    back = model.add_parser("rollback", help="give the champion back to the previous one (or --to VERSION)")
    back.add_argument("--to", dest="version")
    for command in (promote, approve, back):
        command.add_argument("--reason", default="", help="why (recorded on the version and in Dagster)")

    commands.add_parser("run", help="fetch the data if missing and materialize the whole graph headless")
    commands.add_parser(
        "ui",
        help="start the Dagster UI (dagster dev -w workspace.yaml) on this installation, at $CHURN_UI_HOST:$CHURN_UI_PORT",
    )
    commands.add_parser("env", help="print the environment variables of this installation")
    exporter = commands.add_parser("exporter", help="serve the pipeline's Prometheus metrics (until SIGTERM)")
    exporter.add_argument("--host", default="127.0.0.1")
    exporter.add_argument("--port", type=int, default=9108)

    args = parser.parse_args(argv)
    settings = get_settings()
    settings.ensure_dirs()
    if args.command == "data" and args.data_command == "simulate":
        return _simulate(settings, args)
    if args.command == "data":
        return _fetch(settings, args.source)
    if args.command == "model":
        return _model(settings, args)
    if args.command == "run":
        return _run(settings)
    if args.command == "exporter":
        os.environ.update(settings.subprocess_env())
        from churn_assets.monitoring.exporter import serve

        return serve(args.host, args.port)
    if args.command == "ui":
        _create_stores(settings)
        os.environ.update(settings.subprocess_env())
        os.chdir(REPO_ROOT)
        # The tools installed beside this Python (dagster, and dbt for the code server's project
        # preparation) come first on PATH, as under `make ui`, even when the virtualenv is not activated.
        scripts = Path(sys.executable).parent
        os.environ["PATH"] = f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}"
        dev = ["dagster", "dev", "-w", "workspace.yaml", "-h", settings.ui_host, "-p", str(settings.ui_port)]
        os.execvp("dagster", dev)  # nosec B606, B607 # execs the virtualenv's dagster (its scripts directory leads PATH, set above), no shell
    for name, value in settings.subprocess_env().items():
        print(f"export {name}={value}")
    return 0


def _create_stores(settings: Settings) -> None:
    """Create (and migrate) the Dagster and MLflow stores here, once, before `dagster dev` starts its
    webserver, daemon and code server: processes creating the same empty SQLite store at once race on its
    schema version (`UNIQUE constraint failed: alembic_version.version_num`)."""
    import dagster as dg
    from mlflow import MlflowClient

    with dg.DagsterInstance.from_config(str(settings.dagster_home)):
        pass
    MlflowClient(settings.mlflow_tracking_uri).search_registered_models(max_results=1)


def _fetch(settings: Settings, source: Path | None) -> int:
    from churn_assets.ingest.fetch import FetchError, land_dataset

    try:
        landed = land_dataset(
            settings.landing_dir,
            source=source or settings.source_csv,
            url=settings.source_url,
            expected_sha256=settings.source_sha256,
        )
    except FetchError as exc:
        print(f"churn data fetch: {exc}", file=sys.stderr)
        return 2
    verb = "already landed as" if landed.already_landed else "landed"
    public = (
        "the public IBM file" if landed.matches_public_file else "NOT the public IBM file (checksum differs)"
    )
    print(f"{verb} {landed.path} (sha256 {landed.sha256[:16]}…, {public})")
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from churn_assets.simulate import batch_file_name, simulate_batch, write_batch

    source = args.source or settings.source_csv
    if source is None or not source.is_file():
        print(
            f"churn data simulate: the real CSV is needed (--source or CHURN_SOURCE_CSV): {source}",
            file=sys.stderr,
        )
        return 2
    frame = simulate_batch(source, args.rows, args.scenario, args.seed)
    name = batch_file_name(args.scenario, args.seed, args.rows)
    target = settings.landing_dir / name if args.land else (args.out or Path.cwd() / name)
    write_batch(frame, target)
    print(f"wrote {frame.height} simulated rows ({args.scenario}, seed {args.seed}) to {target}")
    return 0


def _model(settings: Settings, args: argparse.Namespace) -> int:
    os.environ.update(settings.subprocess_env())
    from churn_assets.model_commands import ModelCommandError, run_model_command

    try:
        print(
            run_model_command(
                settings,
                args.model_command,
                args.version if "version" in args else None,
                args.reason if "reason" in args else "",
            )
        )
    except ModelCommandError as exc:
        print(f"churn model {args.model_command}: {exc}", file=sys.stderr)
        return 2
    return 0


# Step-level events stay in the run log (make ui); the terminal gets INFO and above.
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _run(settings: Settings) -> int:
    from churn_assets.ingest.store import landed_files

    if not landed_files(settings.landing_dir) and (status := _fetch(settings, None)) != 0:
        return status
    os.environ.update(settings.subprocess_env())

    import dagster as dg

    from churn_assets.definitions import build_definitions
    from churn_assets.headless import run_all
    from churn_assets.summary import print_summary

    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        outcome = run_all(build_definitions(settings), instance, main_config=QUIET, batch_config=QUIET)
    elapsed = time.perf_counter() - started
    print_summary(settings, outcome, elapsed)
    return 0 if outcome.success else 1


if __name__ == "__main__":
    sys.exit(main())
