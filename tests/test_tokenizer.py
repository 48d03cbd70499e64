import pytest

from universal_features.lineage import LM_MIXTURES, SAE_MIXTURES
from universal_features.tokenizer import balanced_sample, bos_id, mixture_plan, pack_blocks, train_tokenizer

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
