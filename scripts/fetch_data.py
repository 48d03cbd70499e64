#!/usr/bin/env python
"""Build a data directory (tinystories/ and babylm/) from the HF Hub, so that the pipeline can run offline afterwards.

    python scripts/fetch_data.py DIR [--seed 0]      # on a machine that reaches huggingface.co
    export UF_DATA_DIR=DIR                            # then, on any machine, offline

Each file is a seeded sample of the paper's corpus with the size of this project's offline file (shared/data/
MANIFEST.md; the sizes are `universal_features.hub.HUB_STANDINS`):

    tinystories/stories.jsonl      stories of roneneldan/TinyStories, per HF split (5,165 train, 1,016 validation)
    babylm/<component>.jsonl       runs of lines of nilq/babylm-100M, as many and as long as the component's documents

The samples are exactly those the data stage reads itself when the data directory is missing and the Hub answers,
so a run from DIR builds the same corpora. The JSONL schema is the offline files': `text` and `source`, plus
`hf_split` (TinyStories) or `component` (BabyLM). `hub_provenance.json` records the dataset, commit and seed of each
file; the manifest of a run names them. The Hub datasets are downloaded once into the cache (UF_CACHE_DIR, default
~/.cache/universal_features/hf); TinyStories is about 1 GB.

With UF_HUB_MIRROR=/folder the datasets are read from a local copy, /folder/<owner>/<name>/data/<split>-*.parquet, e.g.
`hf download roneneldan/TinyStories --repo-type dataset --include "data/*" --local-dir /folder/roneneldan/TinyStories`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from universal_features.config import Config, DataConfig
from universal_features.files import atomic_write_text, sha256_file
from universal_features import hub
from universal_features.sources import HUB_PROVENANCE, DataError, Doc, SourceInfo


def records(rel: str, docs: list[Doc], info: SourceInfo) -> list[dict]:
    "The documents of one file in the data directory's JSONL schema."
    tiny, rev = rel.startswith("tinystories/"), info.version
    out = []
    for d in docs:
        rec = {"text": d.text, "source": f"{d.source}@{rev}"}
        if tiny: rec["hf_split"] = d.split
        else: rec["component"] = Path(rel).stem
        out.append(rec)
    return out


def write_jsonl(path: Path, recs: list[dict]) -> Path:
    "One JSON object per line, UTF-8 (ensure_ascii=False), written atomically."
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
    return path


def manifest_markdown(rows: list[dict]) -> str:
    "MANIFEST.md of a fetched data directory: one row per file."
    lines = ["# Data directory fetched from the HF Hub by scripts/fetch_data.py", "",
             "Each file is a seeded sample of the paper's corpus of the size of the project's offline file.", "",
             "| file | dataset | revision | seed | docs | text bytes | sha256 | licence |",
             "|---|---|---|---:|---:|---:|---|---|"]
    lines += [f"| `{r['file']}` | `{r['repo_id']}` | `{r['revision']}` | {r['seed']} | {r['documents']:,} | "
              f"{r['text_bytes']:,} | `{r['sha256']}` | {r['license']} |" for r in rows]
    return "\n".join(lines) + "\n"


def fetch(out: Path, seed: int = 0, cache: str = "") -> list[dict]:
    "Write the sampled files, hub_provenance.json and MANIFEST.md into `out`."
    if not (os.environ.get("UF_HUB_MIRROR") or hub.hub_reachable()):
        raise DataError("the HF Hub (huggingface.co) is unreachable from this machine: run this script where it is "
                        "reachable (an HTTPS proxy in HTTPS_PROXY works), then copy the folder to the offline machine "
                        "and set UF_DATA_DIR to it; or point UF_HUB_MIRROR at local copies of roneneldan/TinyStories "
                        "and nilq/babylm-100M")
    cfg = Config(data=DataConfig(seed=seed, cache_dir=cache))
    out.mkdir(parents=True, exist_ok=True)
    rows, prov = [], {}
    for rel in hub.HUB_STANDINS:
        docs, info = hub.read_hub_standin(rel, cfg)
        path = write_jsonl(out / rel, records(rel, docs, info))
        prov[rel] = dict(repo_id=info.name, revision=info.version, license=info.license, seed=seed)
        rows.append(dict(file=rel, **prov[rel], documents=len(docs), sha256=sha256_file(path),
                         text_bytes=sum(len(d.text.encode("utf-8")) for d in docs)))
        print(f"{rel}: {len(docs):,} documents, {rows[-1]['text_bytes']:,} bytes from {info.name} @ {info.version}")
    atomic_write_text(out / HUB_PROVENANCE, json.dumps(prov, indent=2, sort_keys=True) + "\n")
    atomic_write_text(out / "MANIFEST.md", manifest_markdown(rows))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="the data directory to write (then: export UF_DATA_DIR=OUT)")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed (the profiles' data.seed is 0)")
    ap.add_argument("--cache-dir", default="", help="where the Hub datasets are cached (default: UF_CACHE_DIR or ~/.cache/universal_features)")
    a = ap.parse_args(argv)
    try:
        fetch(a.out, a.seed, a.cache_dir)
    except DataError as e:
        print(f"fetch_data: {e}", file=sys.stderr)
        return 2
    print(f"done: export UF_DATA_DIR={a.out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
