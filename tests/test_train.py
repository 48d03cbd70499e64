import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from universal_features.config import ModelConfig, TrainConfig
from universal_features.model import LanguageModel, load_model
from universal_features.loaders import sample_blocks
from universal_features.train import batch_indices, bigram_baseline, evaluate, lr_factor, train_lm
from conftest import console_script

CFG = ModelConfig(d_model=32, n_heads=4, n_kv_heads=2, d_mlp=64, context_length=16)
VOCAB = 64


def blocks(n=96, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, VOCAB, size=(n, 16))
    base[:, 1::2] = (base[:, 0::2] + 1) % VOCAB  # learnable structure: odd token = previous + 1
    return base.astype(np.int32)


def fresh(seed=0):
    torch.manual_seed(seed)
    return LanguageModel(CFG, VOCAB)


def test_resume_after_kill_is_bit_identical(tmp_path):
    tc = TrainConfig(lr=3e-3, warmup_steps=3, max_steps=14, batch_size=8, checkpoint_every=5, log_every=1, precision="fp32")
    data = blocks()
    a = fresh()
    train_lm(a, data, tc, tmp_path / "a", key="k", device="cpu")
    b = fresh()
    partial = train_lm(b, data, tc, tmp_path / "b", key="k", device="cpu", interrupt_after=12)  # killed at step 12
    assert not partial["completed"]
    assert json.loads((tmp_path / "b" / "checkpoint" / "train_state.json").read_text())["step"] == 10
    b2 = fresh(seed=123)  # a new process: different init, everything comes from the checkpoint
    train_lm(b2, data, tc, tmp_path / "b", key="k", device="cpu")
    for (n, p), q in zip(a.state_dict().items(), b2.state_dict().values()):
        assert torch.equal(p, q), n
    la = [json.loads(l)["loss"] for l in open(tmp_path / "a" / "metrics.jsonl")]
    lb = [json.loads(l)["loss"] for l in open(tmp_path / "b" / "metrics.jsonl")]
    assert la[-1] == lb[-1]


def test_checkpoint_of_another_run_is_not_resumed(tmp_path):
    tc = TrainConfig(lr=3e-3, max_steps=6, batch_size=8, checkpoint_every=2, log_every=1, precision="fp32")
    train_lm(fresh(), blocks(), tc, tmp_path, key="one", device="cpu", interrupt_after=5)
    m = fresh()
    s = train_lm(m, blocks(), tc, tmp_path, key="two", device="cpu")
    assert s["completed"] and len(open(tmp_path / "metrics.jsonl").readlines()) == 6


def test_training_learns(tmp_path):
    data = blocks(256)
    m = fresh()
    before = evaluate(m, data[:32])["loss"]
    train_lm(m, data, TrainConfig(lr=1e-2, warmup_steps=5, max_steps=60, batch_size=16, precision="fp32"), tmp_path, "k", device="cpu")
    after = evaluate(m, data[:32])
    assert after["loss"] < before - 1.0 and after["accuracy"] > 0.3


def test_bf16_autocast_is_refused_on_cpu(tmp_path):
    with pytest.raises(ValueError, match="bf16"):
        train_lm(fresh(), blocks(), TrainConfig(max_steps=1, batch_size=8, precision="bf16"), tmp_path, "k", device="cpu")


def test_schedule():
    assert [lr_factor(s, 0, 4) for s in range(4)] == pytest.approx([1.0, 0.8535534, 0.5, 0.1464466])
    assert lr_factor(0, 10, 100) == 0.1 and lr_factor(9, 10, 100) == 1.0


def test_ranks_partition_the_global_batch():
    full = batch_indices(5, 100, 8, seed=1)
    parts = [batch_indices(5, 100, 8, seed=1, rank=r, world=2) for r in range(2)]
    assert sorted(np.concatenate(parts)) == sorted(full) and len(full) == 8
    assert not np.array_equal(batch_indices(0, 100, 8, 1), batch_indices(12, 100, 8, 1))  # next epoch reshuffled


def test_bigram_baseline_matches_brute_force():
    rng = np.random.default_rng(0)
    tr, ev = rng.integers(0, 6, (20, 10)), rng.integers(0, 6, (5, 10))
    k, V = 0.1, 6
    c = np.zeros((V, V))
    for row in tr:
        for a, b in zip(row[:-1], row[1:]): c[a, b] += 1
    p = (c + k) / (c.sum(1, keepdims=True) + k * V)
    pairs = [(a, b) for row in ev for a, b in zip(row[:-1], row[1:])]
    loss = -np.mean([np.log(p[a, b]) for a, b in pairs])
    res = bigram_baseline(tr, ev, V, k)
    assert res["loss"] == pytest.approx(loss)
    best = [c[a].argmax() if c[a].sum() else -1 for a in range(V)]
    acc = np.mean([best[a] == b for a, b in pairs])
    assert res["accuracy"] == pytest.approx(acc)


def _train_cli(smoke_run, out, nproc):
    cmd = [console_script("uf-train"), "--run-dir", str(smoke_run), "--model", "base",
           "--out", str(out), "--set", "train.max_steps=6", "--set", "train.log_every=1", "--set", "train.batch_size=8"]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *cmd]   # the script is Python
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return [json.loads(l)["loss"] for l in open(out / "metrics.jsonl")]


@pytest.mark.slow
def test_evaluation_sample_is_seeded_random_and_nested():
    "Not the first N stored blocks (issue 27.4): a seeded sample over all of them, in stored order, a smaller one inside a larger one."
    rows = np.arange(1000)[:, None]
    small, large = sample_blocks(rows, 50, [0, 1]).ravel(), sample_blocks(rows, 200, [0, 1]).ravel()
    assert set(small) <= set(large) and list(small) == sorted(small) and len(set(small)) == 50
    assert small.max() > 500 and not np.array_equal(small, np.arange(50))       # spread over every block, not a prefix
    assert np.array_equal(small, sample_blocks(rows, 50, [0, 1]).ravel())        # same seed, same blocks
    assert not np.array_equal(small, sample_blocks(rows, 50, [0, 2]).ravel())    # another domain, another draw
    assert sample_blocks(rows, 0, 0) is rows and sample_blocks(rows, 5000, 0) is rows


def test_evaluation_blocks_of_the_smoke_run_are_the_seeded_sample(smoke_run):
    from universal_features.lineage import DOMAINS
    from universal_features.config import load_config
    from universal_features.run import Run
    from universal_features.tokenizer import load_blocks
    from universal_features.loaders import validation_blocks
    run = Run(smoke_run, load_config(smoke_run / "config.json"))             # read only
    every = load_blocks(smoke_run, "lua", "validation", run.config.model.context_length)
    n = max(1, len(every) // 2)
    picked = validation_blocks(run, "lua", n)
    assert np.array_equal(picked, sample_blocks(every, n, [run.config.data.seed, DOMAINS.index("lua")])) and len(picked) == n
    assert np.array_equal(validation_blocks(run, "lua", 0), every)


def test_ddp_two_gloo_processes_match_one(smoke_run, tmp_path):
    single = _train_cli(smoke_run, tmp_path / "single", 1)
    ddp = _train_cli(smoke_run, tmp_path / "ddp", 2)
    assert len(single) == len(ddp) == 6
    assert np.allclose(single, ddp, atol=1e-4), (single, ddp)
    a, b = load_model(tmp_path / "single"), load_model(tmp_path / "ddp")
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-4)
