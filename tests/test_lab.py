"""JupyterLab for real: `make lab`'s server (scripts/lab.sh) driven in headless Chromium.

The explorer notebook runs in the Lab UI on the project's kernel and its widgets are clicked; a stage notebook runs
on the smoke run and shows its results. The server gets a temporary copy of nbs/ whose notebooks name the
`universal-features` kernel and open a temporary copy of the smoke run (so neither the repository nor the run is
written to), isolated Jupyter settings, token auth, and no extension manager, news or update check (no internet).
"""
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAB_SH = REPO / "scripts" / "lab.sh"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
KERNEL = "universal-features"
START_S = 300        # setup.sh (a no-op when the venv is current) + JupyterLab's start on a 2-core machine
PAGE_S = 120         # the Lab page's first load (bundles, extensions) and a notebook's opening
RUN_S = 300          # a notebook's run: kernel start (torch import) and its cells
CHANGE_S = 90        # a widget change: a round trip through the kernel and the dashboards' redraw


def _require_chromium() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: the JupyterLab tests drive headless Chromium. Run `bash scripts/setup.sh` "
                    "as root (or `apt-get install chromium chromium-driver`).")


# --- the server ----------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy(src: Path, dst: Path) -> Path:
    "A copy of a folder's regular files and folders (not the IPC sockets of a kernel running there, nor checkpoints)."
    def ignore(d, names):
        return [n for n in names if n == ".ipynb_checkpoints" or not (Path(d, n).is_file() or Path(d, n).is_dir())]
    shutil.copytree(src, dst, ignore=ignore)
    return dst


def _lab_notebooks(dst: Path, run_dir: Path) -> Path:
    "A copy of nbs/ whose notebooks run on the project's kernel and open `run_dir` (their `parameters` cell)."
    for path in _copy(REPO / "nbs", dst).glob("*.ipynb"):
        nb = json.loads(path.read_text())
        nb["metadata"]["kernelspec"] = {"name": KERNEL, "display_name": "Python (universal_features)", "language": "python"}
        for cell in nb["cells"]:
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                src = "".join(cell["source"])
                cell["source"] = src.rstrip("\n") + f"\nrun_dir = {str(run_dir)!r}  # set by tests/test_lab.py\n"
        path.write_text(json.dumps(nb, indent=1))
    return dst


def _settings(d: Path) -> Path:
    "JupyterLab user settings: never ask for or fetch news, render every cell (so each cell is in the page)."
    for plugin, values in {"@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
                           "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"}}.items():
        f = d / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    return d


class Lab:
    "A JupyterLab server in a subprocess, started through scripts/lab.sh."
    def __init__(self, tmp: Path, root: Path):
        self.port, self.token, self.root = _free_port(), secrets.token_hex(16), root
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "lab.log"
        env = {**os.environ, "PORT": str(self.port), "JUPYTER_CONFIG_DIR": str(tmp / "config"),
               "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
               "JUPYTERLAB_SETTINGS_DIR": str(_settings(tmp / "settings")), "UF_LAB_DIR": str(root)}
        env.pop("JUPYTER_TOKEN", None)
        cmd = ["bash", str(LAB_SH), "--no-browser", f"--IdentityProvider.token={self.token}",
               "--ServerApp.port_retries=0", "--LabApp.extension_manager=readonly"]
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def url(self, path: str) -> str:
        return f"{self.base}{path}{'&' if '?' in path else '?'}token={self.token}"

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(self.url(path), method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 4000) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-n:]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"scripts/lab.sh exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                if self.api("/api/status") is not None: break
            time.sleep(0.5)
        else:
            raise AssertionError(f"JupyterLab did not answer on {self.base} within {START_S} s:\n{self.log_tail()}")
        root = Path(self.api("/api/contents")["path"] or ".")
        assert {"09_explorer.ipynb", "11_report.ipynb"} <= {c["name"] for c in self.api("/api/contents")["content"]}, \
            f"the server does not serve the notebooks of {self.root} ({root})"
        specs = self.api("/api/kernelspecs")["kernelspecs"]
        assert KERNEL in specs, f"the {KERNEL!r} kernel is not registered (lab.sh registers it): {sorted(specs)}"
        assert Path(specs[KERNEL]["spec"]["argv"][0]).resolve() == (REPO / ".venv" / "bin" / "python").resolve() or \
            Path(specs[KERNEL]["spec"]["argv"][0]).resolve() == Path(sys.executable).resolve(), specs[KERNEL]["spec"]["argv"]

    def shutdown_session(self, notebook: str) -> None:
        "Shut the notebook's kernel down (a test's kernel is not left running beside the next test's)."
        for s in self.api("/api/sessions"):
            if s["path"] == notebook:
                with contextlib.suppress(OSError, urllib.error.URLError):
                    self.api(f"/api/sessions/{s['id']}", method="DELETE")

    def stop(self) -> None:
        "Shut the server and its kernels down; terminate whatever of its process tree is left."
        import psutil
        try: tree = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess: tree = []
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
            self.api("/api/shutdown", method="POST")       # stops the kernels too
        try: self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired: self.proc.terminate()
        gone, alive = psutil.wait_procs(tree, timeout=15)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess): p.kill()
        with contextlib.suppress(subprocess.TimeoutExpired): self.proc.wait(timeout=10)
        self.log.close()
        self.stray = [p.pid for p in alive]


@pytest.fixture(scope="module")
def lab(smoke_run, tmp_path_factory):
    _require_chromium()
    tmp = tmp_path_factory.mktemp("lab")
    run_dir = _copy(smoke_run, tmp / "run")
    server = Lab(tmp, _lab_notebooks(tmp / "nbs", run_dir))
    server.run_dir = run_dir
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
    assert not server.stray, f"processes of the JupyterLab server outlived its shutdown: {server.stray}"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
                 "--window-size=1600,1200", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(PAGE_S)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


# --- driving the Lab UI --------------------------------------------------------------------------------------------

def _wait(driver, cond, timeout: float, what: str, lab: Lab | None = None):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5).until(cond)
    except TimeoutException:
        shot = Path(lab.log_path.parent if lab else "/tmp") / f"timeout-{int(time.time())}.png"
        with contextlib.suppress(Exception): driver.save_screenshot(str(shot))
        raise AssertionError(f"timed out after {timeout} s waiting for {what} (screenshot: {shot})"
                             + (f"\nserver log:\n{lab.log_tail()}" if lab else "")) from None


_CELLS_JS = """
const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
if (!panel) return null;
return Array.from(panel.querySelectorAll('.jp-Cell.jp-CodeCell')).map(c => {
  const p = c.querySelector('.jp-InputArea-prompt');
  return p ? p.textContent.trim() : '';
});"""

_ERRORS_JS = """
const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
return Array.from(panel.querySelectorAll(
  '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]'))
  .map(e => e.textContent).filter(t => /Error|Traceback/.test(t));"""


def _open_notebook(driver, lab: Lab, name: str) -> None:
    "Open a notebook in the Lab UI; wait until it is shown and its kernel (the project's) is idle."
    from selenium.webdriver.common.by import By
    driver.get(lab.url(f"/lab/tree/{name}"))
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-CodeCell"),
          PAGE_S, f"JupyterLab to show {name}", lab)
    tab = _wait(driver, lambda d: [t for t in d.find_elements(By.CSS_SELECTOR, ".lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel")
                                   if t.text == name], PAGE_S, f"{name}'s tab to be the current one", lab)
    assert tab

    def kernel_idle(_):
        sessions = [s for s in lab.api("/api/sessions") if s["path"] == name]
        return sessions and sessions[0]["kernel"]["execution_state"] == "idle" and sessions[0]
    session = _wait(driver, kernel_idle, RUN_S, f"{name}'s kernel to start", lab)
    assert session["kernel"]["name"] == KERNEL, f"{name} runs on kernel {session['kernel']['name']!r}, not {KERNEL!r}"
    _wait(driver, lambda d: "universal_features" in d.execute_script(
        "const e = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-KernelName');"
        "return e ? e.textContent : '';"), PAGE_S, "the toolbar to name the project's kernel", lab)


def _run_all(driver, lab: Lab, name: str) -> list[str]:
    "Run > Run All Cells through the menu bar; wait until every code cell ran or one failed; return the prompts."
    from selenium.webdriver.common.by import By
    run_menu = _wait(driver, lambda d: [m for m in d.find_elements(By.CSS_SELECTOR, "#jp-MainMenu .lm-MenuBar-item")
                                        if m.text.strip() == "Run"], PAGE_S, "the Run menu", lab)[0]
    run_menu.click()
    item = _wait(driver, lambda d: [i for i in d.find_elements(By.CSS_SELECTOR, ".lm-Menu-item")
                                    if i.is_displayed() and i.text.split("\n")[0].strip() == "Run All Cells"],
                 30, "Run All Cells in the Run menu", lab)[0]
    item.click()
    _wait(driver, lambda d: "[*]" in "".join(d.execute_script(_CELLS_JS) or []) or
          all(p.startswith("[") and p[1:-2].isdigit() for p in d.execute_script(_CELLS_JS) or ["x"]),
          60, f"{name}'s cells to start running", lab)

    def finished(d):
        prompts = d.execute_script(_CELLS_JS) or []
        if any("*" in p for p in prompts): return False
        done = [p for p in prompts if p[1:-2].isdigit()]
        return (len(done) == len(prompts) or d.execute_script(_ERRORS_JS)) and prompts
    prompts = _wait(driver, finished, RUN_S, f"{name} to finish running", lab)
    errors = driver.execute_script(_ERRORS_JS)
    assert not errors, f"{name} failed in JupyterLab:\n" + "\n".join(e[-3000:] for e in errors)
    assert all(p[1:-2].isdigit() for p in prompts), f"{name}: not every cell ran: {prompts}"
    return prompts


_BOARDS_JS = """
return Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .uf-dashboard')).map(e => {
  const r = e.getBoundingClientRect();
  return {text: e.textContent, left: r.left, right: r.right, top: r.top, width: r.width};
});"""


def _boards(driver) -> list[dict]:
    return driver.execute_script(_BOARDS_JS)


def _check_pair(boards: list[dict], what: str) -> None:
    assert len(boards) == 2, f"{what}: {len(boards)} elements with class uf-dashboard, not 2"
    left, right = sorted(boards, key=lambda b: b["left"])
    assert all("feature #" in b["text"] for b in boards), f"{what}: a dashboard does not name its feature"
    assert left["width"] > 100 and right["width"] > 100, f"{what}: a dashboard is not drawn ({boards})"
    assert right["left"] >= left["right"] - 1 and abs(right["top"] - left["top"]) < 20, \
        f"{what}: the dashboards are not side by side ({boards})"


def _redrawn(driver, before: list[str], what: str, lab: Lab) -> list[dict]:
    "Wait until both dashboards show something else than `before` (and still name a feature)."
    def changed(d):
        boards = _boards(d)
        texts = [b["text"] for b in boards]
        return (len(boards) == 2 and all("feature #" in t for t in texts)
                and all(t != b for t, b in zip(texts, before)) and boards)
    boards = _wait(driver, changed, CHANGE_S, f"both dashboards to redraw after {what}", lab)
    _check_pair(boards, f"after {what}")
    return boards


# --- the tests -----------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_explorer_widgets_work_in_jupyterlab(lab, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    name = "09_explorer.ipynb"
    _open_notebook(browser, lab, name)
    _run_all(browser, lab, name)

    # the panel is rendered as widgets (not as a text repr) and shows two dashboards side by side
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .widget-dropdown select"),
          PAGE_S, "the explorer's widgets to render", lab)
    panel = browser.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden)")
    assert panel.find_elements(By.CSS_SELECTOR, ".jupyter-widgets.widget-vbox"), "the explorer panel is not a rendered widget"
    assert not [e for e in panel.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output pre")
                if e.text.startswith("VBox(")], "the explorer is shown as a text repr"
    boards = _wait(browser, lambda d: len(_boards(d)) == 2 and _boards(d), CHANGE_S, "the two dashboards", lab)
    _check_pair(boards, "the explorer's first selection")

    # a transition with features in a category other than the first (the smoke run's own counts)
    counts = json.loads((lab.run_dir / "results.json").read_text())["explorer"]["counts"]
    transitions = list(counts)
    dropdowns = panel.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")
    assert len(dropdowns) == 1, f"{len(dropdowns)} dropdowns in the notebook"
    select = Select(dropdowns[0])
    assert len(select.options) == len(transitions) >= 2, [o.text for o in select.options]
    index = next(i for i, t in enumerate(transitions) if i > 0 and counts[t]["persist"] and counts[t]["emerge"])

    # 1. the transition (the dropdown)
    before = [b["text"] for b in boards]
    select.select_by_index(index)
    boards = _redrawn(browser, before, f"choosing the transition {select.first_selected_option.text!r}", lab)

    # 2. the category (the toggle buttons)
    buttons = {b.text.strip(): b for b in panel.find_elements(By.CSS_SELECTOR, ".widget-toggle-buttons button")}
    assert set(buttons) >= {"persist", "disappear", "emerge"}, sorted(buttons)
    assert "mod-active" in buttons["persist"].get_attribute("class")
    before = [b["text"] for b in boards]
    buttons["emerge"].click()
    boards = _redrawn(browser, before, "choosing the category 'emerge'", lab)
    assert "emerge:" in boards[0]["text"] + boards[1]["text"], "the dashboards do not show an emerging feature"
    assert "mod-active" in buttons["emerge"].get_attribute("class")
    lab.shutdown_session(name)


@pytest.mark.slow
def test_stage_notebook_runs_in_jupyterlab(lab, browser):
    from selenium.webdriver.common.by import By
    name = "11_report.ipynb"
    _open_notebook(browser, lab, name)
    prompts = _run_all(browser, lab, name)
    assert len(prompts) > 5

    # its results: the claims table (markdown rendered as HTML) and the design figure
    panel = browser.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden)")
    tables = [t for t in panel.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output.jp-RenderedMarkdown table")
              if "verdict" in t.get_attribute("textContent")]
    assert tables, "the report's claims table is not rendered"
    rows = tables[0].find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 6, f"{len(rows)} claims in the table"   # few persist: fine-tuning and merging apart, then four more
    images = browser.execute_script(
        "return Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img'))"
        ".map(i => i.naturalWidth);")
    assert images and all(images), f"figures that do not render: {images}"
    assert (lab.run_dir / "figures" / "fig1_design.png").is_file()
    lab.shutdown_session(name)
