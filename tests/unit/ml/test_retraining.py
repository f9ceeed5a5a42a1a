"""When training is warranted: each reason on its own, and the rules that override them."""

from dataclasses import replace

from churn_assets.ml.retraining import RetrainingFacts, RetrainingPolicy, decide_retraining

POLICY = RetrainingPolicy(min_new_rows_share=0.1, max_champion_age_days=7)
QUIET = RetrainingFacts(
    data_version="new",
    tried_data_versions=frozenset({"old"}),
    has_champion=True,
    champion_training_rows=7000,
    new_labelled_rows=0,
)


def test_nothing_new_is_no_reason() -> None:
    decision = decide_retraining(QUIET, POLICY)
    assert not decision.train and decision.summary.startswith("no training")


def test_no_champion_trains() -> None:
    assert decide_retraining(replace(QUIET, has_champion=False), POLICY).train


def test_a_drifted_batch_trains() -> None:
    decision = decide_retraining(replace(QUIET, drifted_batches=("abc",), new_labelled_rows=50), POLICY)
    assert decision.train and "abc" in decision.summary


def test_new_rows_train_from_the_configured_share() -> None:
    assert not decide_retraining(replace(QUIET, new_labelled_rows=699), POLICY).train
    assert decide_retraining(replace(QUIET, new_labelled_rows=700), POLICY).train


def test_an_old_champion_is_refreshed_only_with_new_labels() -> None:
    old = replace(QUIET, champion_age_days=8)
    assert not decide_retraining(old, POLICY).train
    assert decide_retraining(replace(old, new_labelled_rows=1), POLICY).train


def test_served_drift_needs_new_labels_to_train() -> None:
    assert not decide_retraining(replace(QUIET, served_drift=True), POLICY).train
    assert decide_retraining(replace(QUIET, served_drift=True, new_labelled_rows=5), POLICY).train


def test_data_already_trained_on_never_trains_whatever_the_reasons() -> None:
    tried = replace(
        QUIET, data_version="old", drifted_batches=("abc",), new_labelled_rows=5000, champion_age_days=30
    )
    decision = decide_retraining(tried, POLICY)
    assert not decision.train and "already trained" in decision.summary
    assert decide_retraining(replace(tried, forced=True), POLICY).train  # only by hand
