"""Data profiling and drift reporting with Evidently, kept free of orchestration.

Telemetry is switched off here, before any submodule imports Evidently, so no report run
can phone home whichever entry point loads the package.
"""

import os

os.environ["DO_NOT_TRACK"] = "1"
os.environ["EVIDENTLY_DISABLE_TELEMETRY"] = "1"
