"""SAE training throughput (activations/s): our training loop against a bare PyTorch loop of the same arithmetic.

    python benchmarks/sae_train.py                  # the cpu profile's shape on the CPU; both shapes on a GPU
    python benchmarks/sae_train.py --shape gpu      # d_in 1024 → 16,384 latents, batch 4,096 (the gpu profile)
    python benchmarks/sae_train.py --shape gpu --profile   # where our step's time goes, kernel by kernel (torch.profiler)

"Ours" is `train_sae` itself (schedule, loss with the decoder-norm-weighted L1, Adam, dead-latent tracking, periodic
logging, progress bar) fed the same batch over and over, at the profile's `sae.precision` (auto: bfloat16 products with
float32 weights and loss on a GPU, through `relu_loss_backward`; float32 on the CPU). "Plain" is the same arithmetic
written directly, the way one would without thinking about speed: encoder with the decoder bias subtracted, ReLU,
decoder, summed MSE plus λ·Σ f‖W_dec‖, autograd's backward, Adam, and nothing else; on a GPU under bfloat16 autocast
with the same (fused) Adam, on the CPU in float32. Both run alternately in one process. The ratio plain time / our time
shows what our loop gains or costs against that baseline: the target is ≥ 1.0 on a GPU and ≥ 0.95 on the CPU (where
both do the same float32 arithmetic). On a GPU the float32/TF32 plain step is timed too, for reference.
"""
import contextlib
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from universal_features.autoencoder import SparseAutoencoder
from universal_features.profiles import get_config
from universal_features.sae import fast_matmul, train_sae


def plain_loop(d_in, d_sae, device, lr, l1, bf16: bool):
    "The same arithmetic as one SAE training step, written plainly (bf16 autocast on request), with autograd."
    g = torch.Generator(device="cpu").manual_seed(0)
    W_dec = torch.nn.Parameter((torch.randn(d_sae, d_in, generator=g) * 0.01).to(device))
    W_enc = torch.nn.Parameter(W_dec.detach().T.clone())
    b_enc, b_dec = torch.nn.Parameter(torch.zeros(d_sae, device=device)), torch.nn.Parameter(torch.zeros(d_in, device=device))
    scale = torch.tensor(1.0, device=device)
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=lr, fused=device.type == "cuda")
    def run(x, steps):
        for _ in range(steps):
            with torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
                xs = x * scale
                f = F.relu((xs - b_dec) @ W_enc + b_enc)
                loss = (f @ W_dec + b_dec - xs).pow(2).sum(-1).mean() + l1 * (f * W_dec.norm(dim=-1)).sum(-1).mean()
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    return run


def our_loop(d_in, d_sae, device, sc):
    "`train_sae` on a fixed batch, with the profile's SAE config (schedules, logging and dead tracking included)."
    sae = SparseAutoencoder(d_in, d_sae, sc.architecture, sc.k).to(device)
    sae.initialise(torch.randn(4096, d_in, device=device), torch.Generator(device="cpu").manual_seed(0))
    def run(x, steps):
        train_sae(sae, lambda: x, sc, steps * len(x), sc.l1_coefficient, seed=0, device=device, desc="ours")
    return run


def setup(shape, device):
    "The profile's SAE config, its shape and one batch of stand-in activations (random, non-negative)."
    cfg = get_config(shape)
    sc = cfg.sae
    # a resampling step (twice per SAE) and the metrics read-back (sae.log_points = 50 times per SAE, i.e. once every few
    # hundred steps in a real run) are not per-step costs: log once per timed round here
    sc.dead_remedy, sc.resample_fractions, sc.log_points = "none", (), 1
    d_in = cfg.model.d_mlp
    return sc, d_in, d_in * sc.expansion_factor, torch.randn(sc.batch_size_tokens, d_in, device=device).abs()


def bench(shape, rounds, steps, device):
    sc, d_in, d_sae, x = setup(shape, device)
    batch = len(x)
    gpu = device.type == "cuda"
    loops = {"ours": our_loop(d_in, d_sae, device, sc),
             "plain": plain_loop(d_in, d_sae, device, sc.lr, sc.l1_coefficient, bf16=gpu)}
    if gpu: loops["plain-tf32"] = plain_loop(d_in, d_sae, device, sc.lr, sc.l1_coefficient, bf16=False)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = {n: [] for n in loops}
    with fast_matmul(device, sc.tf32):
        for run in loops.values(): run(x, 2)                       # warm-up
        for _ in range(rounds):
            for n, run in loops.items():
                sync(); t = time.perf_counter()
                run(x, steps)
                sync(); times[n].append((time.perf_counter() - t) / steps)
    med = {n: statistics.median(v) for n, v in times.items()}
    print(f"[{shape}] relu SAE {d_in} → {d_sae}, batch {batch}, {device}, threads {torch.get_num_threads()}, "
          f"{steps} steps × {rounds} rounds, ours at sae.precision={sc.precision}"
          + (", plain under bf16 autocast, plain-tf32 in float32 with TF32" if gpu else ", both float32"))
    for n, s in med.items(): print(f"  {n:10s} {batch / s:12,.0f} activations/s ({s * 1000:.2f} ms/step)")
    print(f"  ratio ours / plain: {med['plain'] / med['ours']:.2f}x (target ≥ {'1.0' if gpu else '0.95'}x"
          + (f"; ours {batch / med['ours'] / 1e6:.2f} M activations/s, target ≥ 3 M at the gpu shape)" if gpu else ")"))
    return med["plain"] / med["ours"]


def profile_ours(shape, steps, device):
    "torch.profiler over `steps` of our loop: the operators with the most device (or CPU) time of their own."
    from torch.profiler import ProfilerActivity, profile
    sc, d_in, d_sae, x = setup(shape, device)
    run = our_loop(d_in, d_sae, device, sc)
    run(x, 3)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        run(x, steps)
        if device.type == "cuda": torch.cuda.synchronize()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"[{shape}] our SAE step under torch.profiler, {steps} steps, {device}, sae.precision={sc.precision}")
    print(prof.key_averages().table(sort_by=key, row_limit=18, max_name_column_width=48))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=["cpu", "gpu", "both"], default=None, help="default: cpu on a CPU, both on a GPU")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30, help="steps per timed round")
    ap.add_argument("--profile", action="store_true", help="profile our step instead of timing it against the baseline")
    a = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shape = a.shape or ("both" if device.type == "cuda" else "cpu")
    if a.profile:
        for s in (["cpu", "gpu"] if shape == "both" else [shape]): profile_ours(s, min(a.steps, 20), device)
        return
    for s in (["cpu", "gpu"] if shape == "both" else [shape]):
        bench(s, a.rounds, a.steps, device)


if __name__ == "__main__":
    main()
