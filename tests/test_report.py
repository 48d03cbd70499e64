import json

from universal_features import report as rp
from universal_features.files import Table
from universal_features.merge import PAPER_SWEEP, crossing_point


def results(persist=0.15, null=0.6, generic_p=(0.01, 0.01, 0.01, 0.2), universal=True, exc_f1=0.5, exc_r=0.5, t_star=0.6, spread=0.2):
    pairs = [("base", "lua"), ("base", "tinystories"), ("lua", "luastories"), ("tinystories", "luastories"), ("base", "luastories")]
    trans = [{"parent": p, "child": c, "method": "max_corr", "persist_share_alive": persist} for p, c in pairs]
    trans += [{"parent": p, "child": c, "method": "max_corr", "persist_share_alive": null} for p, c in (("base", "base-seed2"), ("lua", "lua-seed2"))]
    generic = [{"parent": p, "child": c, "persist": 100, "disappear": 900, "generic_share_persist": 0.6,
                "generic_share_disappear": 0.3, "p_value": pv} for (p, c), pv in zip(pairs, generic_p)]
    links = {"base→lua": 0.9, "base→tinystories": 0.85, "lua→luastories": 0.95, "tinystories→luastories": 0.9 if universal else 0.5}
    norm = [{"parent": p, "child": c, "method": "max_corr", "persist_share": persist, "null_mean": null, "normalised": persist / null,
             "low": (1 - spread) * persist / null, "high": (1 + spread) * persist / null} for p, c in pairs[:4]]
    return {
        "robustness": {"normalised": norm, "bound": 0.5},
        "matching": {"transitions": trans},
        "case_studies": {"generic": generic, "threshold": 0.8,
                         "assignment": {"feature": {"base": 1, "lua": 2, "tinystories": 3, "luastories": 4}, "links": links,
                                        "universal": universal, "luastories_via_tinystories": 4, "support": 50,
                                        "f1": {"base": 0.7}, "precision": {"base": 0.6}, "recall": {"base": 0.9}},
                         "exception": {"feature": 5, "f1": exc_f1, "precision": 0.5, "recall": 0.5, "support": 40,
                                       "lua_feature": 6, "r": exc_r, "decoder_cosine": 0.3, "persists": exc_r >= 0.8}},
        "merge": {"t_star_accuracy": t_star},
    }


def verdicts(**kw):
    return [c["verdict"] for c in rp.claim_verdicts(results(**kw))]


def test_all_claims_can_hold():
    assert verdicts() == [rp.HOLDS] * 5


def test_each_rule_can_fail_or_be_inconclusive():
    assert verdicts(persist=0.6)[0] == rp.FAILS
    assert verdicts(persist=0.25, null=0.5)[0] == rp.INCONCLUSIVE         # normalised 0.5, interval [0.4, 0.6] straddles the bound
    assert verdicts(persist=0.15, null=0.2)[0] == rp.FAILS                # raw 15 % looks "few", but the seed null keeps only 20 %
    assert verdicts(persist=0.2, null=0.5, spread=0.1)[0] == rp.HOLDS     # 0.4, upper bound 0.44
    assert verdicts(persist=0.2, null=0.5, spread=0.3)[0] == rp.INCONCLUSIVE  # 0.4, upper bound 0.52: the interval decides

    assert verdicts(generic_p=(0.01, 0.5, 0.5, 0.5))[1] == rp.FAILS
    assert verdicts(generic_p=(0.01, 0.01, 0.5, 0.5))[1] == rp.INCONCLUSIVE
    assert verdicts(universal=False)[2] == rp.FAILS
    assert verdicts(exc_r=0.9)[3] == rp.FAILS
    assert verdicts(exc_f1=0.1)[3] == rp.INCONCLUSIVE
    assert verdicts(t_star=0.8)[4] == rp.FAILS and verdicts(t_star=None)[4] == rp.FAILS


def test_paper_crossing_is_computed_from_the_authors_sweep():
    t = crossing_point([a for a, _, _ in PAPER_SWEEP], [b for _, b, _ in PAPER_SWEEP], [c for _, _, c in PAPER_SWEEP])
    claim = rp.claim_crossing({"t_star_accuracy": 0.6})
    assert 0.55 < t < 0.6 and f"{t:.3f}" in claim["evidence"] and claim["verdict"] == rp.HOLDS


def test_tables_escape_their_cells():
    md = Table([{"a": "x|y", "b": "1\n2"}], ["a", "b"]).markdown()
    assert "x\\|y" in md and "1 2" in md
    tex = Table([{"claim": "50% & more", "evidence": "r ≥ τ_1", "verdict": "holds"}], ["claim", "evidence", "verdict"]).latex("c")
    assert r"50\% \& more" in tex and r"$\geq$" in tex and r"\_" in tex and "\\toprule" in tex


def test_report_of_the_smoke_run(smoke_run):
    text = (smoke_run / "tables" / "REPRODUCTION.md").read_text()
    res = json.loads((smoke_run / "results.json").read_text())
    claims = res["report"]["claims"]
    assert len(claims) == 5 and all(c["verdict"] in (rp.HOLDS, rp.FAILS, rp.INCONCLUSIVE) for c in claims)
    assert claims == rp.claim_verdicts(res)
    for c in claims: assert c["verdict"] in text and c["claim"] in text
    assert "stand-in" in text and "OFFLINE PROXY" in text
    for fig in ("fig2_feature_flow", "fig3_variable_assignment", "fig4_exception_feature", "fig5_slerp_sweep", "fig6_autointerp"):
        assert f"../figures/{fig}.png" in text and (smoke_run / "figures" / f"{fig}.png").exists()
    assert (smoke_run / "tables" / "claims.tex").read_text().startswith("\\begin{table}")
    assert "../figures/fig1_design.png" in text
    for ext in ("png", "pdf"): assert (smoke_run / "figures" / f"fig1_design.{ext}").stat().st_size > 0   # Figure 1, drawn from the lineage
