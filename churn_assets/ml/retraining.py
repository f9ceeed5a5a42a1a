"""When training is worth running: the reasons, from facts about the data and the current champion.

Dagster's automation decides *when to look* (new training data, a drift verdict, a weekly tick; see
``churn_assets.automation``); this rule decides, from the data, whether the look finds a reason to train.
Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetrainingPolicy:
    min_new_rows_share: float = 0.1
    """New labelled rows, as a share of the champion's training rows, that warrant training on their own."""
    max_champion_age_days: float = 7.0
    """A champion older than this is refreshed (by the weekly tick) when any new data arrived."""


@dataclass(frozen=True)
class RetrainingFacts:
    data_version: str
    """md5 of marts.training_set now."""
    tried_data_versions: frozenset[str]
    """Data versions the champion and the latest candidate were trained on."""
    has_champion: bool
    champion_training_rows: int = 0
    new_labelled_rows: int = 0
    """Labelled customers ingested after the newest row the champion was trained on."""
    drifted_batches: tuple[str, ...] = ()
    """Batches ingested after the champion's data whose drift check failed."""
    served_drift: bool = False
    """The served-traffic drift check failed since the champion was trained."""
    champion_age_days: float = 0.0
    forced: bool = False


@dataclass(frozen=True)
class RetrainingDecision:
    train: bool
    reasons: list[str] = field(default_factory=list)
    blocker: str | None = None

    @property
    def summary(self) -> str:
        if self.train:
            return "train: " + "; ".join(self.reasons)
        return "no training: " + (self.blocker or "no reason (no drift, few new rows, champion recent)")


def decide_retraining(facts: RetrainingFacts, policy: RetrainingPolicy) -> RetrainingDecision:
    if facts.forced:
        return RetrainingDecision(True, ["requested by hand (force)"])
    if not facts.has_champion:
        return RetrainingDecision(True, ["no champion yet"])
    if facts.data_version in facts.tried_data_versions:
        return RetrainingDecision(False, blocker=f"data version {facts.data_version[:12]} already trained on")
    reasons = []
    if facts.drifted_batches:
        reasons.append(f"drift in batch(es) {', '.join(facts.drifted_batches)}")
    if facts.served_drift and facts.new_labelled_rows:
        reasons.append("served traffic drifted and new labels arrived")
    needed = policy.min_new_rows_share * facts.champion_training_rows
    if facts.new_labelled_rows and facts.new_labelled_rows >= needed:
        reasons.append(
            f"{facts.new_labelled_rows} new labelled rows ≥ {policy.min_new_rows_share:.0%} of the "
            f"champion's {facts.champion_training_rows}"
        )
    if facts.champion_age_days >= policy.max_champion_age_days and facts.new_labelled_rows:
        reasons.append(f"champion is {facts.champion_age_days:.1f} days old and new labels arrived")
    return RetrainingDecision(bool(reasons), reasons)
