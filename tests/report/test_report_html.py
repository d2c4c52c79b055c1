"""report.html in a real browser: headless Chromium loads the page built from a synthetic
table (tests/report/synthetic.py) and every figure decodes, every section is there, nothing
is logged to the console, and a screenshot is not blank.

The page has no JavaScript of its own; the test loads a copy with a probe script that, on
``load``, writes a JSON verdict into ``<pre id="disbench-verdict">``, read back with
``--dump-dom``. Console messages come from Chromium's log on stderr (``--enable-logging``).

Under CI=true these must run: a missing Chromium fails them instead of skipping (.ci/run
installs it). Set DISBENCH_REPORT_SCREENSHOT=PATH to keep a copy of the screenshot.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from synthetic import synthetic_table, traversal_roots

from disbench.report.build import build_report

TITLE = "Synthetic report"
SECTIONS = [
    "Overview",
    "Scores per dataset and model",
    "Rank correlation between metrics",
    "Distributions per model",
    "Scores against regularisation strength",
    "Total correlation of the sampled and the mean representation",
    "Variance: model, hyperparameter, seed",
    "Unsupervised scores against metrics",
    "Model selection without labels: UDR",
    "Model selection transfer",
    "Fairness",
    "Latent traversals",
]
WIDTH = 1280
TIMEOUT_S = 60

# Injected first in <head>, so it also sees what goes wrong while the page is parsed.
PROBE = """<script>
(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    var t = e.target;
    errors.push(t && t.tagName ? "failed to load <" + t.tagName.toLowerCase() + "> "
                + String(t.alt || t.src || t.href || "").slice(0, 80)
                : "uncaught: " + e.message);
  }, true);
  ["error", "warn"].forEach(function (level) {
    var original = console[level];
    console[level] = function () {
      errors.push("console." + level + ": " + Array.prototype.join.call(arguments, " "));
      return original.apply(console, arguments);
    };
  });
  window.addEventListener("load", function () {
    var imgs = Array.prototype.slice.call(document.images);
    var body = document.body.clientWidth;
    var verdict = {
      images: imgs.length,
      broken: imgs.filter(function (i) {
        return !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0);
      }).map(function (i) { return i.alt; }),
      no_alt: imgs.filter(function (i) { return !i.alt; }).length,
      too_wide: imgs.filter(function (i) { return i.getBoundingClientRect().width > body + 1; })
                    .map(function (i) { return i.alt; }),
      page_width: document.documentElement.scrollWidth,
      window_width: window.innerWidth,
      headings: Array.prototype.map.call(document.querySelectorAll("h1, h2"),
                                         function (h) { return h.textContent; }),
      missing: document.querySelectorAll(".missing").length,
      errors: errors
    };
    var pre = document.createElement("pre");
    pre.id = "disbench-verdict";
    pre.textContent = JSON.stringify(verdict);
    document.body.appendChild(pre);
  });
})();
</script>"""
VERDICT = re.compile(r'<pre id="disbench-verdict">(.*?)</pre>', re.S)
CONSOLE = re.compile(r":CONSOLE[:(]|Uncaught")


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no chromium: .ci/run must install it (apt-get install chromium)")
        pytest.skip("no chromium here; install it with `apt-get install chromium`")
    return binary


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """The report folder of two datasets, every score, and a traversal.png per run: every
    exhibit has something to show."""
    root = tmp_path_factory.mktemp("report")
    table = synthetic_table(datasets=("dsprites", "shapes3d"))
    build_report(table, root / "out", title=TITLE,
                 study_roots=traversal_roots(table, root / "studies"))
    return root / "out"


def browse(binary: str, page: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium on ``page`` with a fresh profile; its log goes to stderr."""
    profile = workdir / f"profile-{len(list(workdir.glob('profile-*')))}"
    command = [binary, "--headless=new", "--no-sandbox", "--disable-gpu",
               f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
               "--disable-extensions", "--hide-scrollbars", "--enable-logging=stderr",
               "--v=0", *args, page.resolve().as_uri()]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"chromium did not finish in {TIMEOUT_S} s: {e.stderr!s:.2000}")


def probe(binary: str, page_html: str, workdir: Path) -> tuple[dict, list[str]]:
    """The probe's verdict on a page and the console lines of Chromium's log."""
    assert "<head>" in page_html
    page = workdir / "probe.html"
    page.write_text(page_html.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    out = browse(binary, page, workdir, f"--window-size={WIDTH},2000",
                 "--virtual-time-budget=5000", "--dump-dom")
    found = VERDICT.search(out.stdout)
    assert out.returncode == 0 and found, \
        f"no verdict (exit {out.returncode}); stderr:\n{out.stderr[-3000:]}"
    console = [line for line in out.stderr.splitlines() if CONSOLE.search(line)]
    return json.loads(html.unescape(found.group(1))), console


def test_page_loads_with_every_figure_and_section_and_no_console_error(chromium, report,
                                                                       tmp_path):
    page_html = (report / "report.html").read_text(encoding="utf-8")
    # self-contained and script-free: nothing for the browser to fetch or run
    assert "<script" not in page_html.lower() and "<link" not in page_html.lower()
    sources = re.findall(r'<img [^>]*src="([^"]*)"', page_html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)

    verdict, console = probe(chromium, page_html, tmp_path)

    pngs = [*(report / "figures").glob("*.png"), *(report / "traversals").glob("*.png")]
    assert verdict["images"] == len(sources) == len(pngs) == 37  # 2x9 + 7 transfer + 12 runs
    assert verdict["broken"] == [], "images that did not decode"
    assert verdict["no_alt"] == 0
    assert verdict["too_wide"] == [], "images wider than the page's column"
    assert verdict["page_width"] <= verdict["window_width"], "the page scrolls sideways"
    assert verdict["headings"] == [TITLE] + [f"{n}. {s}" for n, s in enumerate(SECTIONS, 1)]
    assert verdict["missing"] == 0, "an exhibit says it is missing on a complete table"
    assert verdict["errors"] == [] and console == [], (verdict["errors"], console)


def test_probe_sees_a_broken_image_and_a_script_error(chromium, tmp_path):
    """The checks above are not vacuous: a bad image and an uncaught error are caught."""
    page = ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>t</title></head><body>'
            '<h1>t</h1><img alt="bad" src="data:image/png;base64,iVBORw0KGgoAAAA">'
            "<script>undefinedFunction();</script></body></html>")
    verdict, console = probe(chromium, page, tmp_path)
    assert verdict["images"] == 1 and verdict["broken"] == ["bad"]
    assert any("failed to load <img> bad" in e for e in verdict["errors"])
    assert any("uncaught" in e and "undefinedFunction" in e for e in verdict["errors"])
    assert any("undefinedFunction" in line for line in console), console


def test_screenshot_is_not_blank(chromium, report, tmp_path):
    shot = tmp_path / "report.png"
    out = browse(chromium, report / "report.html", tmp_path, f"--window-size={WIDTH},5000",
                 f"--screenshot={shot}")
    assert out.returncode == 0 and shot.is_file(), out.stderr[-3000:]
    with Image.open(shot) as image:
        assert image.size == (WIDTH, 5000)
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20) or []
        ink = sum(n for n, c in colours if min(c) < 200) / (image.width * image.height)
    assert len(colours) > 200, f"{len(colours)} distinct colours: a blank page?"
    assert ink > 0.02, f"only {ink:.1%} of the pixels are not near-white"
    if os.environ.get("DISBENCH_REPORT_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["DISBENCH_REPORT_SCREENSHOT"])
