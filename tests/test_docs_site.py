"""The documentation site: it builds with no warning, works offline, and renders in a browser.

One session fixture builds the site with ``sphinx-build -W --keep-going``
into a temporary folder (the build runs the gallery's examples and the
notebooks). The static checks read the HTML and CSS it wrote; the browser
checks open pages from disk in headless Chromium through selenium and
chromedriver (Debian's ``chromium`` and ``chromium-driver``). Without them
the browser tests skip with the reason, except when ``CI`` is set: there a
missing browser is a failure, not a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
IN_CI = bool(os.environ.get("CI"))

# The pages the browser opens: an LSTM derivation, a gallery page with a
# figure, the API index, the front page.
PAGES = ("bptt/lstm.html", "auto_examples/vanishing_gradients.html", "reference/api.html",
         "index.html")
# TeX a renderer left untouched: delimiters, or a command between dollars.
RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\$[^$\s][^$\n]*\\[A-Za-z]+|\\begin\{")
# A URL the page would fetch from the network: scripts, stylesheets, fonts, images.
NETWORK_FETCH = re.compile(
    r"<(?:script|img|iframe|source)\b[^>]*\bsrc=[\"'](?:https?:)?//"
    r"|<link\b[^>]*\bhref=[\"'](?:https?:)?//[^>]*>"
    r"|url\(\s*[\"']?(?:https?:)?//|@import\s+[\"']?(?:url\()?[\"']?(?:https?:)?//",
    re.IGNORECASE)


def unavailable(reason: str) -> None:
    """Skip, or fail where CI promised the tools (README's test command installs the
    [docs] extra, .ci/run installs chromium and chromium-driver)."""
    if IN_CI:
        pytest.fail(f"{reason} (CI is set)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The site built once: ``sphinx-build -W --keep-going -b html docs <tmp>``."""
    try:
        import myst_nb  # noqa: F401
        import sphinx  # noqa: F401
        import sphinx_gallery  # noqa: F401
    except ImportError as err:
        unavailable(f"the [docs] extra is not installed ({err})")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
         "-d", str(out / ".doctrees"), str(DOCS), str(out / "html")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    log = proc.stdout[-4000:] + proc.stderr[-8000:]
    assert proc.returncode == 0, f"sphinx-build failed:\n{log}"
    warnings = [line for line in proc.stderr.splitlines()
                if re.search(r"\b(WARNING|ERROR|CRITICAL)\b:", line)]
    assert not warnings, "\n".join(warnings)
    return out / "html"


def test_build_has_the_sections(site):
    for page in ("index.html", "quickstart.html", "bptt/index.html", "notebooks/index.html",
                 "auto_examples/index.html", "howto/gpu.html", "howto/mpi.html",
                 "howto/interop.html", "howto/threads.html", "howto/checkpoints.html",
                 "performance.html", "guarantees.html", "reference/api.html", "search.html"):
        assert (site / page).is_file(), page
    # Every name of ``import scratchrnn`` links to its documentation.
    import scratchrnn

    api = (site / "reference" / "api.html").read_text(encoding="utf-8")
    for name in scratchrnn.__all__:
        assert re.search(r'<a class="reference internal" href="generated/[^"]+"[^>]*>'
                         rf'<code[^>]*><span class="pre">{re.escape(name)}</span>', api), name
    # The executed 20-line example printed its losses onto the quickstart page.
    assert re.search(r"step 300\s+mse 0\.\d+", (site / "quickstart.html").read_text())


def test_math_renderer_is_bundled(site):
    js = site / "_static" / "mathjax" / "tex-chtml.js"
    assert js.is_file() and js.stat().st_size > 100_000
    assert (site / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    lstm = (site / "bptt" / "lstm.html").read_text(encoding="utf-8")
    assert '_static/mathjax/tex-chtml.js' in lstm


def test_nothing_is_fetched_from_the_network(site):
    offenders = []
    for path in sorted(site.rglob("*")):
        if path.suffix not in (".html", ".css") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in NETWORK_FETCH.finditer(text):
            offenders.append(f"{path.relative_to(site)}: {m.group(0)[:120]}")
    assert not offenders, "\n".join(offenders[:20])


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Chromium through selenium and chromedriver, with the browser log kept."""
    try:
        from selenium import webdriver
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[docs]')")
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser",
                                                 "google-chrome") if shutil.which(n)), None)
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        unavailable("Chromium or chromedriver not found (Debian: apt-get install chromium "
                    "chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1280,900",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts,
                              service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def open_page(driver, url: str) -> None:
    driver.get_log("browser")                       # drop what the previous page logged
    driver.get(url)


def wait_for_math(driver) -> None:
    """Until MathJax, where the page loads it, has typeset everything."""
    driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const start = Date.now();
        (function wait() {
            if (!document.querySelector('script[src*="mathjax"]')) return done(null);
            if (window.MathJax && MathJax.startup && MathJax.startup.promise)
                return MathJax.startup.promise.then(() => done(null), e => done(String(e)));
            if (Date.now() - start > 20000) return done('MathJax did not start within 20 s');
            setTimeout(wait, 100);
        })();""")


def visible_prose(driver) -> str:
    """The page's text without code, scripts and typeset math."""
    return driver.execute_script("""
        const root = (document.querySelector('main') || document.body).cloneNode(true);
        root.querySelectorAll('pre, code, script, style, mjx-container, .highlight, textarea')
            .forEach(e => e.remove());
        return root.textContent;""")


def wait_for_images(driver) -> list[str]:
    """Scroll every image into view, wait for it, return those that failed."""
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const imgs = Array.from(document.images);
        imgs.forEach(i => { i.loading = 'eager'; i.scrollIntoView(); });
        const start = Date.now();
        (function wait() {
            if (imgs.every(i => i.complete) || Date.now() - start > 20000)
                return done(imgs.filter(i => !(i.complete && i.naturalWidth > 0))
                               .map(i => i.getAttribute('src')));
            setTimeout(wait, 100);
        })();""")


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_offline(site, browser, page):
    check_page(site, browser, page)


def test_notebook_pages_render_offline(site, browser):
    pages = sorted(p.relative_to(site).as_posix() for p in (site / "notebooks").glob("*.html")
                   if p.name != "index.html")
    if not pages:
        pytest.skip("no notebook in notebooks/ in this tree")
    for page in pages:
        check_page(site, browser, page)
        assert browser.execute_script(
            "return document.querySelectorAll('.cell_output, .output').length") > 0, \
            f"{page} shows no output: was it executed?"


def check_page(site: Path, browser, page: str) -> None:
    """Every equation typeset, no raw TeX, every image loaded, nothing fetched from
    the network, no console error."""
    path = site / page
    assert path.is_file(), f"{page} was not built"
    open_page(browser, path.as_uri())
    error = wait_for_math(browser)
    assert error is None, error

    math = browser.execute_script("""
        const m = Array.from(document.querySelectorAll('.math'));
        return [m.length, m.filter(e => !e.querySelector('mjx-container')).length];""")
    total, untypeset = math
    assert untypeset == 0, f"{untypeset} of {total} equations not typeset on {page}"
    if page.startswith("bptt/"):
        assert total > 10, f"only {total} equations on {page}"
    raw = RAW_TEX.findall(visible_prose(browser))
    assert not raw, f"raw TeX left on {page}: {raw[:5]}"

    failed = wait_for_images(browser)
    assert not failed, f"images that did not load on {page}: {failed}"
    if page.startswith("auto_examples/"):
        assert browser.execute_script(
            "return Array.from(document.images).filter(i => i.src.includes('sphx_glr')).length"
        ) > 0, "the gallery page shows no figure"

    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    remote = [u for u in fetched if not u.startswith(("file:", "data:", "blob:"))]
    assert not remote, f"{page} fetched from the network: {remote}"

    time.sleep(0.2)                                 # late errors (fonts) reach the log
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, f"console errors on {page}:\n" + "\n".join(severe)


def test_search_finds_lstm(site, browser):
    open_page(browser, (site / "search.html").as_uri() + "?q=lstm")
    hits = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const start = Date.now();
        (function wait() {
            const n = document.querySelectorAll('#search-results li, ul.search li').length;
            if (n > 0 || Date.now() - start > 30000) return done(n);
            setTimeout(wait, 200);
        })();""")
    assert hits > 0, "search.html?q=lstm found nothing"
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, "console errors on search.html:\n" + "\n".join(severe)
