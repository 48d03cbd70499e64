"""The paper's corpora from the HF Hub, read only as far as a profile's caps need (issue 27.5).

The Hub is never contacted. A local copy in the Hub's layout (`$UF_HUB_MIRROR/<owner>/<name>/data/<split>-0000k-of-0000n.parquet`,
several shards of several row groups, as `push_to_hub` writes the paper's datasets) is read through the same code as the
Hub; for the Hub's own branch, `huggingface_hub`'s `HfApi` and `HfFileSystem` are replaced by stand-ins that serve that copy
under the Hub's paths, so the test sees which repository paths, revision and files the online read asks for."""
import random
import re
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from universal_features import hub
from universal_features.config import DomainConfig
from universal_features.profiles import get_config
from universal_features.sources import DataError

ENGLISH, LUA = "nilq/babylm-100M", "nilq/small-lua-stack"
GROUP_ROWS, GROUPS, SHARDS = 200, 8, 4   # rows of ~965 bytes: a row group holds ~193 kB of text


def _lines(n, seed, width=1000):
    "Lines that do not compress (hex of a seeded stream), so that bytes read track the text read."
    rng = random.Random(seed)
    return [f"{i} {rng.getrandbits(4 * width):0{width}x}" for i in range(n)]


def _write(root, repo_id, split, texts, shards, column="text"):
    folder = root / repo_id / "data"; folder.mkdir(parents=True, exist_ok=True)
    per = -(-len(texts) // shards)
    for k in range(shards):
        pq.write_table(pa.table({column: texts[k * per:(k + 1) * per]}),
                       folder / f"{split}-{k:05d}-of-{shards:05d}-{k:x}3c9e.parquet", row_group_size=GROUP_ROWS)


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    "BabyLM-like train (4 shards x 8 row groups of 200 lines, 6.2 MB) and validation; a Lua stack with a train split only."
    root = tmp_path / "hub"
    _write(root, ENGLISH, "train", _lines(SHARDS * GROUPS * GROUP_ROWS, "train"), SHARDS)
    _write(root, ENGLISH, "validation", _lines(2 * GROUP_ROWS, "val"), 1)
    _write(root, LUA, "train", [f"local x{i} = {i}\nreturn x{i} + {i % 7}\n" for i in range(1000)], 2, column="content")
    monkeypatch.setenv("UF_HUB_MIRROR", str(root))
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    return root


def _cfg(seed=0, *over):
    return get_config("smoke", [f"data.seed={seed}", "data.hub=require", *over])


def _train_table(root, repo_id="nilq/babylm-100M", split="train", column="text"):
    files = sorted((root / repo_id / "data").glob(f"{split}-*.parquet"))
    return [t for f in files for t in pq.read_table(f, columns=[column]).column(0).to_pylist()]


def test_a_capped_read_reads_only_the_row_groups_its_budget_needs(mirror):
    full_hp = hub.hub_parquet(ENGLISH)
    full = hub.read_rows(full_hp, "train", "text", None, "0:e")
    rows = _train_table(mirror)
    assert sorted(full) == list(enumerate(rows))                          # the full read: every row of the split, once
    budget = 300_000
    hp = hub.hub_parquet(ENGLISH)
    capped = hub.read_rows(hp, "train", "text", budget, "0:e")
    assert capped == full[:len(capped)]                                   # the first rows of the full read
    got = [len(t.encode()) for _, t in capped]
    assert sum(got) >= budget > sum(got[:-1])                             # it stops at the row that meets the budget
    # row groups: the ones holding the returned rows and no other, and one fewer would not meet the budget
    groups = {(i // GROUP_ROWS) for i, _ in capped}
    assert hp.counts["row_groups"] == len(groups) == 2
    first_groups = [g for g in full_hp.row_groups("train") if g[2] // GROUP_ROWS in groups]
    # bytes: the footers of the split's files and the column chunks of those row groups, nothing else
    meta = {p: pq.ParquetFile(mirror / ENGLISH / p).metadata for p in hub.split_files(hp.paths, "train")}
    chunks = sum(meta[p].row_group(j).column(0).total_compressed_size for p, j, _, _ in first_groups)
    footers = sum(min(65536, (mirror / ENGLISH / p).stat().st_size) for p in meta)
    total = sum(f.stat().st_size for f in (mirror / ENGLISH / "data").glob("train-*.parquet"))
    assert hp.counts["files"] == SHARDS                                   # each train file's footer, no validation file
    assert chunks <= hp.counts["bytes"] <= chunks + footers
    assert hp.counts["bytes"] < 0.12 * total, (hp.counts, total)
    assert full_hp.counts["row_groups"] == SHARDS * GROUPS and full_hp.counts["bytes"] >= 0.9 * total


def test_the_order_is_seeded_and_spans_the_split(mirror):
    a = hub.read_rows(hub.hub_parquet(ENGLISH), "train", "text", 300_000, "0:e")
    assert a == hub.read_rows(hub.hub_parquet(ENGLISH), "train", "text", 300_000, "0:e")   # same seed, same rows
    b = hub.read_rows(hub.hub_parquet(ENGLISH), "train", "text", 300_000, "1:e")
    assert [i for i, _ in a] != [i for i, _ in b]
    firsts = {i // GROUP_ROWS for s in range(20) for i, _ in hub.read_rows(hub.hub_parquet(ENGLISH), "train", "text", 1, f"{s}:e")}
    assert len(firsts) > 8                                                # not the first row group every time


def test_read_hub_caps_both_splits_and_keeps_the_full_reads_order(mirror, capsys, monkeypatch):
    cfg = _cfg()
    dc = DomainConfig(hub_id=ENGLISH, max_train_mb=0.2, validation_fraction=0.1)
    made, make = [], hub.hub_parquet
    monkeypatch.setattr(hub, "hub_parquet", lambda *a, **k: made.append(make(*a, **k)) or made[-1])
    docs, info = hub.read_hub(dc, cfg)
    whole, whole_info = hub.read_hub(DomainConfig(hub_id=ENGLISH), cfg)
    for split, cap in (("train", 0.2e6), ("validation", 0.2e6 / 9)):
        mine = [d for d in docs if d.split == split]
        assert [d.text for d in mine] == [d.text for d in whole if d.split == split][:len(mine)], split
        n = [len(d.text.encode()) for d in mine]
        assert sum(n) >= cap * hub.HUB_READ_MARGIN > sum(n[:-1]), split
        assert all(d.source.startswith(f"hf:{ENGLISH}:{split}#") for d in mine)
    assert len(whole) == (SHARDS * GROUPS + 2) * GROUP_ROWS
    assert made[0].counts["row_groups"] == 2 + 1                       # 300 kB of train, 33 kB of validation
    assert made[1].counts["row_groups"] == SHARDS * GROUPS + 2
    assert "3 of 34 row groups" in info.location and "34 of 34 row groups" in whole_info.location
    assert info.version == whole_info.version and info.version.startswith("mirror-footers-sha256:")
    assert info.sha256 != whole_info.sha256
    assert info.role == "paper corpus"
    assert "less than the cap" not in capsys.readouterr().out
    again, _ = hub.read_hub(dc, cfg)
    assert [d.text for d in again] == [d.text for d in docs]
    other, _ = hub.read_hub(dc, _cfg(seed=1))
    assert [d.text for d in other] != [d.text for d in docs]


def test_a_dataset_without_validation_gives_its_first_fifth(mirror):
    docs, _ = hub.read_hub(DomainConfig(hub_id=LUA, hub_text_column="content"), _cfg())
    rows = {d.source: d.split for d in docs}
    assert len(rows) == 1000
    assert all(s.startswith(f"hf:{LUA}:train#") for s in rows)
    assert {int(s.rsplit("#", 1)[1]) for s, sp in rows.items() if sp == "validation"} == set(range(200))
    capped, _ = hub.read_hub(DomainConfig(hub_id=LUA, hub_text_column="content", max_train_mb=0.004), _cfg())
    assert {d.split for d in capped} == {"train", "validation"}
    assert all((int(d.source.rsplit("#", 1)[1]) < 200) == (d.split == "validation") for d in capped)


def test_a_cap_beyond_the_dataset_reads_all_of_it_and_says_so(mirror, capsys):
    docs, _ = hub.read_hub(DomainConfig(hub_id=LUA, hub_text_column="content", max_train_mb=100.0), _cfg())
    assert len(docs) == 1000
    out = capsys.readouterr().out
    assert re.search(rf"{LUA}: its train split holds 0\.0\d MB of text, less than the cap of 100 MB: all of it is used", out)


def test_bad_input_is_one_clear_error(mirror, tmp_path, monkeypatch):
    with pytest.raises(DataError, match="has no column 'content'.*hub_text_column"):
        hub.read_hub(DomainConfig(hub_id=ENGLISH, hub_text_column="content", max_train_mb=0.1), _cfg())
    (mirror / "nilq/empty/data").mkdir(parents=True)
    pq.write_table(pa.table({"text": ["a"]}), mirror / "nilq/empty/data/test-00000-of-00001.parquet")
    with pytest.raises(DataError, match=r"nilq/empty: .* has no train split .*hf download nilq/empty --repo-type dataset"):
        hub.read_hub(DomainConfig(hub_id="nilq/empty"), _cfg())


def test_use_hub_takes_a_local_copy_that_holds_the_dataset(mirror, monkeypatch):
    cfg = _cfg()
    assert hub.use_hub(DomainConfig(hub_id=ENGLISH), cfg) is True
    auto = get_config("smoke", ["data.hub=auto"])
    assert hub.use_hub(DomainConfig(hub_id="nilq/small-python-stack"), auto) is False   # not in the copy, no Hub
    with pytest.raises(DataError, match="unreachable.*nilq/small-python-stack.*UF_HUB_MIRROR"):
        hub.use_hub(DomainConfig(hub_id="nilq/small-python-stack"), cfg)


def test_build_domain_from_a_local_copy(mirror):
    from universal_features.data import build_domain
    cfg = _cfg(0, "data.lua.max_train_mb=0.01")
    corpus = build_domain("lua", cfg)
    n = sum(len(d.text.encode()) for d in corpus.train)
    assert 0.95e4 <= n <= 1e4
    assert corpus.validation and corpus.role == "paper corpus"
    assert all(int(d.source.rsplit("#", 1)[1]) < 200 for d in corpus.validation)


def test_build_domain_warns_when_the_filters_leave_less_than_the_cap(mirror):
    from universal_features.data import build_domain
    texts = [f"local y{i} = {i}\n" if i % 5 == 0 else "return 1\n" for i in range(1000)]   # four in five rows: one duplicate
    _write(mirror, LUA, "train", texts, 2, column="content")
    with pytest.warns(UserWarning, match="domain lua: .* under its cap of 0.005 MB.*HUB_READ_MARGIN"):
        build_domain("lua", _cfg(0, "data.lua.max_train_mb=0.005"))


class _FakeHub:
    "HfApi and HfFileSystem over the local copy: `main` holds no Parquet file, the Parquet conversion does."
    def __init__(self, root, calls):
        self.root, self.calls = root, calls

    def api(self):
        root, calls = self.root, self.calls
        class Api:
            def dataset_info(self, repo_id, revision=None, timeout=None):
                calls.append(("info", repo_id, revision))
                files = [] if revision == "main" else [f"default/train/{p.name[6:11]}.parquet"
                                                       for p in sorted((root / repo_id / "data").glob("train-*.parquet"))]
                return SimpleNamespace(sha="c0ffee" * 6 + "abcd", siblings=[SimpleNamespace(rfilename=f) for f in ["README.md", *files]])
        return Api

    def fs(self):
        root, calls = self.root, self.calls
        class Fs:
            def open(self, path, mode="rb", cache_type=None):
                calls.append(("open", path, cache_type))
                repo_at, rel = path.removeprefix("datasets/").split("/default/train/")
                repo_id, sha = repo_at.rsplit("@", 1)
                assert sha == "c0ffee" * 6 + "abcd" and mode == "rb"
                k = int(rel.removesuffix(".parquet"))
                return open(next((root / repo_id / "data").glob(f"train-{k:05d}-*.parquet")), "rb")
        return Fs


def test_the_online_read_asks_the_hub_for_byte_ranges_of_its_parquet_files(mirror, monkeypatch):
    import huggingface_hub
    calls = []
    fake = _FakeHub(mirror, calls)
    monkeypatch.setattr(huggingface_hub, "HfApi", fake.api())
    monkeypatch.setattr(huggingface_hub, "HfFileSystem", fake.fs())
    local = hub.read_rows(hub.hub_parquet(LUA), "train", "content", 5_000, "0:l")
    monkeypatch.delenv("UF_HUB_MIRROR")
    hp = hub.hub_parquet(LUA)
    assert [c for c in calls if c[0] == "info"] == [("info", LUA, "main"), ("info", LUA, "refs/convert/parquet")]
    assert hp.revision == hp.version() == "c0ffee" * 6 + "abcd"
    assert hp.where == f"https://huggingface.co/datasets/{LUA}"
    assert hub.read_rows(hp, "train", "content", 5_000, "0:l") == local
    opened = [c for c in calls if c[0] == "open"]
    assert opened == [("open", f"datasets/{LUA}@{'c0ffee' * 6}abcd/default/train/{k:05d}.parquet", "none") for k in range(2)]


def test_an_uncapped_online_read_downloads_whole_files_into_the_cache(mirror, monkeypatch, tmp_path):
    import huggingface_hub
    calls = []
    fake = _FakeHub(mirror, calls)
    def download(repo_id, filename, repo_type=None, revision=None, cache_dir=None):
        calls.append(("download", repo_id, filename, repo_type, revision, cache_dir))
        with fake.fs()().open(f"datasets/{repo_id}@{revision}/{filename}") as f: return f.name
    monkeypatch.setattr(huggingface_hub, "HfApi", fake.api())
    monkeypatch.setattr(huggingface_hub, "HfFileSystem", fake.fs())
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    local, _ = hub.read_hub(DomainConfig(hub_id=LUA, hub_text_column="content"), _cfg())
    monkeypatch.delenv("UF_HUB_MIRROR")
    cfg = _cfg(0, f"data.cache_dir={tmp_path / 'cache'}")
    docs, info = hub.read_hub(DomainConfig(hub_id=LUA, hub_text_column="content"), cfg)
    assert [(d.text, d.source, d.split) for d in docs] == [(d.text, d.source, d.split) for d in local]
    assert [c[2:] for c in calls if c[0] == "download"] == [
        (f"default/train/{k:05d}.parquet", "dataset", "c0ffee" * 6 + "abcd", tmp_path / "cache" / "hf") for k in range(2)]
    assert info.version == "c0ffee" * 6 + "abcd"


def test_a_failing_hub_is_a_data_error(mirror, monkeypatch):
    import huggingface_hub
    class Down:
        def dataset_info(self, *a, **k): raise ConnectionError("connection reset")
    monkeypatch.setattr(huggingface_hub, "HfApi", Down)
    monkeypatch.delenv("UF_HUB_MIRROR")
    with pytest.raises(DataError, match=r"reading nilq/babylm-100M from the HF Hub failed \(ConnectionError.*UF_HUB_MIRROR"):
        hub.read_hub(DomainConfig(hub_id=ENGLISH), _cfg())
