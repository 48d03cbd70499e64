"""The pipeline's code paths on an NVIDIA GPU. Skipped on a machine without CUDA; `scripts/gpu_check.sh` runs them.

Each test would fail on the code before the paper-scale work: the SAE trainer drew its resampling inputs with a CPU
generator from CUDA probabilities, the activation buffer shuffled with a CPU generator, and the activation stores
copied dense chunks to the host before selecting the non-zeros."""
import numpy as np
import pytest
import torch

from universal_features.activations import build_store, sparse_rows
from universal_features.autoencoder import SparseAutoencoder
from universal_features.config import ModelConfig, SAEConfig
from universal_features.matching import match_pairs
from universal_features.model import LanguageModel
from universal_features.sae import ActivationBuffer, fast_matmul, sae_metrics, train_sae

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")]
HOOK = "blocks.0.mlp.hook_post"


def tiny_model(device):
    torch.manual_seed(0)
    return LanguageModel(ModelConfig(d_model=32, n_heads=4, n_kv_heads=2, d_mlp=64, context_length=16), vocab_size=100).to(device).eval()


def planted_batches(device, d=16, n_true=32, batch=512):
    g = torch.Generator(device="cpu").manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(n_true, d, generator=g), dim=-1).to(device)
    def next_batch():
        mask = (torch.rand(batch, n_true, generator=g) < 0.06).to(device)
        return (mask * torch.rand(batch, n_true, generator=g).to(device) * 3) @ dirs
    return next_batch


def test_resampling_revives_dead_latents_on_the_gpu():
    nb = planted_batches("cuda")
    sae = SparseAutoencoder(16, 64).cuda()
    sae.initialise(nb(), torch.Generator().manual_seed(0))
    with torch.no_grad(): sae.b_enc[:16] = -100.0                         # planted dead latents
    sc = SAEConfig(batch_size_tokens=512, lr=3e-3, l1_coefficient=1e-2, l1_warmup_steps=50, lr_warmup_steps=10,
                   dead_remedy="resample", resample_fractions=(0.3, 0.5), dead_window_tokens=20_000)
    summary = train_sae(sae, nb, sc, 400 * 512, sc.l1_coefficient, seed=0, device="cuda")
    assert summary["resampled"] >= 16 and sae.W_dec.device.type == "cuda"
    f = sae.encode(torch.cat([nb() for _ in range(8)]))
    assert ((f > 0).sum(0) == 0).float().mean() < 0.25


def test_auxk_topk_training_runs_on_the_gpu():
    nb = planted_batches("cuda")
    sae = SparseAutoencoder(16, 64, "topk", k=4).cuda()
    sae.initialise(nb(), torch.Generator().manual_seed(0))
    sc = SAEConfig(architecture="topk", k=4, batch_size_tokens=512, dead_remedy="auxk", dead_window_tokens=2048)
    assert train_sae(sae, nb, sc, 50 * 512, 0.0, seed=0, device="cuda")["steps"] == 50


def test_activation_buffer_lives_and_shuffles_on_the_gpu():
    model = tiny_model("cuda")
    blocks = np.random.default_rng(0).integers(0, 100, size=(40, 16))
    buf = ActivationBuffer(model, blocks, HOOK, buffer_contexts=8, batch_tokens=32, seed=0, device=torch.device("cuda"))
    batches = [buf.next_batch() for _ in range(30)]
    assert all(b.device.type == "cuda" and b.shape == (32, 64) for b in batches) and buf.epoch >= 1


def test_tf32_only_inside_sae_training():
    before = torch.backends.cuda.matmul.allow_tf32
    with fast_matmul("cuda"): assert torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cuda.matmul.allow_tf32 == before


def test_stores_select_non_zeros_on_the_gpu_and_match_the_cpu():
    f = torch.relu(torch.randn(300, 50, device="cuda") - 1)
    assert (sparse_rows(f).toarray() == f.cpu().numpy()).all()
    blocks = np.random.default_rng(1).integers(0, 100, size=(12, 16))
    sae = SparseAutoencoder(64, 128); sae.initialise(torch.randn(256, 64), torch.Generator().manual_seed(0))
    gpu = build_store(tiny_model("cuda"), sae.cuda(), blocks, HOOK, chunk_blocks=5, device="cuda")
    cpu = build_store(tiny_model("cpu"), sae.cpu(), blocks, HOOK, chunk_blocks=5, device="cpu")
    assert np.allclose(gpu.acts.toarray(), cpu.acts.toarray(), atol=1e-4)


def test_matching_and_metrics_on_the_gpu_agree_with_the_cpu():
    blocks = np.random.default_rng(2).integers(0, 100, size=(20, 16))
    def units(device):
        out = {}
        for name, seed in (("a", 0), ("b", 1)):
            s = SparseAutoencoder(64, 128); s.initialise(torch.randn(256, 64, generator=torch.Generator().manual_seed(seed)),
                                                          torch.Generator().manual_seed(seed))
            out[name] = (tiny_model(device), s.to(device))
        return out
    res = {d: match_pairs([("a", "b")], units(d), blocks, HOOK, 7, 1e9, device=d, store=("a",)) for d in ("cpu", "cuda")}
    g, c = res["cuda"]["summaries"][("a", "b")], res["cpu"]["summaries"][("a", "b")]
    assert np.allclose(g.parent_top_score[:, 0], c.parent_top_score[:, 0], atol=1e-4)
    assert (res["cuda"]["alive"]["a"] == res["cpu"]["alive"]["a"]).all()
    m = sae_metrics(units("cuda")["a"][1], tiny_model("cuda"), blocks, HOOK, device="cuda")
    assert 0 <= m["dead_fraction"] <= 1 and np.isfinite(m["ce_loss_recovered"])
