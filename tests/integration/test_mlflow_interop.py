"""The registered champion used the way MLflow users use models: `mlflow.pyfunc.load_model(...).predict(...)`
on the real file held three ways, and `mlflow models serve` answering typed and text JSON bodies."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from benchmarks.servers import ManagedServer, free_port
from churn_assets.ml.champion import CHAMPION_ALIAS, MODEL_NAME
from tests.conftest import Installation

CHAMPION = f"models:/{MODEL_NAME}@{CHAMPION_ALIAS}"
NUMBERS = ["SeniorCitizen", "tenure", "MonthlyCharges", "TotalCharges"]


@pytest.fixture(scope="module")
def champion(materialized: Installation) -> mlflow.pyfunc.PyFuncModel:
    mlflow.set_tracking_uri(materialized.settings.mlflow_tracking_uri)
    return mlflow.pyfunc.load_model(CHAMPION)


@pytest.fixture(scope="module")
def forms(real_csv: Path) -> dict[str, pd.DataFrame]:
    """The whole file (label included) as people hold it: plain read_csv, typed JSON, all text."""
    plain = pd.read_csv(real_csv)
    text = pd.read_csv(real_csv, dtype=str, keep_default_na=False)
    # Typed JSON: integers, doubles, and TotalCharges a double or null (the file's blank " ").
    typed_body = plain.assign(TotalCharges=pd.to_numeric(plain["TotalCharges"], errors="coerce")).to_json(
        orient="records", double_precision=15
    )
    typed = pd.DataFrame(json.loads(typed_body))
    assert [str(plain[c].dtype) for c in NUMBERS] == ["int64", "int64", "float64", "object"]
    assert [str(typed[c].dtype) for c in NUMBERS] == ["int64", "int64", "float64", "float64"]
    assert typed["TotalCharges"].isna().sum() == (text["TotalCharges"].str.strip() == "").sum() == 11
    return {"read_csv": plain, "typed_json": typed, "all_strings": text}


def test_every_form_of_the_file_scores_identically(
    champion: mlflow.pyfunc.PyFuncModel, forms: dict[str, pd.DataFrame]
) -> None:
    scored = {name: champion.predict(frame) for name, frame in forms.items()}

    reference = scored["all_strings"]
    assert len(reference) == 7043
    assert reference["customer_id"].tolist() == forms["all_strings"]["customerID"].str.strip().tolist()
    assert reference["churn_probability"].between(0, 1, inclusive="neither").all()
    for name in ("read_csv", "typed_json"):
        pd.testing.assert_frame_equal(scored[name], reference, check_exact=True, obj=name)


@pytest.fixture(scope="module")
def mlflow_serve(materialized: Installation, tmp_path_factory: pytest.TempPathFactory):
    """`mlflow models serve` on the champion, as a user starts it, on a free local port."""
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": str(materialized.settings.mlflow_tracking_uri),
        # `mlflow models serve` execs uvicorn through bash: the venv's bin must come first on PATH.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    argv = [sys.executable, "-m", "mlflow", "models", "serve", "-m", CHAMPION, "--env-manager", "local"]
    argv += ["-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    log = tmp_path_factory.mktemp("mlflow-serve") / "serve.log"
    with ManagedServer("mlflow models serve", argv, env, port, "/ping", log) as server:  # stops the group
        server.wait_ready(timeout=180)
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def expected(champion: mlflow.pyfunc.PyFuncModel, forms: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return champion.predict(forms["all_strings"])


@pytest.mark.parametrize("orient", ["dataframe_records", "dataframe_split"])
@pytest.mark.parametrize("form", ["typed_json", "all_strings", "read_csv"])
def test_mlflow_models_serve_answers_every_form(
    mlflow_serve: str,
    expected: pd.DataFrame,
    forms: dict[str, pd.DataFrame],
    form: str,
    orient: str,
) -> None:
    frame = forms[form]
    body = frame.to_json(orient="records" if orient == "dataframe_records" else "split", double_precision=15)
    payload = f'{{"{orient}": {body}}}'

    response = httpx.post(
        f"{mlflow_serve}/invocations",
        content=payload,
        headers={"Content-Type": "application/json"},
        timeout=120,
    )

    assert response.status_code == 200, response.text[:2000]
    served = pd.DataFrame(response.json()["predictions"])
    assert served["customer_id"].tolist() == expected["customer_id"].tolist()
    np.testing.assert_allclose(served["churn_probability"], expected["churn_probability"], rtol=0, atol=1e-9)
    assert served["churn_prediction"].tolist() == expected["churn_prediction"].tolist()
