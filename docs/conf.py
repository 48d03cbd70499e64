"""Sphinx configuration of the universal_features documentation site.

Built offline by `scripts/build_docs.py`, which copies this file and the pages of docs/ into a staging folder together
with the executed notebooks, figures and report of one run. Notebooks are rendered as they are: nothing is executed.
"""
import os
import sys
from pathlib import Path

# the builder sets UF_REPO_ROOT; otherwise this file is assumed to sit in <repo>/docs
REPO = Path(os.environ.get("UF_REPO_ROOT") or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(REPO))

from universal_features import __version__  # noqa: E402

project = "universal_features"
author = "universal_features developers"
copyright = "universal_features developers"
version = release = __version__
run_profile = os.environ.get("UF_DOCS_PROFILE", "")

extensions = ["myst_nb", "sphinx.ext.autodoc"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "_extra", "**.ipynb_checkpoints", "conf.py"]
root_doc = "index"

# --- MyST / myst-nb: the notebooks are already executed (by the runner); render their stored outputs only
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"
nb_merge_streams = True
# The site must work offline: no widget JavaScript from a CDN. Widget outputs fall back to their text form
# (the explorer's static page, explorer.html, stands in for the interactive panel).
nb_ipywidgets_js = {}
nb_mime_priority_overrides = [
    ("html", "application/vnd.jupyter.widget-view+json", None),
    ("html", "application/vnd.jupyter.widget-state+json", None),
]

# --- autodoc: the modules are plain modules; importing them runs nothing heavy
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"

# --- HTML
html_theme = "furo"
html_title = f"universal_features {release}" + (f" ({run_profile} run)" if run_profile else "")
html_static_path = ["_static"]
html_extra_path = ["_extra"]      # explorer.html and case_study_dashboards.html, copied as they are
html_show_sourcelink = False
html_copy_source = False
