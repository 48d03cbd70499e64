"""The `released` profile end to end on small stand-ins of the authors' four checkpoints, offline.

The stand-ins are HF `MistralForCausalLM`s with the released `config.json`'s field values (shrunk to d_model 32 and a
small vocabulary), saved with `save_pretrained` in the Hub's layout under `$UF_HUB_MIRROR/<owner>/<name>`, beside a
SentencePiece-style tokenizer (Metaspace, byte fallback, BOS) as `mistralai/Mistral-7B-v0.1`. The two fine-tunes lie
as close to their base as real ones do (each tensor moved by 15 % of its spread). The released merge is made as
mergekit 0.0.4.1 makes it with `dtype: float16` (paper_notes §5.1–5.2), written here independently of
`universal_features.merge`: both fine-tunes read in float16 (mergekit loads every input in the merge's dtype), float32
numpy SLERP with the Lua model as base at t = 0.58, stored in float16. The pipeline then reads them through the same
code as Hub ids; only the location differs. Where mergekit is installed (the `interop` extra), a merge by mergekit
itself is checked too."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from universal_features.config import to_dict
from universal_features.hub import HubError, hub_snapshot
from universal_features.profiles import RELEASED_MODELS, get_config
from conftest import console_script

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
    "mergekit 0.0.4.1's SLERP of one tensor (v0 = base model): numpy, float32 in every step."
    a, b = v0.astype(np.float32), v1.astype(np.float32)
    unit = lambda x: x / np.linalg.norm(x) if np.linalg.norm(x) > eps else x
    dot = np.sum(unit(a) * unit(b))                      # a float32 scalar: the angle and the weights stay float32 too
    if abs(dot) > dot_threshold: return (1 - t) * a + t * b
    theta0 = np.arccos(dot)
    theta = theta0 * np.float32(t)
    return (np.sin(theta0 - theta) / np.sin(theta0)) * a + (np.sin(theta) / np.sin(theta0)) * b


def mergekit_release(base_sd: dict, other_sd: dict, t: float, dtype=torch.float16) -> dict:
    "A SLERP merge as mergekit makes one with `dtype:` set: every input read in `dtype`, merged in float32, stored in `dtype`."
    read = lambda v: v.to(dtype).float().numpy()
    return {k: torch.from_numpy(mergekit_slerp(read(base_sd[k]), read(other_sd[k]), t)).to(dtype) for k in base_sd}


def fine_tunes(base_sd: dict, delta: float) -> dict:
    "Stand-ins of the two fine-tunes: the base moved in two directions, each tensor by `delta` of its std (0.01 at least)."
    out = {}
    for i, name in enumerate(("lua", "tinystories"), 1):
        g = torch.Generator().manual_seed(i)
        out[name] = {k: v + delta * v.std().clamp_min(0.01) * torch.randn(v.shape, generator=g) for k, v in base_sd.items()}
    return out


def check_line(rows: list[dict]) -> str:
    "The check's rows in one line: how many tensors are within tolerance, and the worst."
    worst = max(rows, key=lambda r: r["max_fp16_ulps"])
    return (f"{sum(r['within_tolerance'] for r in rows)} of {len(rows)} tensors within tolerance, worst {worst['tensor']} "
            f"at {worst['max_fp16_ulps']:.2f} fp16 ulp")


def tiny_lm_state_dict(vocab_size: int = 300) -> dict:
    "The state dict of a freshly initialised LanguageModel of the stand-ins' shapes (12 tensors)."
    from universal_features.config import ModelConfig
    from universal_features.model import LanguageModel
    torch.manual_seed(0)
    return LanguageModel(ModelConfig(d_model=32, n_heads=4, n_kv_heads=2, d_mlp=64, context_length=64), vocab_size).state_dict()


@pytest.mark.parametrize("delta", [0.15, 0.02])
def test_merge_check_accepts_a_mergekit_merge_of_close_fine_tunes(delta):
    """Fine-tunes as close to their base as real ones, merged as mergekit merges them (inputs read in float16, float32
    SLERP, Lua as base at t = 0.58, stored in float16): our check at t = 0.42 passes within 1 fp16 ulp. Without the
    inputs' rounding (a merge of the float32 fine-tunes) it misses; so does the merge in the other orientation."""
    from universal_features.released import merge_check, merge_check_summary
    ft = fine_tunes(tiny_lm_state_dict(), delta)
    lua, ts = ft["lua"], ft["tinystories"]
    release = mergekit_release(lua, ts, 0.58)                              # base_model: Lua
    rows = merge_check(ts, lua, 0.42, release, torch.float16)
    print(f"delta {delta}: rounded to float16 first: {check_line(rows)}")
    assert len(rows) == 12 and all(r["within_tolerance"] for r in rows) and max(r["max_fp16_ulps"] for r in rows) <= 1.0
    unrounded = merge_check(ts, lua, 0.42, release, torch.float32)         # what a check of the float32 fine-tunes sees
    print(f"delta {delta}: the float32 fine-tunes: {check_line(unrounded)}")
    assert not merge_check_summary(unrounded, 0.42, 1.0)["passed"]
    # t applied the other way: mergekit's 0.58 read in our orientation, and a release made with TinyStories as base
    for what, rows in (("our t = 0.58", merge_check(ts, lua, 0.58, release, torch.float16)),
                       ("a release with TinyStories as base", merge_check(ts, lua, 0.42, mergekit_release(ts, lua, 0.58), torch.float16))):
        print(f"delta {delta}: the other orientation, {what}: {check_line(rows)}")
        s = merge_check_summary(rows, 0.58, 1.0)
        assert not s["passed"] and s["max_fp16_ulps"] > 100


def test_merge_dtype_is_the_release_s_one_stored_dtype():
    from universal_features.model import CheckpointError
    from universal_features.released import merge_dtype
    assert merge_dtype(["F16"]) == torch.float16 and merge_dtype(["BF16"]) == torch.bfloat16 and merge_dtype(["F32"]) == torch.float32
    for bad in ([], ["F16", "F32"], ["I8"]):
        with pytest.raises(CheckpointError, match="stores its tensors as"): merge_dtype(bad)


MERGEKIT_YAML = """models:
  - model: {base}
  - model: {other}
merge_method: slerp
base_model: {base}
parameters:
  t:
    - value: 0.58
dtype: float16
"""


def mergekit_yaml(config: str, out: Path, tmp: Path) -> None:
    "Run mergekit's `mergekit-yaml` (its console script's entry point) on the CPU, offline."
    cfg = tmp / f"{out.name}.yml"
    cfg.write_text(config)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp / "hf_home")}
    r = subprocess.run([sys.executable, "-m", "mergekit.scripts.run_yaml", str(cfg), str(out), "--no-cuda", "--quiet"],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0 and (out / "config.json").is_file(), r.stdout[-3000:] + r.stderr[-3000:]


@pytest.mark.parametrize("delta", [0.15, 0.02])
def test_merge_check_accepts_mergekit_s_own_merge(delta, tmp_path):
    """The stand-in fine-tunes merged by mergekit itself (`mergekit-yaml`: slerp, base_model the Lua stand-in, t = 0.58,
    dtype float16): our check passes within 1 fp16 ulp, and fails at the other orientation (TinyStories as base)."""
    pytest.importorskip("mergekit")
    import transformers
    from universal_features.model import checkpoint_dtypes, load_model
    from universal_features.released import merge_check, merge_check_summary, merge_diff, merge_dtype
    conf = transformers.MistralConfig(**{**RELEASED_CONFIG, **SHRUNK, "vocab_size": 300})
    torch.manual_seed(0)
    ft = fine_tunes(transformers.MistralForCausalLM(conf).state_dict(), delta)
    for name, sd in ft.items():
        model = transformers.MistralForCausalLM(conf).eval()
        model.load_state_dict(sd)
        model.save_pretrained(tmp_path / name, safe_serialization=True)
    lua, ts = (load_model(tmp_path / n).state_dict() for n in ("lua", "tinystories"))
    mergekit_yaml(MERGEKIT_YAML.format(base=tmp_path / "lua", other=tmp_path / "tinystories"), tmp_path / "merged", tmp_path)
    assert checkpoint_dtypes(tmp_path / "merged") == ["F16"]
    dtype, release = merge_dtype(checkpoint_dtypes(tmp_path / "merged")), load_model(tmp_path / "merged").state_dict()
    rows = merge_check(ts, lua, 0.42, release, dtype)
    print(f"delta {delta}: mergekit's merge: {check_line(rows)}")
    assert len(rows) == 12 and all(r["within_tolerance"] for r in rows) and max(r["max_fp16_ulps"] for r in rows) <= 1.0
    unrounded = merge_check(ts, lua, 0.42, release, torch.float32)         # what a check of the float32 fine-tunes sees
    print(f"delta {delta}: mergekit's merge against the float32 fine-tunes: {check_line(unrounded)}")
    assert not merge_check_summary(unrounded, 0.42, 1.0)["passed"]
    # this module's stand-in of a mergekit merge agrees with mergekit's own within the final rounding
    assert all(r["within_tolerance"] for r in merge_diff(mergekit_release(lua, ts, 0.58), release))
    assert not merge_check_summary(merge_check(ts, lua, 0.58, release, dtype), 0.58, 1.0)["passed"]
    mergekit_yaml(MERGEKIT_YAML.format(base=tmp_path / "tinystories", other=tmp_path / "lua"), tmp_path / "wrong", tmp_path)
    wrong = merge_check(ts, lua, 0.42, load_model(tmp_path / "wrong").state_dict(), dtype)
    print(f"delta {delta}: mergekit's merge with TinyStories as base: {check_line(wrong)}")
    s = merge_check_summary(wrong, 0.42, 1.0)
    assert not s["passed"] and s["max_fp16_ulps"] > 100


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
    sds.update(fine_tunes(sds["base"], 0.15))            # two "fine-tunes": the base moved a little in different directions
    sds["luastories"] = mergekit_release(sds["lua"], sds["tinystories"], 0.58)
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
    cmd = [console_script("uf-reproduce"), "--no-progress", "--profile", "released", "--run-dir", str(run_dir)]
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
    assert rm["inputs_rounded_to"] == "float16"
    assert rm["passed"] and rm["tensors_within"] == rm["tensors"] == 12 and rm["max_fp16_ulps"] <= 1.0
    table = (released_run / "tables" / "released_merge_check.md").read_text()
    assert "| blocks.0.mlp.up_proj.weight | 64×32 |" in table and "| True |" in table and "| False |" not in table


@pytest.mark.slow
def test_released_merge_check_sees_the_wrong_orientation(released_run):
    "Our SLERP at 0.58 (mergekit's t read in our orientation, TinyStories at 0) misses the release by far."
    from universal_features.model import load_model
    from universal_features.released import merge_check, merge_check_summary
    m = {n: load_model(released_run / "models" / n).state_dict() for n in ("tinystories", "lua", "luastories")}
    summary = merge_check_summary(merge_check(m["tinystories"], m["lua"], 0.58, m["luastories"], torch.float16), 0.58, 1.0)
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
