"""The paper's shapes end to end on the CPU (`--profile paper-shape`): d_model 512, 16/8 heads, d_mlp 1024, context 256,
Mistral-7B-v0.1's 32,000-token tokenizer (the file mistral-common ships, copied by the data stage from PyPI: no Hub) and
16,384-latent SAEs on 24-token blocks, with token budgets small enough for 2 cores. Anything whose
cost or memory grows with the dictionary (matching, stores, dashboards, the explorer, autointerp) runs here at the
paper's size before anyone spends GPU time on it."""
import json
import os
import subprocess

import numpy as np
import pytest

from universal_features.activations import ActivationStore, Partners
from universal_features.profiles import get_config
from conftest import console_script


@pytest.fixture(scope="module")
def paper_shape_run(tmp_path_factory, data_dir):
    if os.environ.get("UF_TEST_PAPER_SHAPE_RUN"):       # reuse a finished run directory while iterating on tests
        return tmp_path_factory.getbasetemp().__class__(os.environ["UF_TEST_PAPER_SHAPE_RUN"])
    run_dir = tmp_path_factory.mktemp("paper_shape")
    r = subprocess.run([console_script("uf-reproduce"), "--no-progress", "--profile", "paper-shape",
                        "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return run_dir


def test_paper_shape_has_the_gpu_profiles_shapes():
    ps, gpu = get_config("paper-shape"), get_config("gpu")
    assert ps.model == gpu.model and ps.tokenizer.vocab_size == gpu.tokenizer.vocab_size == 32000
    assert ps.tokenizer.pretrained == gpu.tokenizer.pretrained == "mistralai/Mistral-7B-v0.1" and ps.data.hub == "never"
    assert (ps.sae.expansion_factor, ps.sae.block_size, ps.sae.hook_name) == (gpu.sae.expansion_factor, gpu.sae.block_size, gpu.sae.hook_name)


@pytest.mark.slow
def test_every_stage_runs_at_16384_latents(paper_shape_run):
    res = json.loads((paper_shape_run / "results.json").read_text())
    assert set(res) >= {"data", "tokenizer", "train", "merge", "sae", "matching", "case_studies", "autointerp", "explorer", "report"}
    assert res["tokenizer"]["vocab_size"] == 32000
    assert res["tokenizer"]["pretrained"] == "mistralai/Mistral-7B-v0.1@sha256:" + "dadfd56d766715c61d2ef780a525ab43b8e6da4de6865bda3d95fdef5e134055"
    assert res["tokenizer"]["source"] == "pypi:mistral-common==1.13.1:mistral_common/data/tokenizer.model.v1"
    assert "so the losses are in its units" in (paper_shape_run / "tables" / "lm_eval.md").read_text()
    assert {r["d_sae"] for r in res["sae"].values()} == {16384}
    rows = [t for t in res["matching"]["transitions"] if t["method"] == "max_corr"]
    assert rows and all(t["parent_features"] == t["child_features"] == 16384 for t in rows)
    store = ActivationStore.load(paper_shape_run / "activations" / "base.npz")
    assert store.d_sae == 16384 and store.n_tokens == res["matching"]["evaluation_tokens"]
    pt = Partners.load(paper_shape_run / "matching", "base", "lua")
    assert pt.parent_top.shape[0] == 16384 and np.isfinite(pt.parent_score).all()
    for fig in ("fig2_feature_flow", "fig3_variable_assignment", "fig4_exception_feature", "fig5_slerp_sweep", "fig6_autointerp"):
        assert (paper_shape_run / "figures" / f"{fig}.png").stat().st_size > 1000
    assert "uf-dashboard" in (paper_shape_run / "figures" / "explorer.html").read_text()
