import numpy as np
import pytest
import torch

from universal_features.correlation import (CorrelationAccumulator, candidate_assignment, decoder_cosine, hungarian_match,
                                            pearson_matrix, summarise_scores)
from universal_features.lineage import TRANSITIONS, display_name
from universal_features.matching import pair_groups, transition_counts
from universal_features.resampling import GroupStats, group_cross, group_sums, resample_weights, resampled_best, stratified_groups


def max_match(scores):
    "The many-to-one rule on a dense score matrix, through the same block-wise summary the stage uses."
    return summarise_scores(lambda lo, hi: scores[lo:hi], *scores.shape, k=min(8, min(scores.shape)), rows=2).matches()
from universal_features.autoencoder import SparseAutoencoder


def test_engine_matches_numpy_corrcoef():
    rng = np.random.default_rng(0)
    a = np.maximum(rng.normal(size=(5000, 40)), 0).astype(np.float32)
    b = np.maximum(rng.normal(size=(5000, 30)), 0).astype(np.float32)
    b[:, :10] = a[:, :10] * 3 + rng.normal(size=(5000, 10)).astype(np.float32) * 0.2
    r = pearson_matrix(torch.from_numpy(a), torch.from_numpy(b), chunk=777).numpy()
    ref = np.corrcoef(a.T, b.T)[:40, 40:]
    assert np.allclose(r, ref, atol=1e-6)


def test_constant_and_dead_features_give_zero_not_nan():
    a = torch.rand(1000, 4); b = torch.rand(1000, 3)
    a[:, 1] = 0.0          # never fires
    b[:, 2] = 0.7          # constant
    r = pearson_matrix(a, b, chunk=128)
    assert torch.isfinite(r).all() and (r[1] == 0).all() and (r[:, 2] == 0).all()


def test_chunking_does_not_change_the_result():
    a, b = torch.randn(999, 8), torch.randn(999, 6)
    assert torch.allclose(pearson_matrix(a, b, chunk=10), pearson_matrix(a, b, chunk=999), atol=1e-6)


def test_chunks_must_be_the_same_tokens():
    acc = CorrelationAccumulator(3, 3)
    with pytest.raises(ValueError, match="same tokens"):
        acc.update(torch.zeros(5, 3), torch.zeros(6, 3))


def test_max_and_hungarian_matching():
    s = torch.tensor([[0.9, 0.85, 0.1], [0.95, 0.2, 0.3]])
    m = max_match(s)
    assert m.parent_best.tolist() == [0, 0] and m.child_best.tolist() == [1, 0, 1]
    h = hungarian_match(s)
    assert h.parent_best.tolist() == [1, 0]   # one-to-one: parent 0 takes its second choice
    assert h.child_best.tolist() == [1, 0, -1]


def test_transition_counts():
    s = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.3, 0.1], [0.0, 0.85, 0.0]])
    c = transition_counts(max_match(s), np.array([True, True, False]), np.array([True, True, True]), 0.8)
    assert (c["persist"], c["disappear"], c["emerge"]) == (1, 1, 1)
    assert c["persist_share_alive"] == 0.5 and c["persist_share_all"] == pytest.approx(1 / 3)


def test_decoder_cosine_of_identical_saes_is_identity_on_the_diagonal():
    sae = SparseAutoencoder(8, 16)
    sae.initialise(torch.randn(50, 8), torch.Generator().manual_seed(0))
    cos = decoder_cosine(sae.W_dec, sae.W_dec)
    assert torch.allclose(cos.diagonal(), torch.ones(16), atol=1e-6)


def test_resampled_best_reproduces_full_sample_correlation_on_average():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2000, 3, generator=g), torch.rand(2000, 4, generator=g)
    b[:, 1] = a[:, 0] + 0.1 * b[:, 1]
    cand = torch.tensor([[1, 0], [2, 3], [0, 1]])
    groups, group_domain = stratified_groups(np.repeat(np.arange(2), 1000), 10)
    gt = torch.as_tensor(groups)
    st = GroupStats(*group_sums(a, gt, 20), *group_sums(b, gt, 20), group_cross(a, b, cand, gt, 20),
                    torch.bincount(gt, minlength=20).double(), cand)
    boot = resampled_best(st, resample_weights(group_domain, 200, seed=0))
    full = pearson_matrix(a, b).gather(1, cand).max(1).values
    assert boot.shape == (200, 3)
    assert torch.allclose(boot.mean(0), full.float(), atol=0.02)
    assert boot[:, 0].min() > 0.9   # the planted match is stable under resampling


def test_calibrated_rows_of_the_smoke_run(smoke_run):
    import json
    res = json.loads((smoke_run / "results.json").read_text())["matching"]
    cal = [r for r in res["calibrated"] if r["tau"] == res["threshold"]]
    assert [(r["parent"], r["child"]) for r in cal] == TRANSITIONS
    by = {(r["parent"], r["child"]): r for r in cal}
    assert by[("base", "lua")]["seeds"] == "3 × 3" and by[("tinystories", "luastories")]["seeds"] == "1 × 1"
    assert by[("tinystories", "luastories")]["null_pooled"] and np.isnan(by[("tinystories", "luastories")]["stable_any"])
    for r in cal:
        for k in ("raw_share", "share", "stable_any", "stable_all"):
            if not np.isnan(r[k]): assert 0 <= r[f"{k}_low"] <= r[f"{k}_high"] <= 1, (r, k)     # shares, with their intervals
        assert 0 < r["ratio_low"] <= r["ratio_high"]
        assert r["ratio"] == pytest.approx(r["share"] / r["null_share"])                          # the ratio of the row's own shares
        assert len(r["by_seed_pair"]) == r["seed_pairs"]
    assert (smoke_run / "tables" / "transitions_calibrated.md").read_text().startswith("|")
    log = (smoke_run / "logs" / "matching.log").read_text()
    off = [r for r in cal if not 0.25 <= r["raw_share_position"] <= 0.75]
    # a share off the middle of its interval is shown, with why its sampling distribution is skewed
    assert ("every estimate lies in the middle half" in log) if not off else all(
        f"{display_name(r['parent'])}→{display_name(r['child'])}: on an average resample" in log for r in off)


def test_summaries_match_the_dense_matrix():
    g = torch.Generator().manual_seed(0)
    r = torch.rand(37, 23, generator=g) * 2 - 1
    sm = summarise_scores(lambda lo, hi: r[lo:hi], 37, 23, k=4, rows=5)
    assert (sm.parent_top == r.topk(4, dim=1).indices.numpy()).all() and np.allclose(sm.parent_top_score, r.topk(4, dim=1).values)
    assert (sm.child_top == r.topk(4, dim=0).indices.T.numpy()).all() and np.allclose(sm.child_top_score, r.topk(4, dim=0).values.T)
    assert np.allclose(sm.diagonal, r.diagonal())


@pytest.mark.parametrize("p,q", [(300, 300), (200, 260), (260, 200)])
def test_sparse_assignment_equals_the_dense_solver_on_a_planted_matching(p, q):
    rng = np.random.default_rng(p + q)
    r = rng.uniform(-0.3, 0.5, (p, q)).astype(np.float32)
    n = min(p, q)
    rows, cols = rng.permutation(p)[:n], rng.permutation(q)[:n]
    r[rows, cols] = rng.uniform(0.6, 1.0, n)
    r = torch.from_numpy(r)
    sparse = candidate_assignment(summarise_scores(lambda lo, hi: r[lo:hi], p, q, k=6, rows=64), p, q)
    dense = hungarian_match(r)
    assert (sparse.parent_best == dense.parent_best).all() and (sparse.child_best == dense.child_best).all()
    assert np.allclose(sparse.parent_score, dense.parent_score)


def test_sparse_assignment_is_one_to_one_even_without_a_clear_partner():
    r = torch.rand(50, 50, generator=torch.Generator().manual_seed(1))
    m = candidate_assignment(summarise_scores(lambda lo, hi: r[lo:hi], 50, 50, k=2), 50, 50)
    assert sorted(m.parent_best.tolist()) == list(range(50))


def test_pairs_are_grouped_by_memory():
    d = {n: 16384 for n in "abcd"}
    one = CorrelationAccumulator.nbytes(16384, 16384)
    assert pair_groups([("a", "b"), ("c", "d"), ("a", "c")], d, 2.5 * one) == [[("a", "b"), ("c", "d")], [("a", "c")]]
    assert pair_groups([("a", "b")], d, 1) == [[("a", "b")]]
