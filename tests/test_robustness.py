"""The calibrated-persistence stage: normalisation, intervals, the verdict rule, and the study on the smoke run."""
import json

import numpy as np
import pytest
import torch

from universal_features import robustness as rb
from universal_features.lineage import EDGES, TRANSITIONS, null_pairs
from universal_features.model import load_model


def test_null_pairs_cover_every_pair_of_seeds():
    pairs = null_pairs(2)
    assert len(pairs) == 6 and len(set(pairs)) == 6
    assert ("base-seed2", "base-seed3") in pairs and ("lua", "lua-seed3") in pairs
    assert null_pairs(0) == []


def test_normalised_rows_use_each_parents_own_null():
    alive = np.ones(10, bool)
    scores = {f"alive:{n}": alive for n in ("base", "base-seed2", "lua", "lua-seed2", "tinystories")}
    pers = {"base->lua": 2, "base->tinystories": 3, "lua->luastories": 4, "tinystories->luastories": 5,
            "base->base-seed2": 4, "lua->lua-seed2": 8}
    for k, n in pers.items():
        for m in rb.METHODS: scores[f"{k}:{m}"] = np.r_[np.ones(n), np.zeros(10 - n)]
    rows = rb.normalised_rows(scores, [], EDGES, null_pairs(1), 0.8)
    by = {(r["parent"], r["child"], r["method"]): r for r in rows}
    assert by[("base", "lua", "max_corr")]["normalised"] == pytest.approx(0.5)          # 0.2 / 0.4
    assert by[("lua", "luastories", "hungarian")]["normalised"] == pytest.approx(0.5)   # 0.4 / 0.8
    ts = by[("tinystories", "luastories", "max_corr")]
    assert ts["pooled"] and ts["null_mean"] == pytest.approx(0.6)                       # no TinyStories seeds: pooled
    assert len(rows) == len(EDGES) * len(rb.METHODS)


def test_snapshot_steps_land_on_the_checkpoint_grid():
    steps, unit = rb.snapshot_steps(279, (0, 0.1, 0.25, 0.5, 1))
    assert unit == 13 and steps[1.0] == 279 and all(s % unit == 0 for f, s in steps.items() if f < 1)
    assert steps[0.0] == 0 and abs(steps[0.25] / 279 - 0.25) < 0.05


def test_variant_config_rejects_unknown_variants():
    from universal_features.config import SAEConfig
    with pytest.raises(ValueError, match="topk, width:N or tokens:F"): rb.variant_config(SAEConfig(), "bigger", 10, 100)


def test_robustness_stage_of_the_smoke_run(smoke_run):
    res = json.loads((smoke_run / "results.json").read_text())["robustness"]
    mc = [r for r in res["normalised"] if r["method"] == "max_corr"]
    assert {(r["parent"], r["child"]) for r in mc} == set(TRANSITIONS)
    for r in mc:
        assert r["null_pairs"] == (3 if r["parent"] in ("base", "lua") else 6) and r["interval"] == "paired bootstrap × seed pairs"
        assert r["normalised"] == pytest.approx(r["persist_share"] / r["null_mean"])
        assert r["low"] <= r["high"]
    assert res["verdict"] == rb.few_persist_verdict(res["normalised"], res["bound"])
    taus = {s["tau"] for s in res["sweep"]}
    assert len(res["sweep"]) == len(taus) * len(TRANSITIONS) * len(rb.METHODS)
    assert set(res["verdicts"]) == {rb.FINE_TUNING, rb.MERGING}
    assert res["verdicts"][rb.MERGING] == rb.few_persist_verdict(res["normalised"], res["bound"], rb.MERGING)   # the paper's merge
    assert res["verdict_merge_at_crossing"] == rb.few_persist_verdict(res["normalised"], res["bound"], rb.MERGING, "luastories_crossing")
    for fig in ("fig7_normalised_persistence", "fig8_persistence_vs_distance", "fig9_merge_flow"):
        assert (smoke_run / "figures" / f"{fig}.png").stat().st_size > 1000
    for t in ("robustness_normalised", "robustness_trajectory", "robustness_merge", "robustness_sae_variants", "robustness_evidence"):
        assert (smoke_run / "tables" / f"{t}.md").read_text().startswith("|")
    assert [e["verdict"] for e in res["evidence"]][:2] == [res["verdicts"][rb.FINE_TUNING], res["verdicts"][rb.MERGING]]


def test_fine_tune_snapshots_resume_to_the_run_model(smoke_run):
    "The 100 % snapshot at the run's lr is the run's Lua model bit for bit: the checkpoints are the real trajectory."
    res = json.loads((smoke_run / "results.json").read_text())["robustness"]
    ends = [r for r in res["trajectory"] if r["fraction"] == 1.0]
    lrs = {r["lr"] for r in res["trajectory"]}
    assert len(lrs) == 2 and min(lrs) == 2e-5
    run_lr = max(lrs)
    assert [r["same_weights_as_run_lua"] for r in ends if r["lr"] == run_lr] == [True]
    start = next(r for r in res["trajectory"] if r["fraction"] == 0.0)
    assert start["angle_to_base"] == pytest.approx(0, abs=1e-6)
    angles = [r["angle_to_base"] for r in sorted((r for r in res["trajectory"] if r["lr"] == run_lr), key=lambda r: r["step"])]
    assert angles == sorted(angles)                                   # the fine-tune moves steadily away from the base
    half = load_model(smoke_run / "robustness" / f"lua-lr{run_lr:g}" / "0.50")
    full = load_model(smoke_run / "models" / "lua")
    assert not all(torch.equal(a, b) for a, b in zip(half.state_dict().values(), full.state_dict().values()))
