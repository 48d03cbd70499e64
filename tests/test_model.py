import pytest
import torch

from universal_features.config import ModelConfig
from universal_features.model import CheckpointError, LanguageModel, load_model, save_model

CFG = ModelConfig(d_model=64, n_heads=4, n_kv_heads=2, d_mlp=128, context_length=32)
VOCAB = 300


@pytest.fixture
def model():
    torch.manual_seed(0)
    return LanguageModel(CFG, VOCAB).eval()


@pytest.fixture
def tokens():
    return torch.randint(0, VOCAB, (3, 32), generator=torch.Generator().manual_seed(1))


def test_transformers_loads_our_checkpoint_with_the_same_logits(model, tokens, tmp_path):
    transformers = pytest.importorskip("transformers")
    save_model(model, tmp_path / "ckpt", tokenizer_sha256="abc")
    hf = transformers.MistralForCausalLM.from_pretrained(tmp_path / "ckpt", torch_dtype=torch.float32).eval()
    with torch.no_grad():
        diff = (hf(tokens).logits - model(tokens)).abs().max().item()
    assert diff <= 1e-4, diff


def test_hf_mistral_checkpoint_loads_into_our_model(tokens, tmp_path):
    transformers = pytest.importorskip("transformers")
    hf_cfg = transformers.MistralConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                        num_attention_heads=4, num_key_value_heads=2, rope_theta=10000.0,
                                        rms_norm_eps=1e-6, tie_word_embeddings=False)
    torch.manual_seed(3)
    hf = transformers.MistralForCausalLM(hf_cfg).eval()
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours = load_model(tmp_path / "hf").eval()
    with torch.no_grad():
        assert (hf(tokens).logits - ours(tokens)).abs().max().item() <= 1e-4


def test_round_trip_is_exact(model, tokens, tmp_path):
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m").eval()
    assert torch.equal(again(tokens), model(tokens))
    assert not list((tmp_path / "m").glob(".*tmp"))


def test_wrong_shape_names_both_shapes(model, tmp_path):
    save_model(model, tmp_path / "m")
    with pytest.raises(CheckpointError, match=r"'d_model': 64.*'d_model': 128"):
        load_model(tmp_path / "m", expect_config=ModelConfig(d_model=128, n_heads=4, n_kv_heads=2, d_mlp=128))
    with pytest.raises(CheckpointError, match="vocabulary of 300 tokens, but the tokenizer has 512"):
        load_model(tmp_path / "m", expect_vocab=512)


def test_other_tokenizer_is_refused(model, tmp_path):
    save_model(model, tmp_path / "m", tokenizer_sha256="a" * 64)
    with pytest.raises(CheckpointError, match="tokenizer"):
        load_model(tmp_path / "m", expect_tokenizer_sha256="b" * 64)


def test_corrupt_file_is_a_clear_error(model, tmp_path):
    save_model(model, tmp_path / "m")
    st = tmp_path / "m" / "model.safetensors"
    st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="damaged"):
        load_model(tmp_path / "m")


def test_tampered_tensor_shape_is_named(model, tmp_path):
    from safetensors.torch import load_file, save_file
    save_model(model, tmp_path / "m")
    sd = load_file(str(tmp_path / "m" / "model.safetensors"))
    sd["model.layers.0.mlp.up_proj.weight"] = torch.zeros(100, 64)
    save_file(sd, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"up_proj.weight has shape \(100, 64\), the model expects \(128, 64\)"):
        load_model(tmp_path / "m")


def test_hooks_read_replace_and_vanish(model, tokens):
    _, cache = model.run_with_cache(tokens)
    for name in ("hook_embed", "blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post",
                 "blocks.0.attn.hook_pattern", "blocks.0.mlp.hook_post", "blocks.0.hook_mlp_out"):
        assert name in cache
    post = cache["blocks.0.mlp.hook_post"]
    # replacing hook_post by itself changes nothing; zeros make the MLP output zero
    same = model.run_with_hooks(tokens, [("blocks.0.mlp.hook_post", lambda a, h: post)])
    assert torch.allclose(same, model(tokens), atol=1e-5)
    with model.hooks([("blocks.0.mlp.hook_post", lambda a, h: torch.zeros_like(a))]):
        _, c = model.run_with_cache(tokens, ["blocks.0.hook_mlp_out"])
    assert torch.count_nonzero(c["blocks.0.hook_mlp_out"]) == 0
    assert all(not hp._forward_hooks for hp in model.hook_points.values())
    with pytest.raises(KeyError, match="hook points"):
        model.run_with_hooks(tokens, [("blocks.0.mlp.hook_nope", lambda a, h: a)])


def test_mlp_hook_post_is_silu_gate_times_up(model, tokens):
    _, cache = model.run_with_cache(tokens, ["blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_pre_linear", "blocks.0.mlp.hook_post"])
    expect = torch.nn.functional.silu(cache["blocks.0.mlp.hook_pre"]) * cache["blocks.0.mlp.hook_pre_linear"]
    assert torch.allclose(cache["blocks.0.mlp.hook_post"], expect)


def test_causality(model, tokens):
    a = model(tokens)
    t2 = tokens.clone(); t2[:, 20:] = (t2[:, 20:] + 1) % VOCAB
    assert torch.allclose(a[:, :20], model(t2)[:, :20], atol=1e-6)
