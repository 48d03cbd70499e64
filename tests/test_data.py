import json

import pytest

from universal_features.config import FilterConfig
from universal_features.profiles import get_config
from universal_features.data import (NearDupIndex, cap_docs, clean_code, clean_prose, split_by_group, split_paragraphs,
                                     stack_filter)
from universal_features.sources import DataError, Doc, data_dir, parse_source, read_datadir

FC = FilterConfig()


@pytest.mark.parametrize("text,reason", [
    ("import os\nprint(os.getcwd())\n", None),
    ("", "empty"),
    ("   \n\n", "empty"),
    ("x" * 1001 + "\n", "long line"),
    (("y" * 150 + "\n") * 10, "long mean line"),
    ("{}[]()<>;:\n" * 30, "low alphanumeric fraction"),
    ("a = 1\n" * 200_000, "too large"),
])
def test_stack_filter(text, reason):
    assert stack_filter(text, FC) == reason


def test_exact_and_near_duplicates_first_source_wins():
    body = "".join(f"result_{i} = transform(items[{i}])\n" for i in range(10))
    docs = [Doc(body, "first", "a"), Doc("\n" + body + "\n\n", "exact-copy", "b"),
            Doc(body + "print('one more line here')\n", "near-copy", "c"),
            Doc("".join(f"other_{i} = different_call({i})\n" for i in range(10)), "distinct", "d")]
    kept, why = clean_code(docs, FC)
    assert [d.source for d in kept] == ["first", "distinct"]
    assert why == {"exact duplicate": 1, "near duplicate": 1}


def test_near_dup_threshold_is_per_single_kept_file():
    idx = NearDupIndex(threshold=0.8, min_line_chars=5)
    idx.add("line number one\nline number two\n")
    idx.add("line number three\nline number four\n")
    # all four lines are known, but no single kept file holds 80 % of them
    assert not idx.is_near_dup("line number one\nline number two\nline number three\nline number four\n")
    assert idx.is_near_dup("line number one\nline number two\n")


def test_prose_dedup_is_case_and_space_insensitive_and_chunks_long_docs():
    kept, why = clean_prose([Doc("Hello  World", "a", "g"), Doc("hello world", "b", "g"),
                             Doc("para one\n\npara two\n\npara three", "c", "h")], max_doc_chars=12)
    assert [d.text for d in kept] == ["Hello  World", "para one", "para two", "para three"]
    assert {d.group for d in kept[1:]} == {"h"} and why == {"exact duplicate": 1}


def test_split_paragraphs_keeps_all_text():
    text = "\n\n".join(f"paragraph {i} " * 5 for i in range(30))
    chunks = split_paragraphs(text, 200)
    assert all(len(c) <= 200 for c in chunks) and "\n\n".join(chunks) == text


def test_split_by_group_never_splits_a_group():
    docs = [Doc("z" * (50 + i), f"f{i}", f"pkg{i % 17}") for i in range(300)]
    train, val = split_by_group(docs, 0.1, seed=3)
    assert not {d.group for d in train} & {d.group for d in val}
    frac = sum(len(d.text) for d in val) / sum(len(d.text) for d in docs)
    assert 0.03 < frac < 0.16
    assert split_by_group(docs, 0.1, seed=3) == (train, val), "same seed, same split"


def test_split_by_group_passes_over_a_huge_group():
    docs = [Doc("x" * 10_000, "big", "huge")] + [Doc("y" * 100, f"s{i}", f"small{i}") for i in range(50)]
    train, val = split_by_group(docs, 0.05, seed=0)
    assert "huge" not in {d.group for d in val} and val


def test_fixed_splits_are_kept():
    docs = [Doc("a", "1", "g1", "train"), Doc("b", "2", "g2", "validation")]
    assert split_by_group(docs, 0.5, 0) == ([docs[0]], [docs[1]])


def test_cap_docs_is_seeded_and_bounded():
    docs = [Doc("w" * 1000, str(i), str(i)) for i in range(100)]
    a, b = cap_docs(docs, 0.02, seed=1), cap_docs(docs, 0.02, seed=1)
    assert a == b and sum(len(d.text) for d in a) <= 20_000 and len(a) == 20
    assert cap_docs(docs, 0.02, seed=2) != a and cap_docs(docs, 0, seed=1) == docs


@pytest.mark.parametrize("spec", ["pypi:django", "deb:lua-json", "nonsense:thing", "ftp:x"])
def test_bad_source_specs(spec):
    with pytest.raises(DataError):
        parse_source(spec)


def test_source_specs():
    assert parse_source("pypi:django==5.2.19").version == "5.2.19"
    s = parse_source("fortunes:fortunes=1:1.99.1-7.3")
    assert (s.kind, s.name, s.version, s.spec) == ("fortunes", "fortunes", "1:1.99.1-7.3", "fortunes:fortunes=1:1.99.1-7.3")


def test_missing_data_dir_says_what_to_do(monkeypatch):
    monkeypatch.delenv("UF_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="UF_DATA_DIR"):
        data_dir(get_config("smoke"))
    monkeypatch.setenv("UF_DATA_DIR", "/no/such/folder")
    with pytest.raises(DataError, match="does not exist"):
        data_dir(get_config("smoke"))


def test_damaged_jsonl_is_a_clear_error(tmp_path):
    (tmp_path / "babylm").mkdir()
    (tmp_path / "babylm" / "x.jsonl").write_text('{"text": "fine"}\n{"text": broken\n')
    with pytest.raises(DataError, match=r"x.jsonl:2 is not valid JSON"):
        read_datadir("babylm/x.jsonl", tmp_path)
    with pytest.raises(DataError, match="missing data file"):
        read_datadir("babylm/absent.jsonl", tmp_path)


def test_tinystories_keeps_its_hf_split(data_dir):
    docs, info = read_datadir("tinystories/stories.jsonl", data_dir)
    splits = {d.split for d in docs}
    assert splits == {"train", "validation"}
    assert sum(d.split == "validation" for d in docs) == 1016
    assert info.role == "subset of paper corpus" and len(info.sha256) == 64


def test_hub_require_without_hub_is_a_clear_error(monkeypatch):
    from universal_features import sources as data
    monkeypatch.setattr(data, "hub_reachable", lambda timeout=3.0: False)
    cfg = get_config("paper")
    with pytest.raises(DataError, match="HF Hub is unreachable.*nilq/babylm-100M"):
        data.use_hub(cfg.data.english, cfg)
    auto = get_config("cpu", ["data.hub=auto"])
    assert data.use_hub(auto.data.english, auto) is False
    assert data.use_hub(get_config("cpu").data.english, get_config("cpu")) is False


def test_deb_license_reads_dep5_fields_only(tmp_path):
    from universal_features.sources import deb_license
    doc = tmp_path / "usr/share/doc/pkg"; doc.mkdir(parents=True)
    (doc / "copyright").write_text("Files: *\nLicense: Expat\n\nLicense: The following license is applied to all documents in this project\n")
    assert deb_license(tmp_path, "pkg") == "Expat"
