from pathlib import Path

import numpy as np

from churn_assets.ml.plots import write_comparison_plots


def test_comparison_plots_are_written_as_pngs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    probas = {"good": np.clip(y * 0.6 + rng.uniform(0, 0.4, 300), 0, 1), "random": rng.uniform(size=300)}

    paths = write_comparison_plots(y, probas, tmp_path / "plots")

    assert [p.name for p in paths] == ["roc.png", "pr.png", "calibration.png"]
    for path in paths:
        assert path.read_bytes().startswith(b"\x89PNG")
