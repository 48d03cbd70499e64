"""The bootstrap's coverage on a simulated lineage with a planted share of persisting features (issue 28.1)."""
import numpy as np
import torch

from universal_features.resampling import (SimulatedLineage, coverage, resample_weights, resampled_best, simulated_stats,
                                           stratified_groups)


def test_the_stage_interval_covers_the_planted_share_and_ratio():
    cov = coverage(SimulatedLineage(seed=0), n_sets=100, n_boot=200, seed=0)
    for stat in ("share", "ratio"):
        c = cov[("paired-stratified", stat, "percentile")]
        assert c["coverage"] >= 0.9, (stat, c)
        assert 0.25 <= c["position"] <= 0.75, (stat, c)   # the estimate sits in the middle half of its interval on average


def test_pairing_narrows_the_ratio_interval():
    world = SimulatedLineage(seed=1)
    sums, dom = world.sample(np.random.default_rng(0), 2000)
    g, gd = stratified_groups(dom, 12)
    st = [simulated_stats(sums, k, g, len(gd)) for k in (0, 1)]
    shares = lambda w0, w1: [(resampled_best(s, w) >= world.tau).float().mean(1).numpy() for s, w in zip(st, (w0, w1))]
    w = resample_weights(gd, 300, seed=0)
    paired = np.divide(*shares(w, w))
    independent = np.divide(*shares(w, resample_weights(gd, 300, seed=1)))
    assert paired.std() < independent.std()


def test_same_seed_same_weights_and_domains_keep_their_share():
    _, gd = stratified_groups(np.repeat(np.arange(4), 50), 12)
    w = resample_weights(gd, 20, seed=3)
    assert (w == resample_weights(gd, 20, seed=3)).all()
    assert all((w[:, gd == d].sum(1) == 12).all() for d in range(4))
    assert torch.equal(torch.as_tensor(w).sum(1), torch.full((20,), 48.0, dtype=torch.float64))
