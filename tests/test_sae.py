import json

import numpy as np
import pytest
import torch

from universal_features.config import ModelConfig, SAEConfig
from universal_features.model import LanguageModel
from universal_features.autoencoder import (SAECheckpointError, SparseAutoencoder, explained_variance, geometric_median,
                                            load_sae, sae_loss, save_sae)
from universal_features.sae import ActivationBuffer, harvest, planted_dead_run, sae_metrics, train_sae


def test_explained_variance_of_the_mean_is_zero():
    x = torch.randn(1000, 12) * torch.linspace(0.1, 5, 12) + 7.0
    assert abs(explained_variance(x, x.mean(0).expand_as(x))) < 1e-6
    assert explained_variance(x, x) == 1.0
    assert explained_variance(x, torch.zeros_like(x)) < 0  # variance is about the mean, not about zero


def test_geometric_median_resists_outliers():
    pts = torch.cat([torch.randn(200, 3) * 0.01, torch.full((20, 3), 100.0)])
    assert geometric_median(pts).norm() < 1.0 < pts.mean(0).norm()


def test_fold_input_scale_keeps_the_function():
    torch.manual_seed(0)
    x = torch.randn(64, 16) * 5
    sae = SparseAutoencoder(16, 48)
    sae.initialise(x, torch.Generator().manual_seed(0))
    with torch.no_grad(): sae.W_enc.add_(0.1 * torch.randn_like(sae.W_enc)); sae.b_enc.add_(0.05)
    before = sae(x)
    sae.fold_input_scale()
    after = sae(x)
    assert sae.input_scale.item() == 1.0
    assert torch.allclose(before[0], after[0], atol=1e-4) and torch.allclose(before[1], after[1], atol=1e-4)


def test_resampling_revives_planted_dead_latents():
    dead_none, ev_none = planted_dead_run("none", steps=400)
    dead_res, ev_res = planted_dead_run("resample", steps=400)
    assert dead_none >= 0.25          # the 16 planted latents stay dead without a remedy
    assert dead_res < 0.05 and ev_res > 0.9


def test_auxk_revives_planted_dead_latents_in_topk():
    # AuxK revives by gradient, so the planted latents sit just below the top k rather than at -100
    dead_none, _ = planted_dead_run("none", "topk", bias=-2.0, lr=1e-2, steps=400)
    dead_aux, ev = planted_dead_run("auxk", "topk", bias=-2.0, lr=1e-2, steps=400)
    assert dead_none >= 0.25 and dead_aux < 0.05 and ev > 0.8


def test_topk_has_at_most_k_active():
    sae = SparseAutoencoder(8, 32, "topk", k=3)
    sae.initialise(torch.randn(100, 8), torch.Generator().manual_seed(0))
    assert ((sae.encode(torch.randn(50, 8)) > 0).sum(-1) <= 3).all()


def test_sparsity_penalty_uses_decoder_norms():
    sae = SparseAutoencoder(4, 8)
    sae.initialise(torch.randn(64, 4), torch.Generator().manual_seed(0))
    x = torch.randn(32, 4)
    _, a = sae_loss(sae, x, 1.0)
    with torch.no_grad(): sae.W_dec.mul_(2)
    _, b = sae_loss(sae, x, 1.0)
    assert float(b["sparsity"]) == pytest.approx(2 * float(a["sparsity"]), rel=1e-5)


@pytest.fixture
def lm():
    torch.manual_seed(0)
    return LanguageModel(ModelConfig(d_model=32, n_heads=4, n_kv_heads=2, d_mlp=64), 100).eval()


def test_perfect_reconstruction_recovers_all_ce(lm):
    class Identity(SparseAutoencoder):
        def forward(self, x): return x, torch.ones(len(x), self.d_sae)
    blocks = np.random.default_rng(0).integers(0, 100, (20, 24))
    m = sae_metrics(Identity(64, 16), lm, blocks, "blocks.0.mlp.hook_post")
    assert m["ce_loss_recovered"] == pytest.approx(1.0) and m["kl_to_clean"] == pytest.approx(0.0, abs=1e-6)
    assert m["explained_variance"] == pytest.approx(1.0) and m["shrinkage_l2_ratio"] == pytest.approx(1.0)
    assert m["ce_zero_ablation"] != m["ce_clean"]


def test_metrics_of_a_trained_sae_are_sane(lm):
    blocks = np.random.default_rng(0).integers(0, 100, (200, 24))
    acts = harvest(lm, blocks, "blocks.0.mlp.hook_post")
    assert acts.shape == (200 * 24, 64)
    sc = SAEConfig(batch_size_tokens=256, lr=3e-3, l1_coefficient=1.0, l1_warmup_steps=20, lr_warmup_steps=5, buffer_contexts=64)
    sae = SparseAutoencoder(64, 256)
    sae.initialise(acts[:2000], torch.Generator().manual_seed(0))
    buf = ActivationBuffer(lm, blocks, "blocks.0.mlp.hook_post", sc.buffer_contexts, sc.batch_size_tokens, seed=0)
    train_sae(sae, buf.next_batch, sc, 60_000, sc.l1_coefficient, seed=0)
    m = sae_metrics(sae, lm, blocks[:50], "blocks.0.mlp.hook_post")
    assert 0 < m["l0"] < 256 and 0 <= m["dead_fraction"] <= 1 and m["explained_variance"] > 0.5
    assert m["ce_loss_recovered"] > 0.5 and len(m["density"]) == 256


def test_buffer_serves_shuffled_batches_and_cycles(lm):
    blocks = np.arange(10 * 24).reshape(10, 24) % 100
    buf = ActivationBuffer(lm, blocks, "blocks.0.mlp.hook_post", buffer_contexts=4, batch_tokens=16, seed=1)
    batches = [buf.next_batch() for _ in range(40)]
    assert all(b.shape == (16, 64) for b in batches) and buf.epoch >= 1
    again = ActivationBuffer(lm, blocks, "blocks.0.mlp.hook_post", buffer_contexts=4, batch_tokens=16, seed=1)
    assert torch.equal(again.next_batch(), batches[0])


@pytest.fixture
def saved(tmp_path):
    sae = SparseAutoencoder(16, 64)
    sae.initialise(torch.randn(100, 16) * 3, torch.Generator().manual_seed(0))
    x = torch.randn(10, 16) * 3
    ref = sae(x)
    save_sae(sae, tmp_path / "s", {"model": "base", "hook_name": "blocks.0.mlp.hook_post", "block_size": 24})
    return tmp_path / "s", x, ref


def test_checkpoint_round_trip(saved):
    folder, x, ref = saved
    sae = load_sae(folder, expect_d_in=16)
    assert torch.allclose(sae(x)[0], ref[0], atol=1e-5)


def test_bad_checkpoints(saved):
    folder, _, _ = saved
    with pytest.raises(SAECheckpointError, match="16-dimensional.*gives 32"):
        load_sae(folder, expect_d_in=32)
    st = folder / "sae.safetensors"
    st.write_bytes(st.read_bytes()[:100])
    with pytest.raises(SAECheckpointError, match="damaged"):
        load_sae(folder)


def test_saelens_loads_the_export(saved):
    sae_lens = pytest.importorskip("sae_lens")
    folder, x, ref = saved
    cfg = json.loads((folder / "sae_lens" / "cfg.json").read_text())
    assert {"architecture", "d_in", "d_sae", "apply_b_dec_to_input", "normalize_activations", "metadata"} <= set(cfg)
    sl = sae_lens.SAE.load_from_disk(str(folder / "sae_lens"), device="cpu")
    with torch.no_grad():
        f = sl.encode(x)
        assert torch.allclose(f, ref[1], atol=1e-5)
        assert torch.allclose(sl.decode(f), ref[0], atol=1e-5)


def test_an_sae_is_not_retrained_when_only_the_stage_plan_changes(smoke_run, tmp_path):
    "Fewer seed-null SAEs and another evaluation size re-run the SAE stage, but reuse the four model SAEs: the same keys."
    import os, shutil, subprocess
    from conftest import console_script
    run_dir = tmp_path / "copy"
    shutil.copytree(smoke_run, run_dir)
    models = ("base", "lua", "tinystories", "luastories")
    done = {m: json.loads((run_dir / "saes" / m / "done.json").read_text()) for m in models}
    weights = {m: (run_dir / "saes" / m / "sae.safetensors").stat().st_mtime_ns for m in models}
    r = subprocess.run([console_script("uf-reproduce"), "--no-progress", "--profile", "smoke", "--run-dir",
                        str(run_dir), "--only", "sae", "--set", "sae.null_seeds=1", "--set", "sae.eval_blocks=50"],
                       capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "sae: running" in r.stdout
    for m in models:
        assert json.loads((run_dir / "saes" / m / "done.json").read_text())["key"] == done[m]["key"], m
        assert (run_dir / "saes" / m / "sae.safetensors").stat().st_mtime_ns == weights[m], f"{m} was retrained"
    res = json.loads((run_dir / "results.json").read_text())["sae"]
    assert set(res) == {*models, "luastories_crossing", "base-seed2", "lua-seed2"}   # one null seed per null-control model now
    assert res["base"]["tokens"] < done["base"]["result"]["metrics"]["tokens"]   # evaluated again on 50 contexts
