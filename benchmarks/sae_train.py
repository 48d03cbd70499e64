"""SAE training throughput (activations/s) at the cpu and gpu profiles' shapes.

    python benchmarks/sae_train.py                 # both shapes on this machine
    python benchmarks/sae_train.py --shape gpu     # d_in 1024 → 16384 latents, batch 4096

Times our training step (forward, L1 × decoder-norm loss, backward, Adam) on random activations, and beside it a
plain reference step of the same shape written directly in PyTorch (two matmuls, ReLU, MSE + L1, Adam), run
alternately in the same process. The ratio shows the overhead of our step over the bare arithmetic.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from universal_features.profiles import get_config
from universal_features.sae import SparseAutoencoder, sae_loss


def plain_step_fn(d_in, d_sae, device):
    W_enc = torch.nn.Parameter(torch.randn(d_in, d_sae, device=device) * 0.01)
    W_dec = torch.nn.Parameter(torch.randn(d_sae, d_in, device=device) * 0.01)
    b = torch.nn.Parameter(torch.zeros(d_sae, device=device))
    opt = torch.optim.Adam([W_enc, W_dec, b], lr=1e-4)
    def step(x):
        f = F.relu(x @ W_enc + b)
        loss = (f @ W_dec - x).pow(2).sum(-1).mean() + 1e-3 * f.sum(-1).mean()
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    return step


def ours_step_fn(d_in, d_sae, device, architecture):
    sae = SparseAutoencoder(d_in, d_sae, architecture).to(device)
    sae.initialise(torch.randn(4096, d_in, device=device), torch.Generator(device="cpu").manual_seed(0))
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4)
    def step(x):
        loss, _ = sae_loss(sae, x, 1.0)
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    return step


def bench(shape, architecture, rounds, steps, device):
    cfg = get_config(shape)
    d_in, d_sae, batch = cfg.model.d_mlp, cfg.model.d_mlp * cfg.sae.expansion_factor, cfg.sae.batch_size_tokens
    x = torch.randn(batch, d_in, device=device).abs()
    fns = {"ours": ours_step_fn(d_in, d_sae, device, architecture), "plain": plain_step_fn(d_in, d_sae, device)}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for fn in fns.values(): fn(x)
    times = {n: [] for n in fns}
    for _ in range(rounds):
        for n, fn in fns.items():
            sync(); t = time.perf_counter()
            for _ in range(steps): fn(x)
            sync(); times[n].append((time.perf_counter() - t) / steps)
    med = {n: statistics.median(v) for n, v in times.items()}
    print(f"[{shape}] {architecture} SAE {d_in} → {d_sae}, batch {batch}, {device}, threads {torch.get_num_threads()}")
    for n, s in med.items(): print(f"  {n:6s} {batch / s:12,.0f} activations/s ({s * 1000:.1f} ms/step)")
    print(f"  ratio ours / plain: {med['plain'] / med['ours']:.2f}x")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=["cpu", "gpu", "both"], default="both")
    ap.add_argument("--architecture", choices=["relu", "topk"], default="relu")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for shape in (["cpu", "gpu"] if a.shape == "both" else [a.shape]):
        bench(shape, a.architecture, a.rounds, a.steps if shape == "cpu" or device.type == "cuda" else 1, device)


if __name__ == "__main__":
    main()
