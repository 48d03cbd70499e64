import pytest

from universal_features.config import Config, ConfigError, config_hash, from_dict, load_config, save_config, to_dict
from universal_features.config_rules import valid_keys
from universal_features.profiles import PROFILES, get_config


@pytest.mark.parametrize("name", list(PROFILES))
def test_profiles_round_trip(name, tmp_path):
    cfg = get_config(name)
    assert cfg.profile == name
    assert from_dict(to_dict(cfg)) == cfg
    save_config(cfg, tmp_path / "config.json")
    assert load_config(tmp_path / "config.json") == cfg
    assert not list(tmp_path.glob(".*tmp")), "atomic write left a temp file"


def test_every_stage_has_a_section():
    for section in ("data", "tokenizer", "model", "train", "finetune", "merge", "sae", "matching", "report"):
        assert section in to_dict(Config())


def test_overrides_are_typed():
    cfg = get_config("cpu", ["sae.l1_coefficient=3e-4", "train.betas=0.9,0.95", "model.d_model=64",
                             "report.publish=false", "merge.t=none", "data.lua.sources=[\"deb:lua-json=1.3.4-2\"]",
                             "sae.l1_coefficient_by_model={\"lua\": 0.1}", "train.max_steps=1e3"])
    assert cfg.sae.l1_coefficient == 3e-4 and isinstance(cfg.sae.l1_coefficient, float)
    assert cfg.train.betas == (0.9, 0.95)
    assert cfg.model.d_model == 64 and isinstance(cfg.model.d_model, int)
    assert cfg.report.publish is False and cfg.merge.t is None
    assert cfg.data.lua.sources == ["deb:lua-json=1.3.4-2"]
    assert cfg.sae.l1_coefficient_by_model == {"lua": 0.1}
    assert cfg.train.max_steps == 1000
    assert get_config("cpu").sae.l1_coefficient != 3e-4, "overrides must not leak into the profile"


def test_dict_overrides_as_papermill_passes_them():
    assert get_config("smoke", {"model.d_model": 48}).model.d_model == 48


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ConfigError, match="valid profiles: smoke, cpu, cpu-study, gpu, paper-shape, paper"):
        get_config("laptop")


@pytest.mark.parametrize("bad,words", [("sae.l1=1", "Keys of [sae]: "), ("nosection.x=1", "Sections: profile, data"),
                                       ("data.python.nope=2", "Keys of [data]"), ("sae=3", "Keys of [sae]")])
def test_unknown_key_names_what_exists(bad, words):
    with pytest.raises(ConfigError, match="unknown config key") as e:
        get_config("cpu", [bad])
    assert words in str(e.value)


@pytest.mark.parametrize("bad", ["train.max_steps=many", "report.publish=maybe", "model.d_model"])
def test_bad_values_are_one_clear_error(bad):
    with pytest.raises(ConfigError):
        get_config("cpu", [bad])


def test_hash_is_per_section_and_ignores_locations():
    base = get_config("cpu")
    changed = get_config("cpu", ["sae.l1_coefficient=1.0"])
    assert config_hash(base, ["data", "tokenizer"]) == config_hash(changed, ["data", "tokenizer"])
    assert config_hash(base, ["sae"]) != config_hash(changed, ["sae"])
    assert config_hash(base, ["sae.block_size"]) == config_hash(changed, ["sae.block_size"])
    moved = get_config("cpu", ["data.data_dir=/somewhere/else", "data.cache_dir=/tmp/x"])
    assert config_hash(moved) == config_hash(base)


def test_valid_keys_cover_nested_domains():
    keys = valid_keys(get_config("cpu"))
    assert "data.lua.max_train_mb" in keys and "data.filters.max_line_chars" in keys


def test_paper_profile_has_the_papers_numbers():
    p = get_config("paper")
    assert (p.model.d_model, p.model.n_heads, p.model.n_kv_heads, p.model.d_mlp) == (512, 16, 8, 1024)
    assert (p.model.rope_theta, p.model.rms_norm_eps, p.model.tie_embeddings, p.model.context_length) == (1e4, 1e-6, False, 256)
    assert (p.train.lr, p.train.weight_decay, p.train.warmup_steps, p.train.epochs, p.train.batch_size) == (6e-4, 0.1, 0, 3.0, 64)
    assert (p.finetune.lr, p.finetune.weight_decay, p.finetune.warmup_steps, p.finetune.epochs) == (2e-5, 0.01, 500, 1.0)
    assert p.tokenizer.pretrained == "mistralai/Mistral-7B-v0.1" and p.tokenizer.vocab_size == 32000
    assert p.sae.expansion_factor * p.model.d_mlp == 16384 and p.sae.block_size == 24
    assert p.sae.batch_size_tokens == 128 * 24 and p.sae.betas == (0.9, 0.9999) and p.sae.seed == 1337
    assert p.data.hub == "require" and p.data.tinystories.hub_id == "roneneldan/TinyStories"


def test_gpu_profile_has_the_papers_architecture():
    g = get_config("gpu")
    assert (g.model.d_model, g.model.n_heads, g.model.n_kv_heads, g.model.d_mlp, g.model.context_length) == (512, 16, 8, 1024, 256)
    assert g.train.batch_size == 64 and g.sae.expansion_factor * g.model.d_mlp == 16384 and g.sae.block_size == 24


@pytest.mark.parametrize("override,words", [
    ("model.d_model=-5", "model.d_model=-5 must be > 0"),
    ("sae.batch_size_tokens=0", "sae.batch_size_tokens=0 must be > 0"),
    ("model.n_heads=5", "model.d_model=128 must be divisible by model.n_heads=5"),
    ("model.n_kv_heads=3", "model.n_heads=4 must be divisible by model.n_kv_heads=3"),
    ("merge.t=1.2", "merge.t=1.2 must be none (the accuracy crossing t*) or in [0, 1]"),
    ("merge.t=-0.1", "merge.t=-0.1 must be none"),
    ("sae.architecture=gated", "sae.architecture='gated' must be relu or topk"),
    ("autointerp.backend=gpt", "autointerp.backend='gpt' must be auto, openai or offline"),
    ("merge.method=ties", "merge.method='ties' must be slerp or lerp"),
    ("data.hub=sometimes", "data.hub='sometimes' must be never, auto or require"),
    ("matching.threshold=0", "matching.threshold=0.0 must be in (0, 1]"),
    ("released.base=nilq/baby-python-mistral-1L-tiny-base", "released: base set but not lua, tinystories, luastories"),
    ("released.merge_tolerance_ulps=0", "released.merge_tolerance_ulps=0.0 must be > 0"),
])
def test_bad_values_fail_before_any_stage_with_key_value_and_rule(override, words):
    with pytest.raises(ConfigError, match="invalid config") as e:
        get_config("cpu", [override])
    assert words in str(e.value)


def test_every_profile_is_valid():
    for name in PROFILES: get_config(name)


def test_unknown_key_suggests_the_closest_keys_not_all_of_them():
    with pytest.raises(ConfigError) as e:
        get_config("cpu", ["sae.l1_coeficient=1"])
    msg = str(e.value)
    assert "did you mean sae.l1_coefficient" in msg and "Keys of [sae]" in msg and "data.english.sources" not in msg
    with pytest.raises(ConfigError, match="Sections: profile, data, tokenizer"):
        get_config("cpu", ["optimizer.lr=1"])


def test_released_profile_names_the_authors_checkpoints_and_shapes():
    r = get_config("released")
    assert r.released.models == {"base": "nilq/baby-python-mistral-1L-tiny-base", "lua": "nilq/baby-python-mistral-1L-tiny-lua-ft",
                                 "tinystories": "nilq/baby-python-mistral-1L-tiny-TinyStories-ft",
                                 "luastories": "nilq/baby-python-1L-mistral-lua-stories-slerp"}
    assert (r.model.d_model, r.model.n_heads, r.model.n_kv_heads, r.model.d_mlp, r.tokenizer.vocab_size) == (512, 16, 8, 1024, 32000)
    assert r.tokenizer.pretrained == "mistralai/Mistral-7B-v0.1" and r.merge.t == 0.42 and r.data.hub == "auto"
    with pytest.raises(ConfigError, match="must be a Hub id owner/name"):
        get_config("released", ["released.lua=lua-ft"])
