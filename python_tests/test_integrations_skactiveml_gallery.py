"""The scikit-activeml gallery entry for UWE (examples/skactiveml_gallery/_uwe.json) runs as
scikit-activeml's pool template runs an entry: the entry's import and `init_qs`, then cycles of
`qs.query(<query_params>)` on its blob data with a ParzenWindowClassifier and
`plot_utilities` over a candidate grid, labelling the picks."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("skactiveml")
pytest.importorskip("matplotlib")

ENTRY = Path(__file__).resolve().parents[1] / "examples" / "skactiveml_gallery" / "_uwe.json"


def test_gallery_entry_runs_three_cycles_of_the_pool_template() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from skactiveml.classifier import ParzenWindowClassifier
    from skactiveml.utils import MISSING_LABEL, labeled_indices
    from skactiveml.visualization import plot_decision_boundary, plot_utilities
    from sklearn.datasets import make_blobs

    (entry,) = json.loads(ENTRY.read_text())
    assert entry["template"] == "examples/template_pool.py" and entry["class"] in entry["init_qs"]
    random_state = np.random.RandomState(0)
    X, y_true = make_blobs(n_samples=200, n_features=2, centers=[[0, 1], [-3, .5], [-1, -1], [2, 1], [1, -.5]],
                           cluster_std=.7, random_state=random_state)
    y_true = y_true % 2
    y = np.full(shape=y_true.shape, fill_value=MISSING_LABEL)
    clf = ParzenWindowClassifier(classes=[0, 1], random_state=random_state)
    scope: dict[str, Any] = {"np": np, "random_state": random_state}
    exec(entry["import_misc"], scope)
    qs = eval(entry["init_qs"], scope)
    fig, ax = plt.subplots()
    feature_bound = [[min(X[:, 0]), min(X[:, 1])], [max(X[:, 0]), max(X[:, 1])]]
    try:
        for _ in range(3):
            clf.fit(X, y)
            call = {"qs": qs, "X": X, "y": y, "clf": clf}
            query_idx = eval(f"qs.query({entry['query_params']})", call)
            ax = eval(f"plot_utilities(qs, {entry['query_params']}, candidates=None, res=25, "
                      "feature_bound=feature_bound, ax=ax)",
                      {**call, "plot_utilities": plot_utilities, "feature_bound": feature_bound, "ax": ax})
            ax = plot_decision_boundary(clf, feature_bound, ax=ax)
            assert len(query_idx) == 1 and np.isnan(y[query_idx]).all()
            y[query_idx] = y_true[query_idx]
    finally:
        plt.close(fig)
    assert len(labeled_indices(y)) == 3
