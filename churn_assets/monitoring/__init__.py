"""Data profiling and drift reporting with Evidently, kept free of orchestration.

Evidently takes seconds to import, and Dagster imports the definitions in every step process,
so the modules here import it inside the functions that build reports.

Telemetry is switched off here, before any submodule can import Evidently, so no report run
phones home whichever entry point loads the package.
"""

import os

os.environ["DO_NOT_TRACK"] = "1"
os.environ["EVIDENTLY_DISABLE_TELEMETRY"] = "1"
