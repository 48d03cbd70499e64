import json
import tempfile
from pathlib import Path

import pytest

from universal_features import report as rp
from universal_features.profiles import get_config
from universal_features.reproduce import discover_stages
from universal_features.robustness import MIXED
from universal_features.files import Table
from universal_features.merge import PAPER_SWEEP, crossing_point


def results(**kw):
    return rp.toy_results(**kw)


def verdicts(**kw):
    return [c["verdict"] for c in rp.claim_verdicts(results(**kw))]


def test_all_claims_can_hold():
    assert verdicts() == [rp.HOLDS] * 6


def test_each_rule_can_fail_or_be_inconclusive():
    assert verdicts(persist=0.6)[0] == rp.FAILS and verdicts(persist=0.6)[1] == rp.FAILS
    assert verdicts(merge_persist=0.6)[:2] == [rp.HOLDS, rp.FAILS]         # fine-tunes and the merge are judged apart
    assert verdicts(persist=0.25, null=0.5)[0] == rp.INCONCLUSIVE         # normalised 0.5, interval [0.4, 0.6] straddles the bound
    assert verdicts(persist=0.15, null=0.2)[0] == rp.FAILS                # raw 15 % looks "few", but the seed null keeps only 20 %
    assert verdicts(persist=0.2, null=0.5, spread=0.1)[0] == rp.HOLDS     # 0.4, upper bound 0.44
    assert verdicts(persist=0.2, null=0.5, spread=0.3)[0] == rp.INCONCLUSIVE  # 0.4, upper bound 0.52: the interval decides

    assert verdicts(generic_p=(0.01, 0.5, 0.5, 0.5))[2] == rp.FAILS
    assert verdicts(generic_p=(0.01, 0.01, 0.5, 0.5))[2] == rp.INCONCLUSIVE
    assert verdicts(universal=False)[3] == rp.FAILS
    assert verdicts(exc_r=0.9)[4] == rp.FAILS
    assert verdicts(exc_f1=0.1)[4] == rp.INCONCLUSIVE
    assert verdicts(t_star=0.8)[5] == rp.FAILS and verdicts(t_star=None)[5] == rp.FAILS


def test_the_merge_verdict_judges_the_authors_point_and_names_the_crossing_beside_it():
    "The headline merge verdict is the paper's merge at merge.t; the merge at t* only enters the sensitivity column."
    merging = lambda **kw: rp.claim_verdicts(results(**kw))[1]
    assert merging(crossing_persist=0.6)["verdict"] == rp.HOLDS                       # few persist at the authors' point ...
    assert merging(crossing_persist=0.6)["sensitivity"] == "fragile: merge at t* (LuaStories (t*)): does not hold"
    assert merging(merge_persist=0.6, crossing_persist=0.15)["verdict"] == rp.FAILS  # ... and not the other way round
    assert "merge at t*" in merging(merge_persist=0.6, crossing_persist=0.15)["sensitivity"]
    assert merging()["sensitivity"].endswith("; the merge at t*)")                    # the same verdict at t*: robust
    ev = merging()["evidence"]
    assert ev.index("Which merge (fixed before the numbers)") < ev.index("Lua→LuaStories: raw") < ev.index("beside it, not in the verdict")
    assert rp.claim_verdicts(results(crossing_persist=0.6))[0]["sensitivity"].startswith("robust")  # fine-tuning does not see it


def test_paper_crossing_is_computed_from_the_authors_sweep():
    t = crossing_point([a for a, _, _ in PAPER_SWEEP], [b for _, b, _ in PAPER_SWEEP], [c for _, _, c in PAPER_SWEEP])
    claim = rp.claim_crossing({"t_star_accuracy": 0.6})
    assert 0.55 < t < 0.6 and f"{t:.3f}" in claim["evidence"] and claim["verdict"] == rp.HOLDS


def test_tables_escape_their_cells():
    md = Table([{"a": "x|y", "b": "1\n2"}], ["a", "b"]).markdown()
    assert "x\\|y" in md and "1 2" in md
    tex = Table([{"claim": "50% & more", "evidence": "r ≥ τ_1", "verdict": "holds"}], ["claim", "evidence", "verdict"]).latex("c")
    assert r"50\% \& more" in tex and r"$\geq$" in tex and r"\_" in tex and "\\toprule" in tex


def test_every_stage_with_a_section_is_read_in_pipeline_order():
    "The report reads every stage that declares a section, each after the stages it needs; the only departure from the"
    "notebooks' order is the calibration (robustness), read right after the persistence it calibrates (matching)."
    pipeline = [s.stage.name for s in discover_stages() if s.stage.section is not None]
    names = [s.name for s in rp.SECTIONS]
    assert sorted(names) == sorted(pipeline) and "report" not in names
    assert all(n in names[:i] for i, s in enumerate(rp.SECTIONS) for n in s.needs if n in names)
    moved = [n for n in pipeline if n != "robustness"]
    assert names == moved[:moved.index("matching") + 1] + ["robustness"] + moved[moved.index("matching") + 1:]


def stage_tables(names=("data_provenance", "lm_eval", "lm_eval_with_merge", "sae_metrics", "feature_transitions",
                        "generic_features", "robustness_normalised", "robustness_evidence")) -> Path:
    tables = Path(tempfile.mkdtemp())
    for n in names: (tables / f"{n}.md").write_text(f"table {n}\n")
    return tables


def test_build_report_is_its_own_parts_around_the_stages_sections():
    res, tables, cfg = results(), stage_tables(), get_config("smoke")
    text = rp.build_report(res, tables, {"domains": {}}, cfg, {"train": 30.0})
    fig = lambda name, cap: f"![{cap}](../figures/{name}.png)\n\n*{cap}*"
    blocks = ["\n\n".join(s.section(res, tables, fig)) for s in rp.SECTIONS]
    at = [text.index(b) for b in blocks]                                     # every stage's section, whole and in order
    assert at == sorted(at) and text.index("## Claims and verdicts") < at[0] and at[-1] < text.index("## This run")
    assert all(f"table {n}" in text for n in ("data_provenance", "lm_eval", "sae_metrics", "generic_features", "robustness_evidence"))
    with pytest.raises(FileNotFoundError, match="upstream stage"):          # a stage that did not write its table
        rp.build_report(res, stage_tables(("lm_eval",)), {"domains": {}}, cfg, {})


def test_report_of_the_smoke_run(smoke_run):
    text = (smoke_run / "tables" / "REPRODUCTION.md").read_text()
    res = json.loads((smoke_run / "results.json").read_text())
    claims = res["report"]["claims"]
    assert len(claims) == 6 and all(c["verdict"] in (rp.HOLDS, rp.FAILS, rp.INCONCLUSIVE, MIXED) for c in claims)
    assert claims == rp.claim_verdicts(res)
    for c in claims: assert c["verdict"] in text and c["claim"] in text
    assert "stand-in" in text and "OFFLINE PROXY" in text
    for fig in ("fig2_feature_flow", "fig3_variable_assignment", "fig4_exception_feature", "fig5_slerp_sweep", "fig6_autointerp"):
        assert f"../figures/{fig}.png" in text and (smoke_run / "figures" / f"{fig}.png").exists()
    assert (smoke_run / "tables" / "claims.tex").read_text().startswith("\\begin{table}")
    assert "../figures/fig1_design.png" in text
    both = text.index("### Both merge points")                                       # both merges' transitions, the rule first
    assert both < text.index("Which merge the verdicts use", both) < text.index("| from | LuaStories | LuaStories (t*) |", both)
    for ext in ("png", "pdf"): assert (smoke_run / "figures" / f"fig1_design.{ext}").stat().st_size > 0   # Figure 1, drawn from the lineage
