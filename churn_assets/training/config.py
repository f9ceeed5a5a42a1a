"""Run configuration of model training (Launchpad in the UI, run_config in code)."""

import dagster as dg


class TrainingConfig(dg.Config):
    """Defaults keep the whole graph to a few minutes on 2 cores; raise n_trials/timeout_s for a real search."""

    n_trials: int = 6
    """Optuna trials per model family (0 = score the family defaults only)."""
    timeout_s: float = 90.0
    """Wall-clock budget per family's search, in seconds."""
    cv_folds: int = 3
    """Stratified folds of the train split used to score each trial."""
    quality_cv_folds: int = 2
    """Folds of the repeated stratified CV that scores each candidate's final, calibrated configuration."""
    quality_cv_repeats: int = 5
    """Repeats of it (5 x 2 by default: ten fits on half the train split; 1 for a quick check)."""
    quality_cv_jobs: int = 2
    """Processes fitting those splits in parallel (joblib); the scores do not depend on it."""
    seed: int = 42
    offer_cost: float = 100.0
    """Cost of one retention offer, in dollars."""
    saved_customer_value: float = 800.0
    """Value of keeping a customer who would have churned, in dollars."""
    offer_success_rate: float = 0.35
    """Share of contacted churners the offer keeps."""
    shuffle_labels: bool = False
    """Negative control: train on permuted labels. The champion gate must refuse the result."""
