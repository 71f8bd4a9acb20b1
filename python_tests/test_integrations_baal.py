"""baal heuristics: BALD as baal computes it, picks equal to direct uwe_kernels calls on
classification and segmentation outputs, and baal's ActiveLearningLoop running three steps on
digits with integer and float X."""
from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest

import uwe_kernels as uk
from integration_data import digits, initial_labelled

pytest.importorskip("baal", reason='baal not installed: pip install --no-deps baal (see the "baal" extra)')
torch = pytest.importorskip("torch")
bl = importlib.import_module("uwe_kernels.integrations.baal")


def _mc_probabilities(shape: tuple[int, ...], seed: int, classes_axis: int = 1) -> np.ndarray:
    logits = np.random.default_rng(seed).standard_normal(shape) * 2.0
    e = np.exp(logits - logits.max(axis=classes_axis, keepdims=True))
    return e / e.sum(axis=classes_axis, keepdims=True)


@pytest.mark.parametrize("shape", [(37, 5, 8), (6, 3, 8, 4, 5)])
def test_mutual_information_equals_baal_bald(shape: tuple[int, ...]) -> None:
    from baal.active.heuristics import BALD

    probs = _mc_probabilities(shape, 0)
    np.testing.assert_allclose(bl.mutual_information(probs), BALD().compute_score(probs), rtol=1e-10, atol=1e-12)
    agree = _mc_probabilities(shape[:-1] + (1,), 1).repeat(shape[-1], axis=-1)
    np.testing.assert_allclose(bl.mutual_information(agree), 0.0, atol=1e-12)


@pytest.mark.parametrize("kind", ["bald", "entropy", "margin"])
@pytest.mark.parametrize("with_labelled", [False, True])
def test_uwe_ranks_equal_direct_call(kind: str, with_labelled: bool) -> None:
    probs, feats = _mc_probabilities((90, 4, 6), 2), np.random.default_rng(3).standard_normal((90, 7))
    lab_probs, lab_feats = _mc_probabilities((12, 4, 6), 4), np.random.default_rng(5).standard_normal((12, 7))
    outputs = bl.PoolOutputs(probs, feats, *((lab_probs, lab_feats) if with_labelled else ()))
    ranks, scores = bl.UWE(query_size=9, kind=kind, tau=0.7).get_ranks(outputs)

    def rows(p: np.ndarray, f: np.ndarray) -> np.ndarray:
        u = bl.mutual_information(p) if kind == "bald" else uk.uncertainty(p.mean(-1), kind, from_logits=False)
        return u[:, None] ** 0.7 * f

    emb = np.concatenate([rows(probs, feats), rows(lab_probs, lab_feats)]) if with_labelled else rows(probs, feats)
    want, dists = uk.kcenter_greedy(emb, np.arange(90, len(emb)) if with_labelled else None, 9,
                                    return_distances=True, backend="reference")
    np.testing.assert_array_equal(ranks[:9], want)
    np.testing.assert_array_equal(np.sort(ranks), np.arange(90))
    np.testing.assert_allclose(scores[want], dists, rtol=1e-9)
    assert np.count_nonzero(scores[ranks[9:]]) == 0


@pytest.mark.parametrize("kind", ["bald", "entropy"])
def test_uwe_segmentation_equals_region_means(kind: str) -> None:
    probs = _mc_probabilities((20, 3, 8, 8, 4), 6)
    feats = np.random.default_rng(7).standard_normal((20, 5, 4, 4))
    ranks, _ = bl.UWE(query_size=5, kind=kind, tau=1.5).get_ranks(bl.PoolOutputs(probs, feats))
    if kind == "bald":
        u = bl.mutual_information(probs).mean(axis=(1, 2))
    else:
        u = uk.uncertainty(probs.mean(-1).transpose(0, 2, 3, 1).reshape(-1, 3), "entropy",
                           from_logits=False).reshape(20, 64).mean(axis=1)
    emb = u[:, None] ** 1.5 * feats.mean(axis=(2, 3))
    np.testing.assert_array_equal(ranks[:5], uk.kcenter_greedy(emb, None, 5, backend="reference"))


def test_coreset_and_badge_equal_direct_calls() -> None:
    probs, feats = _mc_probabilities((70, 4, 5), 8), np.random.default_rng(9).standard_normal((70, 6))
    lab_feats = np.random.default_rng(10).standard_normal((10, 6))
    outputs = bl.PoolOutputs(probs, feats, _mc_probabilities((10, 4, 5), 11), lab_feats)
    ranks, _ = bl.CoreSet(query_size=6).get_ranks(outputs)
    np.testing.assert_array_equal(ranks[:6], uk.kcenter_greedy(np.concatenate([feats, lab_feats]),
                                                              np.arange(70, 80), 6))
    ranks, _ = bl.Badge(query_size=6, seed=4).get_ranks(outputs)
    seed = int(np.random.RandomState(4).randint(0, 2**63 - 1, dtype=np.int64))
    want = uk.kmeans_pp(uk.badge_factored(probs.mean(-1), feats, from_logits=False), 6, seed=seed)
    np.testing.assert_array_equal(ranks[:6], want)


def test_logits_are_softmaxed_as_baal_does() -> None:
    logits = np.random.default_rng(12).standard_normal((40, 3, 6)) * 3
    feats = np.random.default_rng(13).standard_normal((40, 4))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    got = bl.UWE(query_size=5).get_ranks(bl.PoolOutputs(logits, feats))[0]
    np.testing.assert_array_equal(got, bl.UWE(query_size=5).get_ranks(bl.PoolOutputs(probs, feats))[0])


def test_bad_inputs_say_what_is_wrong() -> None:
    probs, feats = _mc_probabilities((10, 3, 4), 14), np.ones((10, 2))
    with pytest.raises(TypeError, match="with_features"):
        bl.UWE(query_size=2).get_ranks(probs)
    with pytest.raises(ValueError, match=r"\[n, C, T\]"):
        bl.UWE(query_size=2).get_ranks(bl.PoolOutputs(probs.mean(-1), feats))
    with pytest.raises(ValueError, match="classification"):
        bl.Badge(query_size=2).get_ranks(bl.PoolOutputs(_mc_probabilities((4, 3, 4, 4, 2), 15), np.ones((4, 2, 2, 2))))
    with pytest.raises(ValueError, match="kind"):
        bl.UWE(query_size=2, kind="variance")
    with pytest.raises(ValueError, match="query_size"):
        bl.CoreSet(query_size=0)


class _MCDropoutNet:
    """A small MLP with dropout, trained on the labelled rows each step; T stochastic passes
    give baal's [n, C, T] probabilities, its hidden layer the penultimate features."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU())
        self.head = torch.nn.Sequential(torch.nn.Dropout(0.3), torch.nn.Linear(32, 10))

    def fit(self, dataset: Any) -> None:
        x, y = _rows(dataset)
        params = list(self.body.parameters()) + list(self.head.parameters())
        opt = torch.optim.Adam(params, lr=0.05)
        for _ in range(30):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.head(self.body(x.float())), y)
            loss.backward()
            opt.step()

    def predict_on_dataset(self, dataset: Any, iterations: int) -> np.ndarray:
        x, _ = _rows(dataset)
        self.head.train()
        with torch.no_grad():
            hidden = self.body(x.float())
            return torch.stack([self.head(hidden).softmax(1) for _ in range(iterations)], dim=-1).numpy()

    def penultimate(self, dataset: Any) -> np.ndarray:
        with torch.no_grad():
            return self.body(_rows(dataset)[0].float()).numpy()


def _rows(dataset: Any) -> tuple[Any, Any]:
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


@pytest.mark.parametrize("kind", ["int", "float"])
@pytest.mark.parametrize("name", ["UWE", "CoreSet", "Badge"])
def test_active_learning_loop_three_steps(kind: str, name: str) -> None:
    from baal.active import ActiveLearningDataset, ActiveLearningLoop

    X, y = digits(kind)
    active = ActiveLearningDataset(torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y)))
    active.label(initial_labelled(len(X)))
    net = _MCDropoutNet()
    # integer X: the raw pixels are the features (cast to float64); float X: the penultimate layer
    features = (lambda ds: _rows(ds)[0].numpy()) if kind == "int" else net.penultimate
    heuristic = {"UWE": lambda: bl.UWE(query_size=6, kind="bald"), "CoreSet": lambda: bl.CoreSet(query_size=6),
                 "Badge": lambda: bl.Badge(query_size=6, seed=1)}[name]()
    loop = ActiveLearningLoop(active, bl.with_features(net.predict_on_dataset, features, labelled=active),
                              heuristic=heuristic, query_size=6, iterations=8)
    for step in range(3):
        net.fit(active)
        before = active.labelled.copy()
        assert loop.step()
        new = np.flatnonzero(active.labelled & ~before)
        assert len(new) == 6 and active.n_labelled == len(initial_labelled(len(X))) + 6 * (step + 1)
