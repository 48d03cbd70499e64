"The runner end to end on the smoke profile: stages, manifest, caching, errors."
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from universal_features.profiles import get_config
from universal_features import reproduce as reproduce_module
from universal_features.kernels import WarmKernel, ensure_kernel
from universal_features.reproduce import discover_stages, run_pipeline, stage_keys
from conftest import console_script


def reproduce(*args, env=None):
    return subprocess.run([console_script("uf-reproduce"), "--no-progress", *args],
                          capture_output=True, text=True, timeout=900, env=env or os.environ.copy())


@pytest.fixture
def smoke(smoke_run):
    return smoke_run


def test_run_directory_layout(smoke):
    for p in ("config.json", "results.json", "data/manifest.json", "tables/data_manifest.md",
              "tokenizer/tokenizer.json", "tokenizer/mixtures.json", "notebooks/01_data.ipynb", "logs/data.log",
              "models/base/model.safetensors", "models/lua/config.json", "models/tinystories/metrics.jsonl",
              "tables/lm_eval.md", "tables/lm_eval.tex", "figures/lm_training.png", "figures/lm_training.pdf",
              "models/luastories/model.safetensors", "tables/merge_audit.md", "tables/fig5_slerp_sweep.csv",
              "figures/fig5_slerp_sweep.png", "figures/fig5_slerp_sweep.pdf", "tables/lm_eval_with_merge.md"):
        assert (smoke / p).exists(), p
    assert json.loads((smoke / "config.json").read_text())["profile"] == "smoke"


def test_manifest_has_four_domains_with_provenance(smoke):
    m = json.loads((smoke / "data" / "manifest.json").read_text())
    assert set(m["domains"]) == {"english", "python", "lua", "tinystories"}
    assert m["domains"]["tinystories"]["role"] == "subset of paper corpus"
    for d in ("english", "python", "lua"): assert m["domains"][d]["role"] == "stand-in"
    for row in m["rows"]:
        assert len(row["sha256"]) == 64 and row["license"] and row["documents"] > 0 and row["bytes"] > 0
        if row["domain"] in ("python", "lua"): assert row["version"], row
    lua = [r for r in m["rows"] if r["domain"] == "lua"]
    assert all(r["source"].startswith("deb:") for r in lua)
    assert {r["split"] for r in lua} == {"train", "validation"}
    assert not {r["source"] for r in lua if r["split"] == "train"} & {r["source"] for r in lua if r["split"] == "validation"}, \
        "Lua validation is whole packages"


def test_tokens_counted_for_every_domain_and_split(smoke):
    res = json.loads((smoke / "results.json").read_text())
    for d in ("english", "python", "lua", "tinystories"):
        assert res["tokenizer"]["tokens"][d]["train"] > 1000 and res["tokenizer"]["tokens"][d]["validation"] > 100
    table = (smoke / "tables" / "data_manifest.md").read_text()
    assert "stand-in" in table and "subset of paper corpus" in table
    assert all(row.split("|")[9].strip() for row in table.splitlines()[2:]), "every manifest row has a token count"


def test_rerun_skips_current_stages(smoke):
    r = reproduce("--profile", "smoke", "--run-dir", str(smoke))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("unchanged, skipped") == len(discover_stages())


def test_damaged_outputs_of_finished_stages_are_rerun(smoke, tmp_path):
    """A truncated corpus file and a deleted table re-run the stages that wrote them, each with one line saying why; a
    stage whose shared file they rewrote re-runs too; the stages downstream, which get the same bytes back, do not."""
    run_dir = tmp_path / "copy"
    shutil.copytree(smoke, run_dir)
    parquet = run_dir / "data" / "lua" / "validation.parquet"
    size = parquet.stat().st_size
    with open(parquet, "r+b") as f: f.truncate(100)
    (run_dir / "tables" / "sae_metrics.md").unlink()
    r = reproduce("--profile", "smoke", "--run-dir", str(run_dir))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    reruns = [l for l in r.stdout.splitlines() if ": re-run: " in l]
    assert f"[1/11] data: re-run: data/lua/validation.parquet changed size ({size:,} → 100 bytes)" in reruns, reruns
    assert "[5/11] sae: re-run: tables/sae_metrics.md is missing" in reruns, reruns
    ran = [l.split(":")[0] for l in r.stdout.splitlines() if ": running " in l]
    assert len(ran) == len(reruns) and {"[6/11] matching", "[8/11] autointerp"}.isdisjoint(ran), r.stdout
    assert parquet.stat().st_size == size and (run_dir / "tables" / "sae_metrics.md").is_file()
    again = reproduce("--profile", "smoke", "--run-dir", str(run_dir))
    assert again.stdout.count("unchanged, skipped") == len(discover_stages()), again.stdout


def test_a_rerun_that_writes_other_bytes_reruns_what_needs_it(smoke, tmp_path):
    "When a damaged stage's re-run writes bytes other than its marker recorded, the stages that need it run again too."
    run_dir = tmp_path / "copy"
    shutil.copytree(smoke, run_dir)
    marker = run_dir / ".stages" / "explorer.json"
    m = json.loads(marker.read_text())
    rel = next(r for r in m["outputs"] if r.endswith("explorer.html"))
    m["outputs"][rel][1] -= 1; m["outputs"][rel][2] = "0" * 64           # as if the recorded file had other bytes
    marker.write_text(json.dumps(m))
    r = reproduce("--profile", "smoke", "--run-dir", str(run_dir))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"explorer: re-run: {rel} changed" in r.stdout
    assert "report: re-run: explorer wrote different outputs" in r.stdout
    assert r.stdout.count("unchanged, skipped") == len(discover_stages()) - 2


def test_changing_a_value_reruns_only_affected_stages(smoke, tmp_path):
    run_dir = tmp_path / "copy"
    shutil.copytree(smoke, run_dir)
    r = reproduce("--profile", "smoke", "--run-dir", str(run_dir), "--set", "autointerp.n_features=3")
    assert r.returncode == 0, r.stderr
    ran = {line.split("]")[1].split(":")[0].strip() for line in r.stdout.splitlines() if ": running" in line}
    skipped = {line.split("]")[1].split(":")[0].strip() for line in r.stdout.splitlines() if "unchanged, skipped" in line}
    assert ran == {"autointerp", "report"}, r.stdout          # autointerp reads the value; the report needs autointerp
    assert skipped == {s.stage.name for s in discover_stages()} - ran
    res = json.loads((run_dir / "results.json").read_text())
    assert res["autointerp"]["groups"]["Lua features"]["n"] + res["autointerp"]["groups"]["Lua features"]["undefined"] == 3
    assert json.loads((run_dir / "config.json").read_text())["autointerp"]["n_features"] == 3


@pytest.mark.slow
def test_killed_mid_stage_restarts_to_the_same_results(smoke, tmp_path):
    """SIGKILL the runner while a stage executes; a plain rerun completes it and everything after with identical results.

    The stage killed is the robustness study, in the middle of training its fine-tune snapshots: the rerun resumes
    them from their checkpoints."""
    import signal, time
    run_dir = tmp_path / "killed"
    shutil.copytree(smoke, run_dir)
    names = [s.stage.name for s in discover_stages()]
    for n in names[names.index("robustness"):]:
        (run_dir / ".stages" / f"{n}.json").unlink(); (run_dir / "logs" / f"{n}.log").unlink(missing_ok=True)
    shutil.rmtree(run_dir / "robustness")                   # its snapshots are trained again, and killed mid-way
    p = subprocess.Popen([console_script("uf-reproduce"), "--no-progress", "--profile", "smoke",
                          "--run-dir", str(run_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    log = run_dir / "logs" / "robustness.log"
    deadline = time.time() + 300
    while time.time() < deadline and not (log.exists() and log.stat().st_size > 0):  # the stage's cells have started
        time.sleep(0.2)
    time.sleep(1.0)
    assert p.poll() is None, "the runner finished before it could be killed"
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    assert not (run_dir / ".stages" / "robustness.json").exists(), "a killed stage must not be marked done"
    r = reproduce("--profile", "smoke", "--run-dir", str(run_dir))
    assert r.returncode == 0, r.stderr
    assert "explorer: unchanged, skipped" in r.stdout and "robustness: running" in r.stdout
    assert (run_dir / "results.json").read_text() == (smoke / "results.json").read_text()
    assert not [f for f in run_dir.rglob("*") if ".tmp" in f.name], "no temporary files may be left behind"


def test_stage_keys_propagate_downstream():
    stages = discover_stages()
    a = stage_keys(stages, get_config("smoke"))
    b = stage_keys(stages, get_config("smoke", ["data.seed=7"]))
    c = stage_keys(stages, get_config("smoke", ["sae.l1_coefficient=9"]))
    assert a["data"] != b["data"] and a["tokenizer"] != b["tokenizer"]
    assert a["data"] == c["data"] and a["tokenizer"] == c["tokenizer"]


@pytest.mark.slow
def test_same_seed_same_results(smoke, tmp_path, data_dir):
    "A second run from scratch up to the SAEs gives the same bytes: corpora, tokenizer, every model and SAE, every result.\n\n    The stages after the SAEs are rerun, and their results compared, by the kill-and-restart test above."
    again = tmp_path / "again"
    r = reproduce("--profile", "smoke", "--run-dir", str(again), "--until", "sae")
    assert r.returncode == 0, r.stderr
    assert "[6/11] matching" not in r.stdout and not (again / ".stages" / "matching.json").exists()
    res, ref = json.loads((again / "results.json").read_text()), json.loads((smoke / "results.json").read_text())
    assert set(res) == {"data", "tokenizer", "train", "merge", "sae"} and res == {k: ref[k] for k in res}
    files = [p.relative_to(again) for p in again.rglob("*") if p.suffix in (".safetensors", ".parquet", ".npy")]
    files.append(Path("tokenizer") / "tokenizer.json")         # not .stages/tokenizer.json: stage markers hold wall times
    assert len([f for f in files if f.suffix == ".safetensors"]) >= 12, files   # 4 models and 8 SAEs at least
    for f in files: assert (again / f).read_bytes() == (smoke / f).read_bytes(), f


def test_failed_stage_is_one_clear_error_and_not_marked_done(tmp_path, data_dir):
    run_dir = tmp_path / "bad"
    r = reproduce("--profile", "smoke", "--run-dir", str(run_dir), "--set", 'data.lua.sources=["deb:no-such-package-xyz=1.0"]')
    assert r.returncode == 1
    assert "stage data failed" in r.stderr and "apt-get" in r.stderr and "Traceback" not in r.stderr
    assert not (run_dir / ".stages" / "data.json").exists()


def test_missing_data_dir(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "UF_DATA_DIR"}
    r = reproduce("--profile", "smoke", "--run-dir", str(tmp_path / "nodata"), env=env)
    assert r.returncode == 1 and "UF_DATA_DIR" in r.stderr


@pytest.mark.parametrize("args,msg", [(["--profile", "laptop"], "valid profiles"),
                                      (["--profile", "smoke", "--only", "nope"], "stages: data"),
                                      (["--profile", "smoke", "--set", "sae.l1_coeficient=2"], "did you mean sae.l1_coefficient"),
                                      (["--profile", "smoke", "--set", "model.d_model=-5"], "model.d_model=-5 must be > 0")])
def test_bad_arguments(args, msg, tmp_path):
    r = reproduce(*args, "--run-dir", str(tmp_path / "x"))
    assert r.returncode == 1 and msg in r.stderr


def test_lm_evaluation_covers_every_model_and_domain(smoke):
    rows = json.loads((smoke / "results.json").read_text())["train"]["eval"]
    assert {(r["model"], r["domain"]) for r in rows} == {(m, d) for m in ("bigram", "base", "lua", "tinystories")
                                                         for d in ("english", "python", "lua", "tinystories")}
    assert all(0 <= r["accuracy"] <= 1 and r["loss"] > 0 and r["tokens"] > 0 for r in rows)
    assert "3.10 / 0.419" in (smoke / "tables" / "lm_eval.md").read_text()


def test_merge_sweep_and_luastories(smoke):
    res = json.loads((smoke / "results.json").read_text())["merge"]
    ts = [r["t"] for r in res["sweep"] if r["method"] == "slerp"]
    assert ts[0] == 0.0 and ts[-1] == 1.0 and len(ts) == 21
    assert res["tensors"] == 12 and 0 <= res["tensors_lerp_fallback"] <= 12
    assert {r["domain"] for r in res["luastories_eval"]} == {"english", "python", "lua", "tinystories"}
    cfg = json.loads((smoke / "models" / "luastories" / "config.json").read_text())
    assert cfg["universal_features_merge"]["t_orientation"] == "0 = tinystories, 1 = lua"
    assert res["t_used"] == cfg["universal_features_merge"]["t"] == 0.42                 # the authors' point, fixed in advance
    crossing = json.loads((smoke / "models" / "luastories_crossing" / "config.json").read_text())["universal_features_merge"]
    assert crossing["t"] == res["t_crossing_merge"] == (res["t_star_accuracy"] if res["t_star_accuracy"] is not None else 0.5)
    assert {(r["model"], r["domain"]) for r in res["crossing_eval"]} == {("luastories_crossing", d) for d in ("english", "python", "lua", "tinystories")}


def test_a_copied_run_directory_skips_its_finished_stages(smoke, tmp_path):
    "The HPC workflow: prepare a run directory on one machine, copy it, resume on another; nothing re-runs."
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(smoke, moved)
    r = reproduce("--profile", "smoke", "--run-dir", str(moved))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("unchanged, skipped") == len(discover_stages()) and ": running" not in r.stdout


def test_warm_kernel_imports_ahead_and_fails_cleanly(tmp_path):
    w = WarmKernel(ensure_kernel(), tmp_path, ("universal_features.files", "json"))
    km = w.take()
    assert km is not None and w.error is None
    kc = km.blocking_client(); kc.start_channels(); kc.wait_for_ready(timeout=60)
    try:
        code = "import os, sys; assert {'universal_features.files', 'json'} <= set(sys.modules) and os.getcwd() == %r" % str(tmp_path)
        assert kc.execute_interactive(code, timeout=60)["content"]["status"] == "ok"
    finally: kc.stop_channels(); w.shutdown()
    assert not km.has_kernel
    bad = WarmKernel(ensure_kernel(), tmp_path, ("universal_features.no_such_module",))
    assert bad.take() is None and "No module named" in str(bad.error) and not bad.km.has_kernel


def test_a_stage_runs_when_its_early_kernel_fails(smoke, tmp_path, monkeypatch):
    "A kernel started ahead whose imports fail is shut down; papermill then starts the stage's kernel itself."
    run_dir = tmp_path / "copy"
    shutil.copytree(smoke, run_dir)
    started = []
    def failing_preload(sn):
        started.append(sn.stage.name); return ("universal_features.no_such_module",)
    monkeypatch.setattr(reproduce_module, "preload", failing_preload)
    status = run_pipeline("smoke", run_dir=run_dir, only="report", force=True, progress=False)
    assert status["report"] == "ran" and started == ["report"]
    assert (run_dir / ".stages" / "report.json").exists() and (run_dir / "tables" / "REPRODUCTION.md").exists()


@pytest.mark.slow
def test_gpu_check_runs_on_a_copied_run_directory(smoke, tmp_path):
    "scripts/gpu_check.sh end to end on the CPU (--allow-cpu): tests, pipeline (all stages current), report, --out."
    moved, out = tmp_path / "gpu_run", tmp_path / "out"
    shutil.copytree(smoke, moved)
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run(["bash", str(repo / "scripts" / "gpu_check.sh"), "--profile", "smoke", "--run-dir", str(moved),
                        "--allow-cpu", "--skip-benchmarks", "--budget-s", "400", "--out", str(out)],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "pipeline exit status 0" in r.stdout and r.stdout.count("unchanged, skipped") == len(discover_stages())
    report = (out / "gpu_run.md").read_text()
    for sn in discover_stages(): assert f"| {sn.stage.name} |" in report, sn.stage.name   # robustness too
    assert r.stdout.index("== the smoke profile") < r.stdout.index("pipeline exit status") < r.stdout.index("== cuda_tests")
    assert "seed null" in report and "## Merge" in report and "The `smoke` profile" in report
    assert {p.name for p in out.iterdir()} >= {"gpu_run.md", "gpu_results.tar.gz", "gpu_logs.tar.gz"}


def test_gpu_check_refuses_a_run_directory_without_data(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run(["bash", str(repo / "scripts" / "gpu_check.sh"), "--run-dir", str(tmp_path), "--allow-cpu"],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHON": sys.executable})
    assert r.returncode == 1 and "no finished data stage" in r.stderr and "--only data" in r.stderr


def test_outputs_written_back_are_stable_and_hold_no_machine_paths(smoke_run, tmp_path):
    "The reference run's outputs go into nbs/: stdout, tables and figures only, no local paths, the same bytes twice."
    import shutil as sh
    from universal_features.reproduce import REPO_ROOT, write_back
    replace = {str(smoke_run): "runs/smoke", str(REPO_ROOT): ".", os.environ["UF_DATA_DIR"]: "$UF_DATA_DIR"}
    for name in ("05_sae.ipynb", "10_robustness.ipynb"):
        src = sh.copy(REPO_ROOT / "nbs" / name, tmp_path / name)
        assert write_back(smoke_run / "notebooks" / name, Path(src), replace)
        text = Path(src).read_text()
        assert "image/png" in text and str(smoke_run) not in text and "%|" not in text and '"stderr"' not in text
        nb = json.loads(text)
        assert all(c.get("execution_count") is None for c in nb["cells"] if c["cell_type"] == "code")
        assert [c["source"] for c in nb["cells"]] == [c["source"] for c in json.loads((REPO_ROOT / "nbs" / name).read_text())["cells"]]
        assert not write_back(smoke_run / "notebooks" / name, Path(src), replace)      # a second publish changes nothing
