"""The HTML report: notebooks executed by papermill, exported by nbconvert, checked in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest

from ser_utils.errors import UserError
from ser_utils import cli
from ser_utils.analysis import report
from ser_utils.experiments import nbexec
from tests.test_analysis import fake_notebook, make_fake_sweep

SMALL_SWEEP = [("1d", "relu", 0.001), ("1d", "silu", 0.01), ("2d", "relu", 0.001), ("combined", "elu", 0.001)]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Appended to a copy of a page: after load, record how many <img> decoded (naturalWidth > 0).
IMAGE_CHECK_JS = ("<script>window.addEventListener('load',()=>{const i=[...document.images];"
                  "document.body.setAttribute('data-image-check',JSON.stringify({n:i.length,"
                  "ok:i.filter(x=>x.complete&&x.naturalWidth>0).length}));});</script>")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.images = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))


def links_of(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def local_target(page: Path, href: str) -> Path | None:
    """The file a relative link points to, or None for external links and anchors."""
    parsed = urlparse(href)
    if parsed.scheme or parsed.netloc or not parsed.path:
        return None
    return (page.parent / unquote(parsed.path)).resolve()


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory) -> Path:
    """A folder the notebooks accept as the (synthetic) demo corpus: setup() only needs its marker."""
    folder = tmp_path_factory.mktemp("demo-corpus")
    (folder / "demo_corpus.json").write_text("{}")
    return folder


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory) -> Path:
    return make_fake_sweep(tmp_path_factory.mktemp("out") / "runs", configs=SMALL_SWEEP)


@pytest.fixture(scope="module")
def executed(tmp_path_factory, small_sweep, synthetic_data) -> Path:
    """Notebook 08 executed by nbexec.execute_notebooks on the fake sweep (and a fake 01)."""
    folder = tmp_path_factory.mktemp("executed")
    figures = tmp_path_factory.mktemp("figures")
    written = nbexec.execute_notebooks(["08_analysis"], folder, progress=False, kernel_name="python3",
                                       parameters={"runs_dir": str(small_sweep), "data_dir": str(synthetic_data),
                                                   "figures_dir": str(figures), "not_declared": 1})
    assert written == [folder / "08_analysis.ipynb"]
    fake_notebook(folder / "01_data_tour.ipynb", "01 · data tour")
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory, small_sweep, executed) -> Path:
    return report.export_report(small_sweep, tmp_path_factory.mktemp("report"), executed, progress=False)


# ----------------------------------------------------------------------- execution
@pytest.mark.slow
def test_executed_analysis_carries_the_synthetic_banner(executed):
    nb = nbformat.read(executed / "08_analysis.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    setup = next(c for c in nb.cells if c.cell_type == "code" and "notebook.setup" in c.source)
    assert "not CREMA-D" in json.dumps(setup.outputs)  # visible banner at the top
    tables = [json.dumps(c.outputs, ensure_ascii=False) for c in nb.cells if "style_table(" in c.get("source", "")]
    shown = [t for t in tables if "<table" in t]  # every styled table the analysis shows says synthetic
    assert len(shown) >= 4 and all("synthetic demo corpus — not CREMA-D" in t for t in shown)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "runs_dir" in injected.source and "not_declared" not in injected.source
    assert not list(executed.glob(".*partial*"))


def test_unknown_notebook_names_the_folder(tmp_path):
    with pytest.raises(UserError, match="08_analysis"):
        nbexec.execute_notebooks(["99_nothing"], tmp_path, progress=False)


# -------------------------------------------------------------------------- export
@pytest.mark.slow
def test_report_pages_exist_and_every_link_resolves(exported, small_sweep):
    out = exported.parent
    assert (out / "08_analysis.html").is_file() and (out / "01_data_tour.html").is_file()
    assert sorted(p.stem for p in (out / report.RUN_PAGES).glob("*.html")) == sorted(
        p.parent.name for p in small_sweep.glob("*/07_train.ipynb"))
    links = links_of(exported)
    targets = [local_target(exported, h) for h in links.hrefs]
    local = [t for t in targets if t is not None]
    assert len(local) >= 2 + len(SMALL_SWEEP)
    missing = [str(t) for t in local if not t.is_file()]
    assert not missing, f"index.html links to missing files: {missing}"
    assert links.images and all(src.startswith("data:image/png;base64,") for src in links.images)
    text = exported.read_text()
    assert "synthetic-banner" in text and "not CREMA-D" in text and "64.1%" in text
    claims_part = text[text.index("claims, tested"):text.index("Key figures")]
    assert claims_part.count("<tr") >= 15 and "Verdicts:" in claims_part  # fourteen findings + header
    assert ">reason<" in claims_part and ">seeds<" in claims_part
    assert any(v in claims_part for v in ("reproduced", "contradicted", "not significant", "not comparable",
                                          "uninformative", "not run"))
    assert "--seeds 42,43,44" in claims_part and "--split speaker" in claims_part  # sections that could not run
    headline = text[text.index("Headline"):text.index("claims, tested")]
    assert "same configuration" in headline and ">accuracy_ci<" in headline and ">difference<" in headline


def test_report_without_code_hides_the_inputs(tmp_path):
    fake_notebook(tmp_path / "01_x.ipynb", "x")
    with_code = report.export_html(tmp_path / "01_x.ipynb", tmp_path / "a.html", code=True).read_text()
    without = report.export_html(tmp_path / "01_x.ipynb", tmp_path / "b.html", code=False).read_text()
    assert "learning_curves" in with_code and "learning_curves" not in without
    assert "data:image/png;base64" in without  # the outputs stay


def test_report_cli_without_anything_to_report_exits_2(tmp_path, capsys):
    code = cli.main(["report", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "r"),
                     "--executed", str(tmp_path / "executed")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and len(err.splitlines()) == 1 and "sweep" in err


def test_report_cli_no_code(tmp_path, capsys):
    make_fake_sweep(tmp_path / "runs", configs=SMALL_SWEEP[:1])
    code = cli.main(["report", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "report"),
                     "--executed", str(tmp_path / "none"), "--no-code"])
    assert code == 0 and "index.html" in capsys.readouterr().out
    page = (tmp_path / "report" / report.RUN_PAGES / "1d-relu-lr0.001-e5.html").read_text()
    assert "learning_curves" not in page
    assert "without code cells" in (tmp_path / "report" / "index.html").read_text()


# ------------------------------------------------------------------------- browser
def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless browser: install Debian's chromium (apt-get install -y chromium) to run this check")


def render(browser: str, page: Path, tmp_path: Path) -> str:
    """The DOM of ``page`` after load in headless Chromium, with the image check appended."""
    probe = page.with_name(f"_probe_{page.name}")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", IMAGE_CHECK_JS + "</body>"), encoding="utf-8")
    profile = tmp_path / f"profile-{page.stem}"
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
            f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()]
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def image_check(dom: str) -> dict:
    match = re.search(r'data-image-check="([^"]+)"', dom)
    assert match, "the page's load event never fired in the browser"
    return json.loads(match.group(1).replace("&quot;", '"'))


@pytest.mark.slow
@pytest.mark.browser
def test_report_renders_in_headless_chromium(exported, tmp_path):
    browser = find_browser()
    dom = render(browser, exported, tmp_path)
    assert "Speech emotion recognition on CREMA-D" in dom and "synthetic-banner" in dom
    check = image_check(dom)
    assert check["n"] >= 3 and check["ok"] == check["n"], f"index.html: {check}"
    analysis_page = exported.parent / "08_analysis.html"
    check = image_check(render(browser, analysis_page, tmp_path))
    assert check["n"] >= 4 and check["ok"] == check["n"], f"08_analysis.html: {check}"


def test_report_accepts_the_sweeps_out_folder_and_creates_its_out(small_sweep, tmp_path, capsys):
    """`report --runs OUT` where OUT is a sweep's --out (holding runs/), into a folder that does not exist."""
    target = tmp_path / "new" / "deeper" / "report"
    code = cli.main(["report", "--runs", str(small_sweep.parent), "--out", str(target),
                     "--executed", str(tmp_path / "no-executed")])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.stem for p in (target / report.RUN_PAGES).glob("*.html")) == sorted(
        p.parent.name for p in small_sweep.glob("*/07_train.ipynb"))
    assert (target / "index.html").is_file()


def test_report_with_nothing_to_export_is_one_line(tmp_path, capsys):
    code = cli.main(["report", "--runs", str(tmp_path / "empty"), "--out", str(tmp_path / "r"),
                     "--executed", str(tmp_path / "none")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "sweep" in err[0]
    assert not (tmp_path / "r").exists()
