"The documentation site: built from the smoke run, served locally, opened in headless Chromium; and CITATION.cff."
import functools
import http.server
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BUILDER = REPO / "scripts" / "build_docs.py"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARXIV_ID = "2410.12391"


def _version() -> str:
    ns = {}
    exec((REPO / "universal_features" / "__init__.py").read_text(), ns)
    return ns["__version__"]


# --- CITATION.cff --------------------------------------------------------------------------------------------------

def test_citation_cff_parses_and_cites_the_paper():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["type"] == "software" and cff["title"].startswith("universal_features")
    assert str(cff["version"]) == _version()
    pref = cff["preferred-citation"]
    assert pref["type"] == "article"
    assert pref["title"] == "Tracking Universal Features Through Fine-Tuning and Model Merging"
    assert [a["family-names"] for a in pref["authors"]] == ["Horn", "Elliott"]
    assert any(ARXIV_ID in str(i["value"]) for i in pref["identifiers"])
    cite_page = (REPO / "docs" / "cite.md").read_text()
    assert ARXIV_ID in cite_page and _version() in cite_page and "CITATION.cff" in cite_page


# --- the builder ---------------------------------------------------------------------------------------------------

def _build(run_dir: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BUILDER), "--run-dir", str(run_dir), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)


def test_build_docs_needs_executed_notebooks(tmp_path):
    run_dir = tmp_path / "runs" / "cpu"
    (run_dir / "notebooks").mkdir(parents=True)
    r = _build(run_dir, tmp_path / "site")
    assert r.returncode != 0
    assert "no executed notebooks" in r.stderr and "make reproduce" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr        # one clear error, no traceback
    assert not (tmp_path / "site").exists()                         # nothing half-written


@pytest.fixture(scope="module")
def site(smoke_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "site"
    r = _build(smoke_run, out)
    assert r.returncode == 0, f"build_docs.py failed:\n{r.stdout}\n{r.stderr}"
    assert (out / "index.html").is_file()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "temporary folders left beside --out"
    return out


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


def _require_chromium() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: the docs test needs headless Chromium. Run `bash scripts/setup.sh` as "
                    "root (or `apt-get install chromium chromium-driver`).", pytrace=False)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    "A function that returns the module's headless Chromium (started on first use; fails the test if it is missing)."
    drivers = []

    def get():
        if drivers: return drivers[0]
        _require_chromium()
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        opts = webdriver.ChromeOptions()
        opts.binary_location = str(CHROMIUM)
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--window-size=1280,1024",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
            opts.add_argument(flag)
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)
        driver.set_page_load_timeout(30)
        drivers.append(driver)
        return driver

    yield get
    for d in drivers: d.quit()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


_IMAGES_JS = """return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]);"""
_LINKS_JS = """return Array.from(document.querySelectorAll('a[href]')).map(a => [a.getAttribute('href'), a.href]);"""


def _open(browser, base: str, page: str) -> tuple[list, list]:
    "Load one page in the browser; check it rendered; return its images and links."
    url = urllib.parse.urljoin(base, page)
    assert _status(url) == 200, f"{page}: HTTP status is not 200"
    browser.get(url)
    title = browser.title.strip()
    assert title and "404" not in title, f"{page}: title {title!r}"
    assert "Error code: 404" not in browser.page_source, f"{page}: the server answered 404"
    return browser.execute_script(_IMAGES_JS), browser.execute_script(_LINKS_JS)


@pytest.mark.slow
def test_site_pages_render_in_chromium(browser, site, server, smoke_run):
    _require_chromium()
    browser = browser()
    non_stage = {p.stem for p in (REPO / "nbs").glob("[0-9][0-9]*.ipynb")}   # every notebook of nbs/ has a page
    notebooks = sorted({p.stem for p in (smoke_run / "notebooks").glob("*.ipynb")} | non_stage)
    for nb in notebooks:
        assert (site / "notebooks" / f"{nb}.html").is_file(), f"no page for notebook {nb}"
    pages = ["index.html", "api.html", "cite.html", "figures.html", "report.html",
             *[f"notebooks/{nb}.html" for nb in notebooks]]
    links, broken_images = {}, []
    n_images = {}
    for page in pages:
        images, page_links = _open(browser, server, page)
        n_images[page] = len(images)
        broken_images += [f"{page}: {src} (complete={done}, naturalWidth={w})" for src, done, w in images if not w]
        for raw, absolute in page_links:
            if raw.startswith("#"): continue
            target = absolute.split("#", 1)[0]
            if target.startswith(server): links.setdefault(target, page)
    assert not broken_images, "images that do not render:\n" + "\n".join(broken_images)

    # every figure of the run is on the figures page; the report shows its figures too
    figures = sorted(p.name for p in (smoke_run / "figures").glob("*.png"))
    assert n_images["figures.html"] >= len(figures) > 0
    figures_html = (site / "figures.html").read_text()
    assert all(f in figures_html for f in figures), "a figure of the run is missing from figures.html"
    assert n_images["report.html"] > 0 and n_images["index.html"] > 0
    assert "fig1_design.png" in (site / "index.html").read_text()          # Figure 1 on the index page
    for page in ("explorer.html", "case_study_dashboards.html"):
        assert f'href="{page}"' in figures_html and f'href="{page}"' in (site / "index.html").read_text()

    # the API page documents every module
    api = (site / "api.html").read_text()
    modules = sorted(p.stem for p in (REPO / "universal_features").glob("*.py") if not p.stem.startswith("_"))
    assert {"files", "lineage", "run", "case_studies", "activations"} <= set(modules)
    for mod in modules:
        assert f'id="module-universal_features.{mod}"' in api, f"universal_features.{mod} is not documented"

    # every internal link resolves
    bad = [f"{url} (linked from {page}): {code}" for url, page in sorted(links.items())
           if (code := _status(url)) != 200]
    assert not bad, "broken internal links:\n" + "\n".join(bad)
    assert any(u.endswith("/explorer.html") for u in links)


@pytest.mark.slow
def test_explorer_page_has_dashboards(browser, site, server):
    _require_chromium()
    browser = browser()
    from selenium.webdriver.common.by import By
    for page, least in (("explorer.html", 1), ("case_study_dashboards.html", 1)):
        images, _ = _open(browser, server, page)
        assert all(w for _, _, w in images), f"{page}: an image does not render"
        boards = browser.find_elements(By.CLASS_NAME, "uf-dashboard")
        assert len(boards) >= least, f"{page}: no elements with class uf-dashboard"
        assert all(b.text.strip() for b in boards[:5]), f"{page}: empty dashboards"
