"""Data profiling and drift reporting with Evidently, kept free of orchestration.

Evidently takes seconds to import, and Dagster imports the definitions in every step process,
so the modules here import it inside the functions that build reports (telemetry off: `_evidently`).
"""
