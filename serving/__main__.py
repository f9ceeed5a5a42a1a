"""`python -m serving` (make serve): the prediction server on CHURN_SERVE_PORT for CHURN_HOME."""

import os
import sys

from pydantic import ValidationError

from serving.config import ServeSettings


def run() -> None:
    try:
        settings = ServeSettings()
    except ValidationError as exc:
        sys.exit(f"invalid server settings: {exc}")
    # prometheus_client picks its multiprocess mode when it is imported: name this server's own metrics
    # folder before `serving.server` imports it; LitServe's spawned processes inherit the variable.
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the server named its metrics folder")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(settings.metrics_dir)
    settings.metrics_dir.mkdir(parents=True, exist_ok=True)

    from serving.server import main

    main(settings)


if __name__ == "__main__":
    run()
