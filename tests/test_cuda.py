"""The pipeline's code paths on an NVIDIA GPU. Skipped on a machine without CUDA; `scripts/gpu_check.sh` runs them.

Each test would fail on the code before the paper-scale work: the SAE trainer drew its resampling inputs with a CPU
generator from CUDA probabilities, the activation buffer shuffled with a CPU generator, and the activation stores
copied dense chunks to the host before selecting the non-zeros."""
import numpy as np
import pytest
import torch

from universal_features.activations import build_store, sparse_rows
from universal_features.autoencoder import SparseAutoencoder, relu_loss_backward, sae_loss
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


def test_bf16_written_out_gradients_follow_autograd_on_the_gpu():
    "relu_loss_backward in bfloat16 (the GPU default) against float32 autograd: same loss to 1 %, gradients aligned."
    import copy
    x = planted_batches("cuda", d=64, n_true=256, batch=4096)()
    sae = SparseAutoencoder(64, 1024).cuda(); sae.initialise(x, torch.Generator().manual_seed(0))
    ref, hand = copy.deepcopy(sae), copy.deepcopy(sae)
    loss_ref, _ = sae_loss(ref, x, 1e-2); loss_ref.backward()
    loss_hand, logs = relu_loss_backward(hand, x, 1e-2, dtype=torch.bfloat16)
    assert abs(float(loss_hand) - float(loss_ref)) < 0.01 * float(loss_ref)
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        g, g_ref = getattr(hand, name).grad, getattr(ref, name).grad
        assert g.dtype == torch.float32 and g.shape == g_ref.shape
        assert torch.nn.functional.cosine_similarity(g.flatten(), g_ref.flatten(), dim=0) > 0.99, name


def test_bf16_training_matches_fp32_training_on_the_gpu():
    "The same planted problem trained at sae.precision auto (bf16) and fp32: explained variance and L0 within a point."
    from universal_features.autoencoder import explained_variance
    out = {}
    for precision in ("auto", "fp32"):
        nb = planted_batches("cuda")
        sae = SparseAutoencoder(16, 64).cuda(); sae.initialise(nb(), torch.Generator().manual_seed(0))
        sc = SAEConfig(batch_size_tokens=512, lr=3e-3, l1_coefficient=1e-2, l1_warmup_steps=50, lr_warmup_steps=10,
                       dead_remedy="none", precision=precision)
        train_sae(sae, nb, sc, 400 * 512, sc.l1_coefficient, seed=0, device="cuda")
        xs = torch.cat([nb() for _ in range(8)])
        with torch.no_grad(): xhat, f = sae(xs)
        out[precision] = explained_variance(xs, xhat), float((f > 0).float().sum(-1).mean())
    assert abs(out["auto"][0] - out["fp32"][0]) < 0.01, out
    assert abs(out["auto"][1] - out["fp32"][1]) < 0.01 * out["fp32"][1] + 0.5, out


def test_auxk_topk_training_runs_on_the_gpu():
    nb = planted_batches("cuda")
    sae = SparseAutoencoder(16, 64, "topk", k=4).cuda()
    sae.initialise(nb(), torch.Generator().manual_seed(0))
    sc = SAEConfig(architecture="topk", k=4, batch_size_tokens=512, dead_remedy="auxk", dead_window_tokens=2048)
    assert sc.precision == "auto"                                        # bf16 autocast around the TopK loss on a GPU
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
