"""The one-to-one (Hungarian) matching at the paper's size: dense solver against the sparse candidate-graph solver.

    python benchmarks/assignment.py                       # check on 2,048 latents, time the sparse solve at 16,384
    python benchmarks/assignment.py --dense-latents 4096  # also time the dense solver at 4,096

The score matrix is a synthetic correlation matrix shaped like a real pair of SAEs: most features have one clear
partner (r 0.5–1, a random permutation), the rest of the entries are small (|r| < 0.3). At --check-latents the
sparse solution (each feature's k best partners both ways, plus the diagonal) is compared with
`scipy.optimize.linear_sum_assignment` on the dense matrix; at --latents only the sparse solve is timed (the
summary of the matrix is timed separately: on a GPU it is part of the correlation pass).
"""
import argparse
import time

import numpy as np
import torch

from universal_features.correlation import candidate_assignment, hungarian_match, summarise_scores


def scores(n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    r = rng.uniform(-0.3, 0.3, (n, n)).astype(np.float32)
    keep = rng.random(n) < 0.8                                  # 80 % of features have a clear partner
    r[np.flatnonzero(keep), rng.permutation(n)[: keep.sum()]] = rng.uniform(0.5, 1.0, keep.sum())
    return torch.from_numpy(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latents", type=int, default=16384)
    ap.add_argument("--check-latents", type=int, default=2048)
    ap.add_argument("--dense-latents", type=int, default=0, help="also time the dense solver at this size")
    ap.add_argument("--k", type=int, default=8)
    a = ap.parse_args()
    print(f"threads {torch.get_num_threads()}, k = {a.k} candidates per feature and direction")
    r = scores(a.check_latents)
    sm = summarise_scores(lambda lo, hi: r[lo:hi], len(r), len(r), a.k)
    t = time.perf_counter(); sparse = candidate_assignment(sm, len(r), len(r)); t_sparse = time.perf_counter() - t
    t = time.perf_counter(); dense = hungarian_match(r); t_dense = time.perf_counter() - t
    same = (sparse.parent_best == dense.parent_best).mean()
    print(f"[{a.check_latents:,} latents] dense {t_dense:.2f} s, sparse {t_sparse:.2f} s; same assignment for {same:.1%} of features; "
          f"total score {sparse.parent_score.sum():.3f} (sparse) vs {dense.parent_score.sum():.3f} (dense)")
    if a.dense_latents:
        r = scores(a.dense_latents, 1)
        t = time.perf_counter(); hungarian_match(r); print(f"[{a.dense_latents:,} latents] dense {time.perf_counter() - t:.1f} s")
    r = scores(a.latents, 2)
    t = time.perf_counter(); sm = summarise_scores(lambda lo, hi: r[lo:hi], len(r), len(r), a.k); t_sum = time.perf_counter() - t
    t = time.perf_counter(); m = candidate_assignment(sm, len(r), len(r)); t_sparse = time.perf_counter() - t
    print(f"[{a.latents:,} latents] summary {t_sum:.1f} s, sparse assignment {t_sparse:.2f} s (target ≤ 10 s), "
          f"{(m.parent_score >= 0.5).mean():.1%} of features assigned a planted partner")


if __name__ == "__main__":
    main()
