"""`churn` command line: land the data set, run the main job headless, start the UI."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from churn_assets.settings import REPO_ROOT, Settings, get_settings, restrict_to_owner


def main(argv: list[str] | None = None) -> int:
    restrict_to_owner()
    parser = argparse.ArgumentParser(prog="churn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="data set commands").add_subparsers(
        dest="data_command", required=True
    )
    fetch = data.add_parser("fetch", help="land the public Telco CSV (URL with checksum, or a local copy)")
    fetch.add_argument("--source", type=Path, help="local copy of the CSV (default: $CHURN_SOURCE_CSV)")

    commands.add_parser("run", help="fetch the data if missing and materialize the whole graph headless")
    commands.add_parser(
        "ui",
        help="start the Dagster UI (dagster dev -w workspace.yaml) on this installation, port $CHURN_UI_PORT",
    )
    commands.add_parser("env", help="print the environment variables of this installation")

    args = parser.parse_args(argv)
    settings = get_settings()
    settings.ensure_dirs()
    if args.command == "data":
        return _fetch(settings, args.source)
    if args.command == "run":
        return _run(settings)
    if args.command == "ui":
        os.environ.update(settings.subprocess_env())
        os.chdir(REPO_ROOT)
        # The tools installed beside this Python (dagster, and dbt for the code server's project
        # preparation) come first on PATH, as under `make ui`, even when the virtualenv is not activated.
        scripts = Path(sys.executable).parent
        os.environ["PATH"] = f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}"
        os.execvp("dagster", ["dagster", "dev", "-w", "workspace.yaml", "-p", str(settings.ui_port)])
    for name, value in settings.subprocess_env().items():
        print(f"export {name}={value}")
    return 0


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


# Step-level events stay in the run log (make ui); the terminal gets INFO and above.
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _run(settings: Settings) -> int:
    from churn_assets.ingest.store import landed_files

    if not landed_files(settings.landing_dir) and (status := _fetch(settings, None)) != 0:
        return status
    os.environ.update(settings.subprocess_env())

    import dagster as dg

    from churn_assets.definitions import build_definitions
    from churn_assets.jobs import MAIN_JOB
    from churn_assets.summary import print_summary

    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        result = (
            build_definitions(settings)
            .resolve_job_def(MAIN_JOB)
            .execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET)
        )
    elapsed = time.perf_counter() - started
    print_summary(settings, result, elapsed)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
