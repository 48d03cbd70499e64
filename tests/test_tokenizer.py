import json
import random
from pathlib import Path

import numpy as np
import pytest

from universal_features.config import Config
from universal_features.data import PACKAGED_TOKENIZERS, TOKENIZER_MODEL, stage_tokenizer_model
from universal_features.lineage import LM_MIXTURES, SAE_MIXTURES
from universal_features.profiles import get_config
from universal_features.sources import DataError, cache_dir, packaged_file, read_deb_lua, read_stdlib
from universal_features.tokenizer import (balanced_sample, bos_id, mixture_plan, pack_blocks, pretrained_tokenizer,
                                          sentencepiece_to_fast, token_strings, train_tokenizer)

SAMPLES = [
    "def f(x):\n\treturn {'a': x ** 2}  # comment\n",
    "local function f(t)\n  for k, v in pairs(t) do print(k, v) end\nend\n",
    "*MOT:\twhat's that ? . Once upon a time, Lily — “the girl” — met Zoë.\n\nThe end.",
    "    indented\r\nwindows line\n\n\n  trailing spaces   ",
]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(SAMPLES * 30, vocab_size=400, min_frequency=1)


@pytest.mark.parametrize("text", SAMPLES + ["unseen ✓ 漢字 emoji 🙂 text", ""])
def test_round_trip_and_bos(tok, text):
    enc = tok.encode(text)
    assert enc.ids[0] == bos_id(tok) == 1
    assert tok.decode(enc.ids, skip_special_tokens=True) == text


def test_special_ids_match_mistral(tok):
    assert [tok.token_to_id(t) for t in ("<unk>", "<s>", "</s>")] == [0, 1, 2]
    assert tok.get_vocab_size() <= 400


def test_pack_blocks_drops_only_the_remainder():
    ids = [[1, 2, 3], [1, 4], [1, 5, 6, 7, 8]]
    blocks = pack_blocks(ids, 3)
    assert blocks.tolist() == [[1, 2, 3], [1, 4, 1], [5, 6, 7]]
    assert pack_blocks([[1, 2]], 3).shape == (0, 3)


def test_balanced_sample_takes_equal_bytes_per_domain():
    docs = {"a": ["x" * 100] * 50, "b": ["y" * 10] * 30}
    s = balanced_sample(docs, 1.0, seed=0)
    assert sum(len(t) for t in s if t[0] == "x") == 300 and sum(len(t) for t in s if t[0] == "y") == 300


def test_mixtures_follow_the_paper():
    counts = dict(english=100, python=70, lua=30, tinystories=40)
    assert mixture_plan(counts, LM_MIXTURES["base"]) == dict(english=70, python=70)
    assert mixture_plan(counts, SAE_MIXTURES["lua"]) == dict(english=70, python=70, lua=30)
    assert mixture_plan(counts, SAE_MIXTURES["luastories"]) == dict(english=70, python=70, lua=30, tinystories=40)
    assert mixture_plan(counts, LM_MIXTURES["tinystories"]) == dict(tinystories=40)


# Mistral-7B-v0.1's tokenizer, the paper's (nbs/01c_tokenizer.ipynb): the file mistral-common ships, converted by us,
# against sentencepiece itself on real code and prose.

MISTRAL_ID = "mistralai/Mistral-7B-v0.1"
MISTRAL = PACKAGED_TOKENIZERS[MISTRAL_ID]
SPECIAL_LITERALS = ("<s>", "</s>", "<unk>")   # the Hub's tokenizer.json, and ours, read these as special tokens


@pytest.fixture(scope="module")
def mistral_model() -> bytes:
    "The model file from the installed mistral-common, else its wheel (cached, or downloaded from PyPI)."
    try: return packaged_file(MISTRAL, cache_dir(Config()))
    except DataError as e: pytest.skip(f"no copy of {MISTRAL.spec} here (PyPI unreachable?): {e}")


@pytest.fixture(scope="module")
def mistral(mistral_model):
    return sentencepiece_to_fast(mistral_model)


def _jsonl(path: Path, n: int) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(l)["text"] for l in random.Random(0).sample(lines, min(n, len(lines)))]


def real_texts(domain: str, data_dir: Path, n: int = 150) -> list[str]:
    if domain == "python": docs = [d.text for d in read_stdlib()[0]]
    elif domain == "lua":
        try: docs = [d.text for d in read_deb_lua("lua-penlight", "1.13.1-3", cache_dir(Config()))[0]]
        except DataError as e: pytest.skip(f"no Lua package here: {e}")
    elif domain == "english": return _jsonl(data_dir / "babylm" / "childes.jsonl", n // 3) + _jsonl(data_dir / "babylm" / "gutenberg.jsonl", 5)
    else: return _jsonl(data_dir / "tinystories" / "stories.jsonl", n)
    return random.Random(0).sample(docs, min(n, len(docs)))


def test_the_packaged_file_is_mistral_7b_v01s_tokenizer_model(mistral_model, mistral):
    assert len(mistral_model) == MISTRAL.size == 493_443
    assert mistral.get_vocab_size() == 32000
    assert [mistral.id_to_token(i) for i in (0, 1, 2, 3, 258)] == ["<unk>", "<s>", "</s>", "<0x00>", "<0xFF>"]


@pytest.mark.parametrize("domain", ["python", "lua", "english", "tinystories"])
def test_converted_tokenizer_gives_sentencepieces_ids(domain, data_dir, mistral_model, mistral):
    spm = pytest.importorskip("sentencepiece")
    sp = spm.SentencePieceProcessor(model_proto=mistral_model)
    texts = [t for t in real_texts(domain, data_dir) if not any(s in t for s in SPECIAL_LITERALS)]
    ours = [e.ids for e in mistral.encode_batch(texts)]
    theirs = [[1] + sp.encode(t) for t in texts]
    assert len(texts) >= 30 and sum(map(len, theirs)) > 20_000
    bad = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    assert not bad, f"{len(bad)} of {len(texts)} {domain} documents differ, the first: {texts[bad[0]][:200]!r}"
    assert all(mistral.decode(ids, skip_special_tokens=True) == t for ids, t in zip(ours, texts))


def test_special_literals_are_the_one_known_difference(mistral_model, mistral):
    spm = pytest.importorskip("sentencepiece")
    sp = spm.SentencePieceProcessor(model_proto=mistral_model)
    text = "x = '</s>'\n    return x  # ✓ 漢字 🙂"
    assert 2 in mistral.encode(text).ids and 2 not in sp.encode(text)     # </s> is a special token to HF, characters to SP
    plain = text.replace("</s>", "end")
    assert mistral.encode(plain).ids == [1] + sp.encode(plain)
    code = "def f(x):\n    if x:\n        return '  '\n"
    assert "".join(token_strings(mistral, mistral.encode(code).ids[1:])) == " " + code   # SentencePiece's leading ▁


def test_gpu_profile_has_the_papers_parameter_count():
    from universal_features.model import LanguageModel
    cfg = get_config("gpu")
    model = LanguageModel(cfg.model, cfg.tokenizer.vocab_size)
    assert (cfg.tokenizer.pretrained, cfg.tokenizer.vocab_size) == (MISTRAL_ID, 32000)
    assert sum(p.numel() for p in model.parameters()) == 35_128_832          # the released checkpoints' count
    bpe = get_config("gpu", ["tokenizer.pretrained=", "tokenizer.vocab_size=8192"])   # the BPE of our own, by --set
    assert (bpe.tokenizer.pretrained, bpe.tokenizer.vocab_size) == ("", 8192)


def test_the_data_stage_copies_the_model_and_the_tokenizer_stage_reads_it_offline(tmp_path, mistral_model, mistral, monkeypatch):
    monkeypatch.delenv("UF_HUB_MIRROR", raising=False)
    ddir = tmp_path / "datadir"; ddir.mkdir()
    cfg = get_config("paper-shape", {"data.data_dir": str(ddir), "tokenizer.pretrained": MISTRAL_ID, "tokenizer.vocab_size": 32000})
    staged = stage_tokenizer_model(cfg, tmp_path / "run" / "data")
    assert staged == {"repo_id": MISTRAL_ID, "source": MISTRAL.spec, "sha256": MISTRAL.sha256, "bytes": MISTRAL.size}
    (tmp_path / "run" / "data" / "manifest.json").write_text(json.dumps({"tokenizer": staged}))
    tok, version, source = pretrained_tokenizer(cfg, tmp_path / "run")            # data.hub=never: no network
    assert (version, source) == (f"{MISTRAL_ID}@sha256:{MISTRAL.sha256}", MISTRAL.spec)
    assert tok.to_str() == mistral.to_str()
    # a copy in the data directory comes first; one that is not the pinned file is refused with what to do
    (ddir / MISTRAL_ID).mkdir(parents=True)
    (ddir / MISTRAL_ID / "tokenizer.model").write_bytes(mistral_model)
    assert stage_tokenizer_model(cfg, tmp_path / "run" / "data")["source"] == f"data directory: {MISTRAL_ID}/tokenizer.model"
    (ddir / MISTRAL_ID / "tokenizer.model").write_bytes(mistral_model[:-10])
    with pytest.raises(DataError, match="it is not the pinned file. Put the Hub's mistralai/Mistral-7B-v0.1/tokenizer.model there"):
        stage_tokenizer_model(cfg, tmp_path / "run" / "data")
    (tmp_path / "run" / "data" / TOKENIZER_MODEL).write_bytes(mistral_model[:-10])
    with pytest.raises(DataError, match="Run the data stage again"):
        pretrained_tokenizer(cfg, tmp_path / "run")


def test_pack_dataset_is_pack_blocks_on_each_batch_of_documents():
    "The Arrow packing gives exactly the authors' rule applied per batch, for any batch size, on a selected subset too."
    import datasets, pyarrow as pa
    from universal_features.tokenizer import pack_dataset
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 50, rng.integers(1, 40)).tolist() for _ in range(103)]
    ds = datasets.Dataset(pa.table({"input_ids": pa.array(docs, type=pa.list_(pa.int32()))}))
    for block_size, batch in ((7, 10), (16, 1000), (5, 1), (64, 3)):
        want = np.concatenate([pack_blocks(docs[i:i + batch], block_size) for i in range(0, len(docs), batch)])
        packed = pack_dataset(ds, block_size, batch)
        assert packed.features["input_ids"].feature.dtype == "int32"
        np.testing.assert_array_equal(np.array(packed["input_ids"], dtype=np.int32).reshape(-1, block_size), want)
    picked = list(range(90, 20, -3))
    np.testing.assert_array_equal(np.array(pack_dataset(ds.select(picked), 6, 4)["input_ids"]).reshape(-1, 6),
                                  np.concatenate([pack_blocks([docs[i] for i in picked[j:j + 4]], 6) for j in range(0, len(picked), 4)]))
