"""Where the matching stage's time goes: `match_pairs` on a finished run's models and SAEs, under cProfile.

    python benchmarks/matching_stage.py --run-dir runs/gpu [--blocks-per-domain 500] [--top 25]

It reads the run's config, models and SAEs as the stage does (all transitions and seed-null pairs, the sparse stores
of the four models), on a smaller evaluation sample if asked (costs that grow with the tokens shrink with it; the
per-pair summaries and the assignment do not), and prints the stage's own phase timings (`PhaseTimer`, synchronised
on a GPU) and the functions with the most time of their own. Nothing in the run directory is written.
"""
import argparse
import cProfile
import io
import pstats
import time
from pathlib import Path

from universal_features.lineage import DOMAINS, MODELS, TRANSITIONS, null_pairs, sae_runs
from universal_features.loaders import load_run_blocks, load_unit
from universal_features.matching import evaluation_blocks, match_pairs
from universal_features.config import load_config
from universal_features.run import Run, default_device


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, required=True)
    ap.add_argument("--blocks-per-domain", type=int, default=0, help="0: the profile's matching.n_eval_blocks")
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    config = (a.run_dir / "config.json")
    if not config.is_file(): raise SystemExit(f"{a.run_dir} has no config.json: give the run directory of a finished matching stage")
    run = Run(a.run_dir.resolve(), load_config(config))
    cfg, mc, device, profile = run.config, run.config.matching, default_device(), run.config.profile
    units = {n: load_unit(run, n, device) for n, _, _ in sae_runs(cfg.sae.null_seeds)}
    per_domain = a.blocks_per_domain or mc.n_eval_blocks
    blocks, _ = evaluation_blocks({d: load_run_blocks(run, d, "validation", "sae") for d in DOMAINS}, per_domain, mc.seed)
    pairs, chunk_blocks = TRANSITIONS + null_pairs(cfg.sae.null_seeds), max(1, mc.chunk_tokens // cfg.sae.block_size)
    print(f"{profile} run: {len(pairs)} pairs, {blocks.size:,} tokens ({per_domain} blocks per domain), {device}")
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    res = match_pairs(pairs, units, blocks, cfg.sae.hook_name, chunk_blocks, mc.memory_gb * 1e9, mc.top_k, device, store=MODELS)
    prof.disable()
    print(f"match_pairs: {time.perf_counter() - t:.1f} s")
    print("phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(res["seconds"].items(), key=lambda kv: -kv[1])))
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(a.top)
    print("\n".join(l for l in out.getvalue().splitlines() if l.strip())[:6000])


if __name__ == "__main__":
    main()
