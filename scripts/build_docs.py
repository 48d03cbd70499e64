#!/usr/bin/env python
"""Build the documentation site of one reproduction run, offline, with Sphinx + myst-nb.

    python scripts/build_docs.py [--run-dir runs/cpu] [--out _docs] [--strict] [--keep-staging]

It assembles a staging source folder under build/ from docs/ (pages and conf.py), the run's executed notebooks
(<run-dir>/notebooks) plus the notebooks of nbs/ that are no stage, the run's figures and its REPRODUCTION.md, then
runs `sphinx -b html`. No notebook is executed. The site is written to a temporary folder beside --out and moved into
place only when the build succeeded, so a failed build leaves --out as it was.

Warnings that mean a broken site (missing image, toctree entry or cross-reference, a module autodoc cannot import)
fail the build; other warnings are printed. --strict fails on every warning.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
NBS = REPO / "nbs"
HTML_PAGES = ("explorer.html", "case_study_dashboards.html")

# Warnings that mean the site is broken, not merely untidy.
FATAL_WARNINGS = (
    "image file not readable", "toctree contains reference to nonexisting document",
    "document isn't included in any toctree", "reference target not found", "cross-reference target not found",
    "failed to import", "autodoc: failed", "Unknown directive type", "Unknown interpreted text role",
    "undefined label", "Could not lex literal_block",
)

# Captions of the figures the pipeline draws (title, caption). The report's own captions take precedence.
FIGURES = {
    "fig1_design": ("Figure 1: the experimental design",
                    "Figure 1: the models, how each was made, the SAE on each, and the share of features that persist."),
    "fig7_normalised_persistence": ("Figure 7: normalised persistence",
                                    "Figure 7: persistence ÷ the parent's seed null, per transition and method, and against τ."),
    "fig8_persistence_vs_distance": ("Figure 8: persistence along the fine-tune",
                                     "Figure 8: persistence from BabyPython against weight-space angle and English loss."),
    "fig9_merge_flow": ("Figure 9: feature flow along the SLERP path",
                        "Figure 9: the share of each fine-tune's features that persist into the merge at each t."),
    "fig2_feature_flow": ("Figure 2: feature flow", "Figure 2: flow of persisting features across the four models."),
    "fig3_variable_assignment": ("Figure 3: the variable-assignment feature",
                                 "Figure 3: the variable-assignment feature in each model."),
    "fig4_exception_feature": ("Figure 4: the Python-exception feature",
                               "Figure 4: the Python-exception feature and its closest Lua feature."),
    "fig5_slerp_sweep": ("Figure 5: the SLERP sweep", "Figure 5: accuracy along the SLERP path."),
    "fig6_autointerp": ("Figure 6: automated interpretability", "Figure 6: explanation scores of Lua features."),
    "lm_training": ("Language-model training", "Training and validation loss of the base model and the two fine-tunes."),
    "sae_feature_density": ("SAE feature densities", "Feature densities of each model's SAE on held-out tokens."),
    "matching_threshold_sweep": ("Persistence against the threshold",
                                 "Persistence against τ with the seed-control null."),
    "dashboard_assignment_feature": ("Dashboard of the variable-assignment feature",
                                     "Dashboard of the variable-assignment feature: top contexts, activation "
                                     "histogram, promoted and suppressed tokens."),
}
SUPPLEMENTARY_ORDER = ("lm_training", "sae_feature_density", "matching_threshold_sweep", "dashboard_assignment_feature")


class BuildError(Exception):
    "A failure the user can act on: printed as one line, exit status 1."


def profile_of(run_dir: Path) -> str:
    try:
        return json.loads((run_dir / "config.json").read_text())["profile"]
    except (OSError, ValueError, KeyError, TypeError):
        return run_dir.name


def stage_notebooks() -> dict[str, str]:
    "Notebook name -> stage name for the notebooks of nbs/ that the runner executes (the runner decides what a stage is)."
    sys.path.insert(0, str(REPO))
    from universal_features.reproduce import discover_stages
    return {s.notebook.name: s.stage.name for s in discover_stages(NBS)}


def notebook_info(path: Path) -> tuple[str, str]:
    "Title (the first `# ` heading) and summary (the nbdev `> ` description) of a notebook."
    nb = json.loads(path.read_text())
    title, summary = path.stem, ""
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown": continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        m = re.search(r"^#\s+(.+)$", src, re.M)
        if m:
            title = m.group(1).strip()
            summary = " ".join(l[1:].strip() for l in src.splitlines() if l.startswith(">"))
            break
    return title, summary


def _md_cell(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def stage_notebook(src: Path, dst: Path, note: str | None = None) -> None:
    "Copy a notebook for rendering: a kernelspec for the lexer, nbdev `#| hide` cells removed, an optional note."
    nb = json.loads(src.read_text())
    nb.setdefault("metadata", {}).setdefault(
        "kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    for cell in nb["cells"]:
        s = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if re.search(r"^#\|\s*hide\s*$", s, re.M):
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if "remove-cell" not in tags: tags.append("remove-cell")
    if note:
        at = next((i + 1 for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown"), 0)
        nb["cells"].insert(at, _md_cell(note))
    dst.write_text(json.dumps(nb, ensure_ascii=False, indent=1))


def notebooks_table(rows: list[tuple[str, str, str, bool]]) -> str:
    out = ["| notebook | stage | what it does |", "|---|---|---|"]
    for name, stage, (title, summary), present in rows:
        cell = f"[{title}](notebooks/{name})" if present else title
        out.append(f"| {cell} | {stage} | {summary.replace('|', '/')} |")
    return "\n".join(out)


def figure_order(stem: str) -> tuple:
    m = re.match(r"fig(\d+)", stem)
    if m: return (0, int(m.group(1)), stem)
    if stem in SUPPLEMENTARY_ORDER: return (1, SUPPLEMENTARY_ORDER.index(stem), stem)
    return (2, 0, stem)


def figures_section(fig_dir: Path, report_captions: dict[str, str]) -> str:
    stems = sorted({p.stem for p in fig_dir.glob("*.png")}, key=figure_order)
    if not stems:
        return "*This run has no figures yet.*\n"
    parts = []
    for stem in stems:
        title, caption = FIGURES.get(stem, (stem.replace("_", " "), stem.replace("_", " ")))
        caption = report_captions.get(stem, caption)
        pdf = (fig_dir / f"{stem}.pdf").is_file()
        parts.append(f"## {title}\n\n```{{figure}} _static/figures/{stem}.png\n:alt: {caption}\n:width: 100%\n\n"
                     f"{caption}\n```\n")
        files = f'<a href="_static/figures/{stem}.png">{stem}.png</a>'
        if pdf: files += f', <a href="_static/figures/{stem}.pdf">{stem}.pdf</a>'
        parts.append(f"Files: {files}.\n")
    return "\n".join(parts)


def assemble(run_dir: Path, src: Path, profile: str) -> list[str]:
    "Fill the staging folder `src`; returns what the run lacks (the build refuses an incomplete run)."
    notes = []
    for p in DOCS.iterdir():
        if p.is_file() and p.suffix in (".md", ".py"): shutil.copy2(p, src / p.name)
    (src / "_static").mkdir(); (src / "_extra").mkdir(); (src / "notebooks").mkdir()

    # notebooks: the executed stage notebooks of the run, and the stage-less notebooks of nbs/ as they are
    stages = stage_notebooks()
    executed = {p.name: p for p in sorted((run_dir / "notebooks").glob("*.ipynb"))}
    numbered = sorted({p.name for p in NBS.glob("[0-9][0-9]*.ipynb")} | set(executed))
    explorer_note = ("```{note}\nThe ipywidgets panel of this notebook needs a running kernel, so this static page shows "
                     "its text form. The static export of the explorer is "
                     "<a href=\"../explorer.html\">explorer.html</a>.\n```")
    rows = []
    for name in numbered:
        is_stage = name in stages or name not in {p.name for p in NBS.glob("*.ipynb")}
        source = executed.get(name) if is_stage else NBS / name
        present = source is not None
        stage = f"`{stages.get(name, '?')}`" if is_stage else "none (shown as in nbs/)"
        if present:
            stage_notebook(source, src / "notebooks" / name, explorer_note if "explorer" in name else None)
            info = notebook_info(source)
        else:
            notes.append(f"stage notebook {name} has not been executed in this run")
            info = notebook_info(NBS / name)
        rows.append((name, stage, info, present))

    # figures (png, pdf) under _static/figures; the two HTML pages at the site root
    fig_dir = run_dir / "figures"
    dst_fig = src / "_static" / "figures"
    dst_fig.mkdir()
    if fig_dir.is_dir():
        for p in fig_dir.iterdir():
            if p.is_file() and p.suffix in (".png", ".pdf", ".svg"): shutil.copy2(p, dst_fig / p.name)
    for page in HTML_PAGES:
        if (fig_dir / page).is_file():
            shutil.copy2(fig_dir / page, src / "_extra" / page)
        else:
            notes.append(f"{page} is missing from {fig_dir}")

    # the report, its figure links pointing into the site
    report = run_dir / "tables" / "REPRODUCTION.md"
    captions = {}
    if report.is_file():
        text = report.read_text()
        captions = {m.group(2): m.group(1) for m in re.finditer(r"!\[([^\]]*)\]\(\.\./figures/([^)/]+)\.png\)", text)}
        (src / "report.md").write_text(re.sub(r"\]\(\.\./figures/", "](_static/figures/", text))
    else:
        notes.append(f"{report} is missing")

    run_note = (f"This site shows the **`{profile}`** run (`{run_dir.name}/`): its executed notebooks, figures and "
                f"report. The corpora are offline stand-ins for the paper's and the models are smaller unless the "
                f"profile says otherwise, so the numbers are this artifact's, not the paper's.")
    if (dst_fig / "fig1_design.png").is_file():   # Figure 1 at the top of the index, as in the README and the report
        run_note += ("\n\n![" + FIGURES["fig1_design"][1] + "](_static/figures/fig1_design.png)\n\n*" + FIGURES["fig1_design"][1] + "*")
    fill(src / "index.md", {"run": run_note, "notebooks": notebooks_table(rows)})
    fill(src / "api.md", {"modules": api_sections()})
    fill(src / "figures.md", {"figures": figures_section(dst_fig, captions)})
    return notes


def notebook_modules() -> list[tuple[str, str]]:
    "(module, notebook) for every notebook of nbs/ with a `default_exp`, in the notebooks' order."
    out = []
    for nb in sorted(NBS.glob("[0-9][0-9]*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            m = re.search(r"^#\|\s*default_exp\s+(\S+)", "".join(cell["source"]), re.M)
            if m: out.append((m.group(1), nb.name)); break
    return out


def api_sections() -> str:
    "One autodoc section per module, in the notebooks' order."
    return "\n".join(f"## `universal_features.{mod}`\n\nFrom `nbs/{nb}`.\n\n```{{eval-rst}}\n.. automodule:: universal_features.{mod}\n```\n"
                     for mod, nb in notebook_modules())


def fill(page: Path, parts: dict[str, str]) -> None:
    text = page.read_text()
    for key, value in parts.items():
        marker = f"<!-- uf:{key} -->"
        if marker not in text: raise BuildError(f"{page.name} lacks the marker {marker}")
        text = text.replace(marker, value)
    page.write_text(text)


def run_sphinx(src: Path, html: Path, profile: str, strict: bool) -> list[str]:
    warn_file = src.parent / f"{src.name}.warnings.log"
    env = dict(os.environ, UF_REPO_ROOT=str(REPO), UF_DOCS_PROFILE=profile, MPLBACKEND="Agg")
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-d", str(src.parent / f"{src.name}.doctrees"),
           "-w", str(warn_file), str(src), str(html)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    warnings = warn_file.read_text().splitlines() if warn_file.is_file() else []
    warn_file.unlink(missing_ok=True)
    shutil.rmtree(src.parent / f"{src.name}.doctrees", ignore_errors=True)
    if r.returncode != 0:
        raise BuildError("sphinx-build failed:\n" + (r.stderr or r.stdout).strip()[-4000:])
    messages = [w for w in warnings if "WARNING" in w or "ERROR" in w or "CRITICAL" in w]
    fatal = [w for w in messages if strict or "ERROR" in w or "CRITICAL" in w or any(f in w for f in FATAL_WARNINGS)]
    for w in messages:
        if w not in fatal: print(f"docs: {w}", file=sys.stderr)
    if fatal:
        raise BuildError(f"{len(fatal)} warning(s) mean a broken site:\n" + "\n".join(fatal))
    return messages


def build(run_dir: Path, out: Path, strict: bool = False, keep_staging: bool = False) -> float:
    t0 = time.monotonic()
    profile = profile_of(run_dir)
    if not sorted((run_dir / "notebooks").glob("*.ipynb")):
        raise BuildError(f"{run_dir} has no executed notebooks ({run_dir}/notebooks/*.ipynb): run "
                         f"`make reproduce PROFILE={profile}` first (or `uf-reproduce "
                         f"--profile {profile}`)")
    (REPO / "build").mkdir(exist_ok=True)
    # everything Sphinx and myst-nb write (sources, doctrees, jupyter_execute/ beside the HTML) stays under build/
    work = Path(tempfile.mkdtemp(prefix="docs.", dir=REPO / "build"))
    src, tmp_out = work / "src", work / "html"
    src.mkdir()
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        missing = assemble(run_dir, src, profile)
        if missing:
            raise BuildError(f"the {profile} run is incomplete ({'; '.join(missing)}): run "
                             f"`make reproduce PROFILE={profile}` first")
        run_sphinx(src, tmp_out, profile, strict)
        for page in ("index.html", *HTML_PAGES):
            if not (tmp_out / page).is_file(): raise BuildError(f"the build wrote no {page}")
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent)) / out.name
            out.rename(old)
        shutil.move(str(tmp_out), str(out))
        if old is not None: shutil.rmtree(old.parent, ignore_errors=True)
    finally:
        if keep_staging:
            shutil.rmtree(tmp_out, ignore_errors=True)
            print(f"docs: staging folder kept at {src}", file=sys.stderr)
        else: shutil.rmtree(work, ignore_errors=True)
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the documentation site of one reproduction run (offline).")
    ap.add_argument("--run-dir", type=Path, default=REPO / "runs" / "cpu",
                    help="a run directory written by `uf-reproduce` (default: runs/cpu)")
    ap.add_argument("--out", type=Path, default=REPO / "_docs", help="where the HTML site goes (default: _docs)")
    ap.add_argument("--strict", action="store_true", help="fail on every Sphinx warning")
    ap.add_argument("--keep-staging", action="store_true", help="keep the assembled Sphinx source folder under build/")
    a = ap.parse_args(argv)
    run_dir, out = a.run_dir.resolve(), a.out.resolve()
    try:
        secs = build(run_dir, out, strict=a.strict, keep_staging=a.keep_staging)
    except BuildError as e:
        print(f"build_docs: error: {e}", file=sys.stderr)
        return 1
    print(f"built {out / 'index.html'} from {run_dir} in {secs:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
