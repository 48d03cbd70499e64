#!/usr/bin/env python
"""The Markdown report of a `gpu` profile run made by scripts/gpu_check.sh (paper/gpu_run.md).

    python scripts/gpu_report.py --run-dir runs/gpu --logs runs/gpu/gpu_check --out paper/gpu_run.md [--publish]

Per stage: wall time (from the runner's stage records) and peak GPU memory in use (from the nvidia-smi samples taken
during that stage's window). Then the headline numbers of the run beside the paper's: the LM evaluation table, the
SLERP crossing t*, the SAE metrics and the persistence shares beside the seed-control null; and the benchmarks'
ratios. Stages that did not finish within the budget are listed as such. --publish copies the run's tables and
figures to paper/gpu/ and figures/gpu/.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from universal_features.config import PAPER_TOKENIZER  # noqa: E402
from universal_features.files import Table, atomic_write_text  # noqa: E402
from universal_features.lineage import NULL_PAIRS, TRANSITIONS, display_name  # noqa: E402
from universal_features.train import PAPER_LM  # noqa: E402

from universal_features.reproduce import discover_stages  # noqa: E402

STAGES = tuple(sn.stage.name for sn in discover_stages())   # every stage, in the order the runner runs them


def memory_samples(log: Path) -> list[tuple[float, float]]:
    "(unix time, MiB in use) from the sampler's log."
    out = []
    if log.is_file():
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].replace(".", "", 1).isdigit(): out.append((float(parts[0]), float(parts[1])))
    return out


def stage_rows(run_dir: Path, samples: list[tuple[float, float]]) -> list[dict]:
    "Wall time and peak GPU memory of every stage that ran (or a note for those that did not)."
    rows = []
    for name in STAGES:
        m = run_dir / ".stages" / f"{name}.json"
        if not m.is_file():
            rows.append({"stage": name, "seconds": "–", "peak GPU memory": "–", "note": "did not finish within the budget"}); continue
        rec = json.loads(m.read_text())
        inside = [mib for t, mib in samples if rec.get("started", 0) <= t <= rec.get("finished", 0)]
        on_gpu = bool(inside)
        rows.append({"stage": name, "seconds": f"{rec['seconds']:.0f}",
                     "peak GPU memory": f"{max(inside) / 1024:.1f} GiB" if on_gpu else "–",
                     "note": "" if on_gpu else "run before this check (carried run directory)" if name == "data" else ""})
    return rows


def pipeline_seconds(run_dir: Path) -> tuple[float, float] | None:
    """(sum of the stage times, wall time from the first stage's start to the last one's end), tokenizer to report; None
    if the report stage has not finished. The two agree when every stage ran in one go."""
    recs = [json.loads((run_dir / ".stages" / f"{n}.json").read_text()) for n in STAGES[1:] if (run_dir / ".stages" / f"{n}.json").is_file()]
    if not (run_dir / ".stages" / "report.json").is_file() or not recs: return None
    return sum(r["seconds"] for r in recs), max(r.get("finished", 0) for r in recs) - min(r.get("started", 0) for r in recs)


def timing_line(run_dir: Path, budget_s: int | None, elapsed_s: int | None) -> str:
    "One sentence: the profile's time from tokenizer to report, and the whole check against its budget."
    t = pipeline_seconds(run_dir)
    out = (f"The profile from the tokenizer stage to the report: **{t[1]:.0f} s ({t[1] / 60:.1f} min) of wall time**, "
           f"{t[0]:.0f} s in the stages themselves (the rest: starting kernels, checking caches)" if t is not None
           else "The profile did not reach its report stage within the budget")
    if elapsed_s is not None: out += f"; the whole check (pipeline, CUDA tests, benchmarks, report) took {elapsed_s} s"
    if budget_s is not None: out += f" of a {budget_s} s budget"
    return out + "."


def lm_rows(res: dict) -> list[dict]:
    "Loss / accuracy of each model on its own last domain, beside the paper's (their data and tokenizer)."
    own = {"base": "python", "lua": "lua", "tinystories": "tinystories"}
    ev = {(r["model"], r["domain"]): r for r in res.get("train", {}).get("eval", [])}
    out = []
    for m, d in own.items():
        if (m, d) not in ev: continue
        r, bg = ev[(m, d)], ev.get(("bigram", d))
        out.append({"model": display_name(m), "domain": d, "ours": f"{r['loss']:.3f} / {r['accuracy']:.3f}",
                    "bigram": f"{bg['loss']:.3f} / {bg['accuracy']:.3f}" if bg else "–",
                    "paper": f"{PAPER_LM[m][0]:.2f} / {PAPER_LM[m][1]:.3f}"})
    return out


def persistence_rows(res: dict) -> list[dict]:
    mt = res.get("matching", {})
    rows = {(t["parent"], t["child"]): t for t in mt.get("transitions", []) if t["method"] == "max_corr"}
    ci = mt.get("confidence_intervals", {})
    out = []
    for p, c in TRANSITIONS + NULL_PAIRS:
        if (p, c) not in rows: continue
        t, lohi = rows[(p, c)], ci.get(f"{p}->{c}:persist")
        out.append({"transition": f"{display_name(p)} → {display_name(c)}", "kind": "seed null" if (p, c) in NULL_PAIRS else "transition",
                    "persist / alive": f"{t['persist']} / {t['alive_parent']}",
                    "share": f"{t['persist_share_alive']:.1%}" + (f" [{lohi[0]:.1%}, {lohi[1]:.1%}]" if lohi else "")})
    return out


def sae_rows(res: dict) -> list[dict]:
    return [{"SAE": n, "d_sae": f"{r['d_sae']:,}", "L0": f"{r['l0']:.1f}", "expl. var.": f"{r['explained_variance']:.3f}",
             "CE loss rec.": f"{r['ce_loss_recovered']:.1%}", "dead": f"{r['dead_fraction']:.1%}",
             "tokens": f"{r['train_tokens']:,}"} for n, r in res.get("sae", {}).items()]


def matching_phases(run_dir: Path, logs: Path) -> str:
    "The stage's own phase timings (matching/phase_seconds.json) and the profiling benchmark's summary lines."
    f = run_dir / "matching" / "phase_seconds.json"
    out = []
    if f.is_file():
        sec = json.loads(f.read_text())
        out.append("- in the pipeline: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(sec.items(), key=lambda kv: -kv[1])))
    out += [f"- `benchmarks/matching_stage.py`: {l}" for l in grep(logs / "bench_matching.log", r"^(match_pairs|phases|\w+ run:)")]
    return "\n".join(out) or "not measured"


def grep(path: Path, pattern: str) -> list[str]:
    return [l.strip() for l in path.read_text(errors="replace").splitlines() if re.search(pattern, l)] if path.is_file() else []


def report(run_dir: Path, logs: Path, budget_s: int | None = None, elapsed_s: int | None = None) -> str:
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU visible to the report"
    res = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").is_file() else {}
    samples = memory_samples(logs / "gpu_memory.log")
    mg = res.get("merge", {})
    cfg = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
    profile, sae_precision = cfg.get("profile", "gpu"), cfg.get("sae", {}).get("precision", "fp32")
    tok = res.get("tokenizer", {})
    vocab, papers_tokens = tok.get("vocab_size"), tok.get("pretrained", "").partition("@")[0] == PAPER_TOKENIZER
    parts = [
        f"# The `{profile}` profile on one GPU",
        f"Generated by `scripts/gpu_check.sh` on {datetime.date.today().isoformat()}: {gpu}, PyTorch {torch.__version__}, "
        f"Python {platform.python_version()}. Corpora: the offline stand-ins (see `paper/data_manifest.md`); the data stage "
        "ran on a CPU machine with the internet and its run directory was copied over. Everything else ran on the GPU.",
        "## Stages", timing_line(run_dir, budget_s, elapsed_s),
        Table(stage_rows(run_dir, samples), ["stage", "seconds", "peak GPU memory", "note"]).markdown(),
        "Peak GPU memory: the most memory in use on the device (nvidia-smi, sampled every 0.5 s) while the stage ran.",
        "## Language models (own domain: loss / next-token accuracy)",
        Table(lm_rows(res), ["model", "domain", "ours", "bigram", "paper"]).markdown() if lm_rows(res) else "not reached",
        "The paper's numbers are for its own data and Mistral-7B-v0.1's tokenizer; ours for the offline stand-ins and "
        + (f"the same tokenizer (`{tok.get('source', 'HF Hub')}`): the losses are in the paper's units." if papers_tokens else
           f"a {vocab:,}-token BPE of our own: the losses are not in the paper's units." if vocab else "a BPE of our own."),
        "## Merge",
        (f"SLERP accuracy curves cross at **t\\* = {mg['t_star_accuracy']:.3f}** (the authors' sweep: 0.570)"
         if mg.get("t_star_accuracy") is not None else "not reached" if not mg else "the SLERP accuracy curves do not cross"),
        "## SAEs", f"Training precision `sae.precision = {sae_precision}` (auto: bfloat16 products, float32 weights and loss on a GPU).",
        Table(sae_rows(res), ["SAE", "d_sae", "L0", "expl. var.", "CE loss rec.", "dead", "tokens"]).markdown() if sae_rows(res) else "not reached",
        "## Persistence beside the seed-control null (max correlation, τ = 0.8, 95 % block-bootstrap intervals)",
        Table(persistence_rows(res), ["transition", "kind", "persist / alive", "share"]).markdown() if persistence_rows(res) else "not reached",
        "## Where the matching stage's time goes",
        matching_phases(run_dir, logs),
        "## Benchmarks (same process, alternating)",
        "\n".join(f"- {l}" for l in grep(logs / "bench_sae.log", r"^\[|ratio|activations/s") + grep(logs / "bench_correlation.log", r"ratio|×") +
                  grep(logs / "bench_lm.log", r"ratio|tokens/s") + grep(logs / "bench_assignment.log", r"latents\]")) or "not run",
        "## CUDA tests", "\n".join(grep(logs / "cuda_tests.log", r"passed|failed|error|skipped")) or "not run",
    ]
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, default=REPO / "runs" / "gpu")
    ap.add_argument("--logs", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "paper" / "gpu_run.md")
    ap.add_argument("--budget-s", type=int, default=None, help="the check's wall-clock budget, for the report")
    ap.add_argument("--elapsed-s", type=int, default=None, help="how long the check ran before the report")
    ap.add_argument("--publish", action="store_true", help="copy the run's tables and figures to paper/gpu/ and figures/gpu/")
    a = ap.parse_args(argv)
    logs = a.logs or a.run_dir / "gpu_check"
    atomic_write_text(a.out, report(a.run_dir, logs, a.budget_s, a.elapsed_s))
    if a.publish:
        for src, dst in ((a.run_dir / "tables", REPO / "paper" / "gpu"), (a.run_dir / "figures", REPO / "figures" / "gpu")):
            if src.is_dir():
                dst.mkdir(parents=True, exist_ok=True)
                for f in src.iterdir():
                    if f.is_file(): shutil.copyfile(f, dst / f.name)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
