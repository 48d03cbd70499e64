import dataclasses
import importlib.util
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from universal_features import hub
from universal_features.config import FilterConfig
from universal_features.profiles import get_config
from universal_features.data import (NearDupIndex, cap_docs, clean_code, clean_prose, split_by_group, split_paragraphs,
                                     stack_filter)
from universal_features.sources import DataError, Doc, data_dir, parse_source, read_datadir

FC = FilterConfig()
REPO = Path(__file__).resolve().parents[1]


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
    from universal_features import hub as data
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


# --- The data directory's TinyStories and BabyLM files from the HF Hub when the directory lacks them ---------------------
# The Hub is never contacted: UF_HUB_MIRROR points `load_hub_rows` at a local copy with the Hub's layout and schema
# (data/<split>-*.parquet with a `text` column), and `hub_reachable` is patched to say the Hub is down.

NAMES = ["Tom", "Sue", "Lily", "Ben", "Max", "Mia"]


def _write_mirror(root, repo_id, splits):
    (root / repo_id / "data").mkdir(parents=True, exist_ok=True)
    for split, texts in splits.items():
        pq.write_table(pa.table({"text": texts}), root / repo_id / "data" / f"{split}-00000-of-00001.parquet")


def _scaled(f):
    return {rel: dataclasses.replace(s, sizes={sp: (max(1, round(n * f)), round(b * f)) for sp, (n, b) in s.sizes.items()})
            for rel, s in hub.HUB_STANDINS.items()}


@pytest.fixture
def hub_mirror(tmp_path, monkeypatch):
    "A local copy of roneneldan/TinyStories and nilq/babylm-100M, no data directory, no network, sizes / 1000."
    root = tmp_path / "hub"
    _write_mirror(root, "roneneldan/TinyStories", {
        "train": [f"Once upon a time, {NAMES[i % 6]} found {i} shiny stones by the river. {NAMES[i % 6]} was very happy."
                  for i in range(400)],
        "validation": [f"One day, {NAMES[i % 6]} saw {i} birds in the blue sky. The end." for i in range(80)]})
    _write_mirror(root, "nilq/babylm-100M", {"train": [f"*MOT:\tthis is line {i} , look at the ball ." for i in range(4000)]})
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("UF_DATA_DIR", str(tmp_path / "empty"))      # the data directory holds none of the files
    monkeypatch.setenv("UF_HUB_MIRROR", str(root))
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(hub, "HUB_STANDINS", _scaled(1e-3))
    return root


def _cfg(tmp_path, seed=0):
    return get_config("smoke", {"data.cache_dir": str(tmp_path / "cache"), "data.seed": str(seed)})


def test_tinystories_comes_from_the_hub_when_the_data_directory_lacks_it(hub_mirror, tmp_path):
    from universal_features.data import build_domain, manifest_rows
    from universal_features.data import read_source
    docs, info = read_source("datadir:tinystories/stories.jsonl", _cfg(tmp_path))
    budget = hub.HUB_STANDINS["tinystories/stories.jsonl"].sizes
    for split in ("train", "validation"):
        n = sum(len(d.text.encode()) for d in docs if d.split == split)
        assert 0.9 * budget[split][1] < n <= budget[split][1], split  # whole stories up to the size of the offline file
    assert all(d.text.startswith("One day") == (d.split == "validation") for d in docs)  # the HF split is kept
    assert (info.spec, info.kind, info.name, info.role) == ("datadir:tinystories/stories.jsonl", "hf", "roneneldan/TinyStories",
                                                            "subset of paper corpus")
    assert info.version.startswith("mirror-sha256:") and len(info.sha256) == 64 and str(hub_mirror) in info.location
    again, info2 = read_source("datadir:tinystories/stories.jsonl", _cfg(tmp_path))
    assert [d.text for d in again] == [d.text for d in docs] and info2 == info                     # same seed, same sample
    other, _ = read_source("datadir:tinystories/stories.jsonl", _cfg(tmp_path, seed=1))
    assert [d.text for d in other] != [d.text for d in docs]
    corpus = build_domain("tinystories", _cfg(tmp_path))
    assert corpus.train and corpus.validation and corpus.role == "subset of paper corpus"
    assert {r["version"] for r in manifest_rows(corpus)} == {info.version}                         # the manifest names it


def test_english_from_the_hub_matches_the_files_in_size_and_never_overlaps(hub_mirror, tmp_path):
    from universal_features.data import read_source
    spans = []
    for rel, st in hub.HUB_STANDINS.items():
        if not rel.startswith("babylm/"): continue
        docs, info = read_source(f"datadir:{rel}", _cfg(tmp_path))
        (n_docs, n_bytes), = st.sizes.values()
        assert len(docs) == n_docs and all(d.split is None for d in docs), rel
        assert all(0.8 * n_bytes / n_docs < len(d.text) <= n_bytes / n_docs for d in docs), rel  # as long as its documents
        assert info.name == "nilq/babylm-100M" and info.version.startswith("mirror-sha256:")
        spans += [tuple(map(int, d.source.rsplit("#", 1)[1].split("-"))) for d in docs]
    spans.sort()
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "two files share rows of the Hub corpus"
    assert len({d.text for d in docs}) == len(docs)


def test_no_data_directory_and_no_hub_is_one_error_naming_both_ways(tmp_path, monkeypatch):
    from universal_features.data import read_source
    monkeypatch.delenv("UF_HUB_MIRROR", raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    cfg = get_config("smoke", {"data.cache_dir": str(tmp_path / "cache")})
    for ddir, why in ((None, "no data directory is set"), (tmp_path, f"the data directory {tmp_path.resolve()} has no"),
                      (tmp_path / "gone", "does not exist")):
        if ddir is None: monkeypatch.delenv("UF_DATA_DIR", raising=False)
        else: monkeypatch.setenv("UF_DATA_DIR", str(ddir))
        with pytest.raises(DataError) as e:
            read_source("datadir:babylm/childes.jsonl", cfg)
        msg = str(e.value)
        assert why in msg and "HF Hub is unreachable" in msg
        assert "UF_DATA_DIR" in msg and "tinystories/stories.jsonl and babylm/*.jsonl" in msg and "scripts/fetch_data.py" in msg
        assert "make the HF Hub (huggingface.co) reachable" in msg and "nilq/babylm-100M" in msg
    monkeypatch.setenv("UF_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="missing data file"):   # a file that has no Hub stand-in: the old error
        read_source("datadir:notes.jsonl", cfg)


def test_a_broken_hub_read_is_a_data_error(hub_mirror, tmp_path, monkeypatch):
    from universal_features.data import read_source
    def down(*a, **k): raise ConnectionError("connection reset")
    monkeypatch.setattr(hub, "load_hub_rows", down)
    with pytest.raises(DataError, match=r"reading roneneldan/TinyStories from the HF Hub failed \(ConnectionError"):
        read_source("datadir:tinystories/stories.jsonl", _cfg(tmp_path))


def test_hub_mirror_revision_names_the_downloaded_commit(hub_mirror, tmp_path):
    ds, rev = hub.load_hub_rows("nilq/babylm-100M", "train", cache=tmp_path / "cache")
    assert len(ds) == 4000 and rev.startswith("mirror-sha256:")
    meta = hub_mirror / "nilq/babylm-100M/.cache/huggingface/download/data/train-00000-of-00001.parquet.metadata"
    meta.parent.mkdir(parents=True); meta.write_text("a86a3e6" + "0" * 33 + "\netag\n1700000000\n")  # as `hf download` leaves it
    _, rev2 = hub.load_hub_rows("nilq/babylm-100M", "train", cache=tmp_path / "cache")
    assert rev2 == f"a86a3e6{'0' * 33} ({rev})"
    with pytest.raises(DataError, match="holds no test-\\*.parquet"):
        hub.load_hub_rows("nilq/babylm-100M", "test", cache=tmp_path / "cache")


def test_sample_rows_fills_a_byte_budget_with_whole_documents():
    rows = [{"text": "x" * (20 + i % 50)} for i in range(500)]
    idx = hub.sample_rows(rows, "text", 2_000, "0:t")
    assert idx == sorted(idx) and 1_900 < sum(len(rows[i]["text"]) for i in idx) <= 2_000
    assert hub.sample_rows(rows, "text", 2_000, "0:t") == idx != hub.sample_rows(rows, "text", 2_000, "1:t")
    assert hub.sample_rows(rows[:3], "text", 10**6, "0:t") == [0, 1, 2]   # a budget larger than the corpus: all of it


def _fetch_data():
    spec = importlib.util.spec_from_file_location("fetch_data", REPO / "scripts" / "fetch_data.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def test_fetch_data_writes_the_offline_schema_and_the_stage_reads_it_offline(hub_mirror, tmp_path, monkeypatch, capsys):
    from universal_features.data import read_source
    fetch = _fetch_data()
    live = {rel: read_source(f"datadir:{rel}", _cfg(tmp_path)) for rel in hub.HUB_STANDINS}  # straight from the "Hub"
    out = tmp_path / "fetched"
    assert fetch.main([str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert f"export UF_DATA_DIR={out.resolve()}" in capsys.readouterr().out
    prov = json.loads((out / "hub_provenance.json").read_text())
    assert set(prov) == set(hub.HUB_STANDINS) and (out / "MANIFEST.md").is_file()
    for rel, st in hub.HUB_STANDINS.items():
        recs = [json.loads(line) for line in (out / rel).read_text(encoding="utf-8").splitlines()]
        extra = "hf_split" if rel.startswith("tinystories/") else "component"
        assert all(set(r) == {"text", "source", extra} for r in recs), rel
        assert sum(len(r["text"].encode()) for r in recs) <= sum(b for _, b in st.sizes.values())
        if extra == "component": assert {r["component"] for r in recs} == {Path(rel).stem}
        else: assert {r["hf_split"] for r in recs} == {"train", "validation"}
        assert prov[rel]["revision"] == live[rel][1].version and recs[0]["source"].endswith("@" + prov[rel]["revision"])
    # offline afterwards: no Hub, no copy of it; the data directory gives the same documents, named with their commit
    monkeypatch.delenv("UF_HUB_MIRROR"); monkeypatch.setenv("UF_DATA_DIR", str(out))
    for rel, (docs, info) in live.items():
        got, ginfo = read_source(f"datadir:{rel}", _cfg(tmp_path))
        assert [(d.text, d.split) for d in got] == [(d.text, d.split) for d in docs], rel
        assert (ginfo.kind, ginfo.name, ginfo.version, ginfo.role) == ("datadir", info.name, info.version, "subset of paper corpus")


def test_fetch_data_without_the_hub_is_one_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("UF_HUB_MIRROR", raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    assert _fetch_data().main([str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fetch_data: the HF Hub (huggingface.co) is unreachable") and "UF_DATA_DIR" in err
    assert not (tmp_path / "out").exists()
