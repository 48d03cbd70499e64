import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from universal_features.activations import ActivationStore, Partners
from universal_features.case_studies import pick_snippets, selectivity, top_candidates
from universal_features.dashboards import FeatureDashboard, feature_dashboard
from universal_features.lexers import (LUA_SAMPLE, PY_SAMPLE, CharTokenizer, label_code, labelled_code_blocks, lex,
                                      token_labels)
from universal_features.correlation import pearson_matrix


def labelled(text, lang):
    toks = lex(text, lang)
    return [(t.text, sorted(l)) for t, l in zip(toks, label_code(toks, lang)) if l]


def test_python_labels_from_the_standard_tokenizer():
    got = labelled(PY_SAMPLE, "python")
    assert [t for t, l in got if "assign" in l] == ["=", "="]
    assert [t for t, l in got if "kwarg" in l] == ["=", "="]
    assert [t for t, l in got if "compare" in l] == ["==", ">="]
    assert [t for t, l in got if "assign_target" in l] == ["x", "y", ".", "z", "[", "0", "]"]
    assert [t for t, l in got if "exception" in l] == ["try", "raise", "ValueError", "except", "KeyError", "finally"]


def test_lua_lexer_and_labels():
    got = labelled(LUA_SAMPLE, "lua")
    # for-loop `=` is not an assignment; table-field `=` is the keyword-argument analogue; comments and long strings hide `=`
    assert [t for t, l in got if "assign" in l] == ["=", "=", "=", "=", "="]
    assert [t for t, l in got if "kwarg" in l] == ["="]
    assert [t for t, l in got if "compare" in l] == ["~=", "=="]
    assert ("pcall", ["lua_error"]) in got
    kinds = {t.text: t.kind for t in lex(LUA_SAMPLE, "lua")}
    assert kinds["[[ a = b ]]"] == "STRING" and kinds["local"] == "KEYWORD"


def test_python_lexer_keeps_the_valid_prefix_of_a_broken_file():
    toks = lex("a = 1\nb = (2,\n", "python")
    assert [t.text for t in toks][:3] == ["a", "=", "1"]


def test_model_tokens_take_overlapping_labels():
    toks = lex("y = x == 2\n", "python")
    labels = label_code(toks, "python")
    # model tokens like byte-level BPE: 'y', ' =', ' x', ' ==', ' 2'
    offsets = [(0, 1), (1, 3), (3, 5), (5, 8), (8, 10)]
    got = token_labels(offsets, toks, labels)
    assert got[1] == {"assign"} and got[3] == {"compare"} and got[0] == {"assign_target"} and got[2] == set()


def test_code_blocks_carry_the_lexer_labels():
    code = labelled_code_blocks([PY_SAMPLE, "x ==== (\n"], "python", CharTokenizer(), block_size=16, max_tokens=10_000)
    flat = [s for row in code.labels for s in row]
    assert code.blocks.shape[1] == 16 and len(flat) == code.blocks.size
    text = (PY_SAMPLE + "x ==== (\n")[: code.blocks.size]
    assert [text[i] for i, s in enumerate(flat) if "assign" in s] == ["=", "="]
    assert code.mask("exception").sum() == sum(len(w) for w in ("try", "raise", "ValueError", "except", "KeyError", "finally"))
    with pytest.raises(ValueError, match="no python code tokens"):
        labelled_code_blocks(["x = 1"], "python", CharTokenizer(), block_size=64, max_tokens=100)


def test_snippets_are_chosen_by_rule():
    docs = ["a=1\nb=2\nc=3\nd=4\n", "import os\n\nx = f(k=1)\ny = x == 2\nz = 3\nw = 4\n"]
    [s] = pick_snippets(docs, "python", ("assign",), ("kwarg", "compare"), 1, lines=3, max_chars=40)
    assert s.doc is docs[1] and s.text == "x = f(k=1)\ny = x == 2\nz = 3"   # the no-space style of doc 0 is skipped
    assert pick_snippets(docs, "python", ("exception",), (), 1, lines=3, max_chars=40) == []


def test_selectivity_of_a_planted_feature():
    rng = np.random.default_rng(0)
    target = rng.random(2000) < 0.05
    contrast = ~target & (rng.random(2000) < 0.1)
    dense = np.zeros((2000, 3), np.float32)
    dense[target, 0] = 2.0                      # fires exactly on targets
    dense[:, 1] = rng.random(2000)              # fires everywhere
    dense[contrast, 2] = 1.0                    # fires on the contrast
    sel = selectivity(sp.csc_matrix(dense), target, contrast)
    assert sel["precision"][0] == pytest.approx(1.0) and sel["recall"][0] == pytest.approx(1.0)
    assert sel["f1"][0] > sel["f1"][1] > sel["f1"][2] == 0
    assert top_candidates(sel, 1)[0]["feature"] == 0 and sel["ratio"][2] == 0


def _store(dense, L=10):
    return ActivationStore(np.arange(dense.shape[0]).reshape(-1, L) % 50, sp.csc_matrix(dense))


def test_store_correlations_are_exact_pearson(tmp_path):
    rng = np.random.default_rng(1)
    a = np.maximum(rng.normal(size=(3000, 12)), 0).astype(np.float32)
    b = np.maximum(rng.normal(size=(3000, 9)), 0).astype(np.float32)
    b[:, 3] = a[:, 5] * 2
    b[:, 4] = 0.0                                # dead feature
    sa, sb = _store(a), _store(b)
    with np.errstate(invalid="ignore", divide="ignore"):     # the dead feature's r is undefined in numpy
        ref = np.corrcoef(a.T, b.T)[:12, 12:]
    assert np.allclose(sb.correlate(a[:, 5]), np.nan_to_num(ref[5]), atol=1e-5)
    r = pearson_matrix(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    assert np.allclose([sb.correlate(a[:, i]) for i in range(12)], r, atol=1e-5)   # the stores and the engine agree
    back = ActivationStore.load(sa.save(tmp_path / "a.npz"))
    assert (back.acts != sa.acts).nnz == 0 and (back.tokens == sa.tokens).all()
    assert not list(tmp_path.glob(".*tmp*"))


# --- the smoke run -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke(smoke_run):
    return smoke_run


def test_case_studies_stage_outputs(smoke):
    res = json.loads((smoke / "results.json").read_text())["case_studies"]
    for fig in ("fig3_variable_assignment", "fig4_exception_feature", "dashboard_assignment_feature"):
        for ext in ("png", "pdf"): assert (smoke / "figures" / f"{fig}.{ext}").stat().st_size > 1000
    assert "uf-dashboard" in (smoke / "figures" / "case_study_dashboards.html").read_text()
    a = res["assignment"]
    assert set(a["feature"]) == {"base", "lua", "tinystories", "luastories"}
    assert a["universal"] == (min(a["links"].values()) >= res["threshold"] and a["luastories_via_tinystories"] == a["feature"]["luastories"])
    e = res["exception"]
    assert e["persists"] == (e["r"] >= res["threshold"]) and e["support"] > 0
    # the case studies read the matching stage's partners: their links are the saved r of those features
    pt = Partners.load(smoke / "matching", "base", "lua")
    assert a["feature"]["lua"] == pt.parent_best[a["feature"]["base"]] and a["links"]["base→lua"] == pytest.approx(pt.parent_score[a["feature"]["base"]])
    assert e["lua_feature"] == pt.parent_best[e["feature"]] and e["r"] == pytest.approx(pt.parent_score[e["feature"]])


def _units(smoke):
    from universal_features.config import load_config
    from universal_features.lineage import MODELS
    from universal_features.loaders import load_unit
    from universal_features.run import Run
    run = Run(smoke, load_config(smoke / "config.json"))
    return {n: load_unit(run, n) for n in MODELS}


def test_dashboard_contents(smoke):
    from universal_features.tokenizer import load_tokenizer
    units, tok = _units(smoke), load_tokenizer(smoke)
    stores = {n: ActivationStore.load(smoke / "activations" / f"{n}.npz") for n in ("base", "lua")}
    f = int(np.argmax(stores["base"].density()))
    d = feature_dashboard("base", f, stores["base"], *units["base"], tok, {"lua": (stores["lua"], units["lua"][1])}, k=3)
    assert isinstance(d, FeatureDashboard) and 0 < d.density <= 1 and len(d.top_contexts) == 3
    assert d.max_activation == pytest.approx(float(stores["base"].column(f).max()))
    assert max(max(c.acts) for c in d.top_contexts) == pytest.approx(d.max_activation)
    assert len(d.promoted) == 10 and d.promoted[0][1] >= d.promoted[-1][1] >= d.suppressed[-1][1]
    r = d.nearest["lua"]["correlation"]
    assert r[0][1] == pytest.approx(float(stores["lua"].correlate(stores["base"].column(f)).max()))
    page = d.to_html()
    assert "BabyPython feature #" in page and "<svg" in page and "nearest in Lua" in page
    fig = d.plot()
    assert len(fig.axes) >= 4


def test_explorer_callbacks(smoke):
    from universal_features.explorer import Explorer
    from universal_features.tokenizer import load_tokenizer
    from universal_features.lineage import EDGES, MODELS
    stores = {n: ActivationStore.load(smoke / "activations" / f"{n}.npz") for n in MODELS}
    partners = {e: Partners.load(smoke / "matching", *e) for e in EDGES}
    ex = Explorer(stores, _units(smoke), load_tokenizer(smoke), partners, tau=0.8, top_contexts=2)
    w = ex.widget
    assert w is ex.widget and ex.w_transition.value == ("base", "lua")
    persist = ex.rows(("base", "lua"), "persist")
    assert len(ex.w_feature.options) == min(len(persist), ex.max_listed) and all(r.r >= 0.8 for r in persist)
    first = ex.w_out.value
    assert f"#{persist[0].feature}" in first and f"#{persist[0].partner}" in first
    ex.w_category.value = "emerge"                      # callback: list refreshes to child features
    emerge = ex.rows(("base", "lua"), "emerge")
    assert all(r.model == "lua" and r.r < 0.8 for r in emerge)
    assert len(ex.w_feature.options) == min(len(emerge), ex.max_listed) and "Lua feature #" in ex.w_out.value
    if len(emerge) > 1:
        before = ex.w_out.value
        ex.w_feature.value = 1                          # callback: choose another feature
        assert ex.w_out.value != before and f"#{emerge[1].feature}" in ex.w_out.value
    ex.w_transition.value = ("lua", "luastories")
    assert ex.w_feature.options[0][0].startswith("LuaStories #")
    ex.w_range.value = (0.99, 1.0)                      # nothing emerges with r ≥ 0.99 < τ
    assert ex.w_feature.options == () and "no features" in ex.w_out.value
    page = (smoke / "figures" / "explorer.html").read_text()
    assert page.count("uf-dashboard") >= 2 and "persist" in page and "emerge" in page
