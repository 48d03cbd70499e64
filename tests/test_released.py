"""The `released` profile end to end on small stand-ins of the authors' four checkpoints, offline.

The stand-ins are HF `MistralForCausalLM`s with the released `config.json`'s field values (shrunk to d_model 32 and a
small vocabulary), saved with `save_pretrained` in the Hub's layout under `$UF_HUB_MIRROR/<owner>/<name>`, beside a
SentencePiece-style tokenizer (Metaspace, byte fallback, BOS) as `mistralai/Mistral-7B-v0.1`. The released merge is
made as mergekit 0.0.4.1 makes it (paper_notes §5.1–5.2), written here independently of `universal_features.merge`:
float32 numpy SLERP with the Lua model as base at t = 0.58, stored in float16. The pipeline then reads them through the
same code as Hub ids; only the location differs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from universal_features.config import to_dict
from universal_features.model import HubError, hub_snapshot
from universal_features.profiles import RELEASED_MODELS, get_config

# The released config.json (paper_notes §2.1), then the fields shrunk for the test
RELEASED_CONFIG = dict(architectures=["MistralForCausalLM"], model_type="mistral", hidden_act="silu", hidden_size=512,
                       intermediate_size=1024, initializer_range=0.02, max_position_embeddings=2048, num_attention_heads=16,
                       num_hidden_layers=1, num_key_value_heads=8, rms_norm_eps=1e-6, rope_theta=10000.0, sliding_window=4096,
                       tie_word_embeddings=False, vocab_size=32000, bos_token_id=1, eos_token_id=2)
SHRUNK = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2)


def mistral_like_tokenizer(texts: list[str], vocab_size: int):
    "A small BPE in the layout of Mistral-7B-v0.1's tokenizer.json: <unk> <s> </s>, 256 byte-fallback tokens, ▁ for spaces, BOS."
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, min_frequency=2,
                                                       show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tok


def mergekit_slerp(v0: np.ndarray, v1: np.ndarray, t: float, eps: float = 1e-8, dot_threshold: float = 0.9995) -> np.ndarray:
    "mergekit's SLERP of one tensor (v0 = base model), in float32 numpy."
    a, b = v0.astype(np.float32), v1.astype(np.float32)
    na = a / np.linalg.norm(a) if np.linalg.norm(a) > eps else a
    nb = b / np.linalg.norm(b) if np.linalg.norm(b) > eps else b
    dot = float(np.sum(na * nb))
    if abs(dot) > dot_threshold: return (1 - t) * a + t * b
    theta0 = np.arccos(dot)
    s0, s1 = np.sin(theta0 - t * theta0) / np.sin(theta0), np.sin(t * theta0) / np.sin(theta0)
    return (s0 * a + s1 * b).astype(np.float32)


def _texts(data_dir: Path) -> list[str]:
    stories = [json.loads(l)["text"] for l in open(data_dir / "tinystories" / "stories.jsonl", encoding="utf-8")][:300]
    code = [Path(m.__file__).read_text() for m in (json, subprocess, os)]  # the python domain is the standard library
    return stories + code


@pytest.fixture(scope="module")
def hub_copy(tmp_path_factory, data_dir) -> Path:
    "A local copy of the Hub with the tokenizer and the four released checkpoints' stand-ins."
    import transformers
    root = tmp_path_factory.mktemp("hub")
    tok = mistral_like_tokenizer(_texts(data_dir), 600)
    (root / "mistralai" / "Mistral-7B-v0.1").mkdir(parents=True)
    tok.save(str(root / "mistralai" / "Mistral-7B-v0.1" / "tokenizer.json"))
    conf = transformers.MistralConfig(**{**RELEASED_CONFIG, **SHRUNK, "vocab_size": tok.get_vocab_size()})
    torch.manual_seed(0)
    base = transformers.MistralForCausalLM(conf).eval()
    sds = {"base": base.state_dict()}
    for i, name in enumerate(("lua", "tinystories"), 1):   # two "fine-tunes": the base moved in different directions
        g = torch.Generator().manual_seed(i)
        sds[name] = {k: v + 0.3 * v.std().clamp_min(0.01) * torch.randn(v.shape, generator=g) for k, v in sds["base"].items()}
    sds["luastories"] = {k: torch.from_numpy(mergekit_slerp(sds["lua"][k].numpy(), sds["tinystories"][k].numpy(), 0.58)).half()
                         for k in sds["base"]}
    for name, sd in sds.items():
        model = transformers.MistralForCausalLM(conf).eval()
        if name == "luastories": model = model.half()
        model.load_state_dict(sd)
        model.save_pretrained(root / RELEASED_MODELS[name], safe_serialization=True)
    return root


def _overrides(vocab_size: int) -> list[str]:
    "The released profile shrunk to the smoke profile's budgets, and to the stand-ins' shapes."
    smoke = to_dict(get_config("smoke"))
    out = {"data.hub": "never", "tokenizer.vocab_size": vocab_size, "model.d_model": 32, "model.n_heads": 4,
           "model.n_kv_heads": 2, "model.d_mlp": 64, "model.context_length": 64, "merge.sweep_step": 0.25,
           "merge.lerp_step": 0.5, "merge.sweep_eval_blocks": 8, "robustness.n_resamples": 200}
    for section in ("sae", "matching", "case_studies", "autointerp"):
        out.update({f"{section}.{k}": v for k, v in smoke[section].items()})
    out["sae.null_seeds"] = 0           # the seed null's SAEs and pairs are the smoke run's to test, not this profile's
    for d in ("english", "python", "lua", "tinystories"):
        out.update({f"data.{d}.{k}": v for k, v in smoke["data"][d].items()})
    text = lambda v: v if isinstance(v, str) else ("none" if v is None else json.dumps(v))
    return [f"{k}={text(v)}" for k, v in out.items()]


@pytest.fixture(scope="module")
def released_run(tmp_path_factory, hub_copy) -> Path:
    run_dir = tmp_path_factory.mktemp("released")
    vocab = json.loads((hub_copy / "mistralai" / "Mistral-7B-v0.1" / "tokenizer.json").read_text())["model"]["vocab"]
    cmd = [sys.executable, "-m", "universal_features.reproduce", "--no-progress", "--profile", "released", "--run-dir", str(run_dir)]
    for o in _overrides(len(vocab)): cmd += ["--set", o]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env={**os.environ, "UF_HUB_MIRROR": str(hub_copy)})
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return run_dir


@pytest.mark.slow
def test_released_profile_reads_the_four_checkpoints(released_run, hub_copy):
    from universal_features.model import load_model
    res = json.loads((released_run / "results.json").read_text())
    assert set(res) >= {"data", "tokenizer", "train", "merge", "sae", "matching", "case_studies", "autointerp", "report"}
    assert res["tokenizer"]["pretrained"].startswith("mistralai/Mistral-7B-v0.1@mirror-sha256:")
    assert res["train"]["released"] is True
    for name in ("base", "lua", "tinystories"):
        read = res["train"]["models"][name]
        assert read["repo_id"] == RELEASED_MODELS[name] and read["commit"].startswith("mirror-sha256:") and read["dtypes"] == ["F32"]
        ours, theirs = load_model(released_run / "models" / name), load_model(hub_copy / RELEASED_MODELS[name])
        assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    assert {r["d_sae"] for r in res["sae"].values()} == {64 * get_config("smoke").sae.expansion_factor}


@pytest.mark.slow
def test_released_merge_is_reproduced_within_fp16_rounding(released_run):
    rm = json.loads((released_run / "results.json").read_text())["merge"]["released_merge"]
    assert rm["repo_id"] == RELEASED_MODELS["luastories"] and rm["dtypes"] == ["F16"] and rm["t"] == 0.42
    assert rm["passed"] and rm["tensors_within"] == rm["tensors"] == 12 and rm["max_fp16_ulps"] <= 1.0
    table = (released_run / "tables" / "released_merge_check.md").read_text()
    assert "| blocks.0.mlp.up_proj.weight | 64×32 |" in table and "| True |" in table and "| False |" not in table


@pytest.mark.slow
def test_released_merge_check_sees_the_wrong_orientation(released_run):
    "Our SLERP at 0.58 (mergekit's t read in our orientation, TinyStories at 0) misses the release by far."
    from universal_features.merge import merged_model
    from universal_features.model import load_model
    from universal_features.released import merge_check, merge_check_summary
    m = {n: load_model(released_run / "models" / n) for n in ("tinystories", "lua", "luastories")}
    wrong, _ = merged_model(m["tinystories"], m["lua"], 0.58)
    summary = merge_check_summary(merge_check(wrong.state_dict(), m["luastories"].state_dict()), 0.58, 1.0)
    assert not summary["passed"] and summary["max_fp16_ulps"] > 100


@pytest.mark.slow
def test_released_eval_table_and_report(released_run):
    lm = (released_run / "tables" / "lm_eval.md").read_text()
    assert "3.10 / 0.419" in lm and "2.04 / 0.520" in lm and "2.45 / 0.494" in lm and "released checkpoints" in lm
    text = (released_run / "tables" / "REPRODUCTION.md").read_text()
    assert "The models are the authors' released checkpoints" in text and RELEASED_MODELS["base"] in text
    assert "the release is reproduced" in text and "offline stand-ins" in text
    assert (released_run / "figures" / "fig5_slerp_sweep.png").stat().st_size > 1000


@pytest.mark.slow
def test_released_checkpoint_of_another_shape_is_one_clear_error(released_run, hub_copy, tmp_path):
    "The profile's own d_model (512) against the 32-wide stand-ins: the train stage names the fields to --set."
    from universal_features.model import CheckpointError
    from universal_features.released import fetch_released
    from universal_features.run import Run
    cfg = get_config("released", {"model.d_model": 64, "model.d_mlp": 64, "model.n_heads": 4, "model.n_kv_heads": 2})
    (tmp_path / "results.json").write_text((released_run / "results.json").read_text())
    os.environ["UF_HUB_MIRROR"] = str(hub_copy)
    try:
        with pytest.raises(CheckpointError, match=r"hidden_size 32 ≠ model.d_model=64.*fix them with --set"):
            fetch_released(Run(tmp_path, cfg), "base")
    finally: del os.environ["UF_HUB_MIRROR"]


@pytest.mark.parametrize("why", ["missing", "revision", "gated", "offline", "unknown revision"])
def test_each_loading_failure_is_one_error_naming_the_id(why, tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import errors
    repo = RELEASED_MODELS["lua"]
    if why in ("missing", "revision"):
        monkeypatch.setenv("UF_HUB_MIRROR", str(tmp_path))
        if why == "revision":
            (tmp_path / repo).mkdir(parents=True); (tmp_path / repo / "config.json").write_text("{}")
        with pytest.raises(HubError) as e: hub_snapshot(repo, "0123abcd" if why == "revision" else "main")
        assert repo in str(e.value) and ("hf download" in str(e.value))
        return
    monkeypatch.delenv("UF_HUB_MIRROR", raising=False)
    import httpx
    response = lambda code: httpx.Response(code, request=httpx.Request("GET", f"https://huggingface.co/api/models/{repo}"))
    exc = {"gated": lambda: errors.GatedRepoError("gated", response=response(403)),
           "offline": lambda: errors.LocalEntryNotFoundError("no connection"),
           "unknown revision": lambda: errors.RevisionNotFoundError("no such revision", response=response(404))}[why]()
    def fail(*a, **k): raise exc
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fail)
    with pytest.raises(HubError) as e: hub_snapshot(repo, "main", tmp_path)
    words = {"gated": "accept its conditions", "offline": "unreachable", "unknown revision": "no revision"}[why]
    assert repo in str(e.value) and words in str(e.value)
