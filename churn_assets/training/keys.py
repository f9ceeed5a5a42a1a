"""The ML group's asset keys, owned here so the assets, the automation conditions and the CLI name them alike
(the automation needs the training chain's keys before the assets that carry them are built)."""

import dagster as dg

from churn_assets.ml.families import CANDIDATES, CandidateName

TRAINING_SNAPSHOT = dg.AssetKey(["ml", "training_snapshot"])
EVALUATION_REPORT = dg.AssetKey(["ml", "evaluation_report"])
REGISTERED_MODEL = dg.AssetKey(["ml", "registered_model"])
PROMOTION_DECISION = dg.AssetKey(["ml", "promotion_decision"])
CHAMPION_MODEL = dg.AssetKey(["ml", "champion_model"])


def candidate_key(family: CandidateName) -> dg.AssetKey:
    return dg.AssetKey(["ml", f"candidate_{family}"])


TRAINING_CHAIN: tuple[dg.AssetKey, ...] = (
    *(candidate_key(name) for name in CANDIDATES),
    EVALUATION_REPORT,
    REGISTERED_MODEL,
    PROMOTION_DECISION,
    CHAMPION_MODEL,
)
"""What a training run executes after the snapshot (in one run, in this order)."""
