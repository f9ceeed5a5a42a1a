"""The parts of the model store that need no registry: the local cache, the error texts, and how an optional
alias (the challenger) follows a fake registry."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from churn_assets.ml.champion import CHALLENGER_ALIAS, CHAMPION_ALIAS, MODEL_NAME
from serving.model_store import LoadedModel, ModelStore, prune_cache, redact


def test_the_cache_keeps_the_newest_versions_and_every_last_good_one(tmp_path: Path) -> None:
    for age, version in enumerate(["7", "6", "5", "4", "3"]):  # v7 newest
        folder = tmp_path / f"{MODEL_NAME}-v{version}-run{version}"
        folder.mkdir()
        os.utime(folder, (1_000_000 - age, 1_000_000 - age))
    (tmp_path / f"last-good-{MODEL_NAME}@{CHAMPION_ALIAS}").write_text(f"{MODEL_NAME}-v3-run3")
    abandoned = tmp_path / f".{MODEL_NAME}-v8-run8-1234"  # a download left by a killed worker
    abandoned.mkdir()
    os.utime(abandoned, (1_000, 1_000))
    deleted = prune_cache(tmp_path, keep=3)
    assert sorted(p.name for p in deleted) == [
        f".{MODEL_NAME}-v8-run8-1234",
        f"{MODEL_NAME}-v4-run4",
        f"{MODEL_NAME}-v5-run5",
    ]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        f"{MODEL_NAME}-v3-run3",
        f"{MODEL_NAME}-v6-run6",
        f"{MODEL_NAME}-v7-run7",
    ]


def test_error_texts_name_no_host_path() -> None:
    assert redact("No such file or directory: '/tmp/pytest-7/home/no-such-model'") == (
        "No such file or directory: '<path>'"
    )
    assert redact("cannot open sqlite:////srv/churn/mlflow/mlflow.db") == "cannot open <path>"
    assert redact('no "MLmodel" at "file:///srv/churn/mlflow/artifacts/1/x"') == 'no "MLmodel" at "<path>"'
    no_path = f"models:/{MODEL_NAME}/5 is not a ChurnModel"
    assert redact(no_path) == no_path


class FakeRegistry:
    """Answers `get_model_version_by_alias` from a dict; an alias it lacks is the registry's own 'not found'."""

    def __init__(self, aliases: dict[str, str], reachable: bool = True) -> None:
        self.aliases, self.reachable = aliases, reachable

    def get_model_version_by_alias(self, name: str, alias: str):
        if not self.reachable:
            raise ConnectionError("registry down")
        if alias not in self.aliases:
            raise MlflowException(f"Registered model alias {alias} not found.", INVALID_PARAMETER_VALUE)
        return SimpleNamespace(version=self.aliases[alias])


def _loaded(version: str) -> LoadedModel:
    loaded = LoadedModel.__new__(LoadedModel)  # no model, no feature SQL: only what the store reads
    loaded.name, loaded.version, loaded.run_id, loaded.info = MODEL_NAME, version, f"run{version}", {}
    return loaded


@pytest.fixture
def challenger_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An optional store for `challenger` that stands down on the champion's version v1."""
    broken = set()

    def load(client, name, version, cache_dir):
        if version in broken:
            raise OSError(f"cannot read /srv/models/{version}")
        return _loaded(version)

    monkeypatch.setattr("serving.model_store.load_version", load)
    events = []
    store = ModelStore(
        f"sqlite:///{tmp_path}/mlflow.db",
        MODEL_NAME,
        CHALLENGER_ALIAS,
        1.0,
        tmp_path,
        on_event=lambda kind, detail: events.append((kind, detail)),
        optional=True,
        stand_down=lambda version: "the champion's version" if version == "1" else None,
    )
    store.client = FakeRegistry({CHALLENGER_ALIAS: "2"})
    return store, events, broken


def test_an_optional_store_follows_its_alias_and_serves_nothing_without_a_usable_version(
    challenger_store,
) -> None:
    store, events, broken = challenger_store
    assert store.refresh() and store.current.version == "2"
    store.client.aliases[CHALLENGER_ALIAS] = "1"  # promoted: the challenger is now the champion's version
    assert not store.refresh()
    assert store.current is None and store.standing_down == "the champion's version"
    store.client.aliases[CHALLENGER_ALIAS] = "3"
    broken.add("3")  # the alias names a version that does not load: no older challenger instead
    store.refresh()
    assert store.current is None and f"refused {MODEL_NAME} v3" in store.standing_down
    assert "/srv/models" not in store.standing_down
    del store.client.aliases[CHALLENGER_ALIAS]
    store.refresh()
    assert store.current is None and store.standing_down == f"{MODEL_NAME}@{CHALLENGER_ALIAS} is not set"
    assert [kind for kind, _ in events] == ["loaded", "stood_down", "load_failed", "stood_down"]
    store.refresh()
    assert len(events) == 4  # once per reason, not once per poll


def test_an_optional_store_keeps_its_version_while_the_registry_is_unreachable(challenger_store) -> None:
    store, _, _ = challenger_store
    store.refresh()
    store.client.reachable = False
    store.refresh()
    assert store.current.version == "2" and "registry down" in store.last_error
