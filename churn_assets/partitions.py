"""Partitions: one per landed batch, keyed by its content (see ``churn_assets.ingest.store.batch_id_of``).

The landing sensor adds a key when a file with new content lands; the same bytes under another name, or
the same file seen again after a restart, map to a key that already exists, so nothing is loaded twice.
"""

import dagster as dg

BATCHES_NAME = "landed_batches"
BATCHES = dg.DynamicPartitionsDefinition(name=BATCHES_NAME)

LANDED_FILE_TAG = "churn/landed_file"
"""Run tag naming the file a batch run was requested for (a hint: the content decides, see ``find_batch_file``)."""
