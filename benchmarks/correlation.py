"""All-pairs Pearson correlation between the features of two SAEs.

    python benchmarks/correlation.py                                  # 16k × 16k latents over 1e5 tokens (GPU size)
    python benchmarks/correlation.py --latents 4096 --tokens 20000    # a size a 2-core CPU finishes in seconds

Compares, in one process and on the same sparse non-negative activations:
  1. our streaming engine (`CorrelationAccumulator`: moments + one matmul per chunk);
  2. a plain matrix multiply of the same shape (A^T B), the floor any exact method must pay: target ratio ≤ 2×;
  3. a per-pair `scipy.stats.pearsonr` loop (the authors' approach) on a subset of pairs, extrapolated to all pairs;
  4. the same product with A^T sparse (CSR, cuSPARSE on a GPU): SAE activations fire on ~1 % of tokens, so it does
     ~1 % of the dense arithmetic; timed here to decide whether the engine should use it (not used yet).
"""
import argparse
import time

import numpy as np
import torch
from scipy.stats import pearsonr

from universal_features.correlation import pearson_matrix


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latents", type=int, default=16384)
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--density", type=float, default=0.01, help="fraction of tokens on which a latent fires")
    ap.add_argument("--chunk", type=int, default=32768)
    ap.add_argument("--pairs", type=int, default=2000, help="pairs timed with scipy.stats.pearsonr")
    a = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    g = torch.Generator(device=device).manual_seed(0)
    def acts():
        x = torch.rand(a.tokens, a.latents, generator=g, device=device)
        return x * (torch.rand(a.tokens, a.latents, generator=g, device=device) < a.density)
    A, B = acts(), acts()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed(fn, repeat=3):
        fn(); sync()
        ts = []
        for _ in range(repeat):
            t = time.perf_counter(); fn(); sync(); ts.append(time.perf_counter() - t)
        return min(ts)

    t_engine = timed(lambda: pearson_matrix(A, B, chunk=a.chunk))
    t_matmul = timed(lambda: A.T @ B)
    At = A.T.contiguous().to_sparse_csr()                                    # [latents, tokens], ~density non-zeros
    t_sparse = timed(lambda: At @ B)
    diff = float(((At @ B) - A.T @ B).abs().max())
    An, Bn = A[:, :200].cpu().numpy(), B[:, :200].cpu().numpy()
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 200, size=(a.pairs, 2))
    t = time.perf_counter()
    for i, j in idx: pearsonr(An[:, i], Bn[:, j])
    t_pair = (time.perf_counter() - t) / a.pairs
    t_loop = t_pair * a.latents ** 2
    print(f"{a.latents} × {a.latents} latents over {a.tokens:,} tokens (density {a.density}), {device}, threads {torch.get_num_threads()}")
    print(f"  streaming engine          {t_engine:10.3f} s")
    print(f"  plain matmul A^T B        {t_matmul:10.3f} s   ratio engine / matmul: {t_engine / t_matmul:.2f}x (target ≤ 2x)")
    print(f"  sparse A^T (CSR) @ B      {t_sparse:10.3f} s   ratio sparse / dense matmul: {t_sparse / t_matmul:.2f}x "
          f"(max |difference| {diff:.1e})")
    print(f"  scipy pearsonr per pair   {t_pair * 1e6:10.1f} µs → {t_loop / 3600:,.1f} h for all {a.latents ** 2:,} pairs "
          f"(extrapolated from {a.pairs}); engine is {t_loop / t_engine:,.0f}x faster")


if __name__ == "__main__":
    main()
