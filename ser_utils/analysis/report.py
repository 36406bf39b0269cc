"""The HTML report: executed notebooks and run notebooks exported by nbconvert, behind one index page.

Layout (``python -m ser_utils report --runs outputs/runs --out outputs/report``)::

    outputs/executed/NN_name.ipynb      executed copies of notebooks 01-11 (ser_utils.experiments.nbexec)
    outputs/report/index.html           headline table, key figures, links to every page
    outputs/report/NN_name.html         one page per executed notebook
    outputs/report/runs/<run_id>.html   one page per training run (its 07_train.ipynb)

Every page is self-contained: figures are embedded as ``data:`` URIs (notebook outputs already
are; ``embed_images`` embeds the images markdown cells link to), so the folder can be zipped,
mailed or opened offline (MathJax alone comes from a CDN and is only needed for formulas).
``code=False`` (``--no-code``) hides the code cells for readers who want the story only.
Numbers from the synthetic demo corpus carry a banner on the index page, as in the notebooks.
"""

from __future__ import annotations

import base64
import html
import io
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ser_utils import config, fileio, runs
from ser_utils.errors import UserError

EXECUTED_DIR = config.OUTPUTS_DIR / "executed"
RUN_PAGES = "runs"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"

PAGE_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em} td,th{padding:3px 9px;border-bottom:1px solid #eee;text-align:right}
th{background:#f6f6f6} td:first-child,th:first-child{text-align:left}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{color:#555;font-size:.9em}
.muted{color:#666}
"""


# --------------------------------------------------------------------- export
def export_html(notebook: str | Path, html_path: str | Path, code: bool = True) -> Path:
    """One notebook -> one self-contained HTML page (images embedded; code hidden unless ``code``)."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", embed_images=True, exclude_input=not code,
                            exclude_input_prompt=not code, exclude_output_prompt=not code)
    nb = nbformat.read(str(notebook), as_version=4)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"path": str(Path(notebook).parent)}})
    return fileio.write_text(html_path, body)


def export_report(runs_dir: str | Path = config.RUNS_DIR, out_dir: str | Path = config.REPORT_DIR,
                  executed_dir: str | Path = EXECUTED_DIR, code: bool = True, progress: bool = True) -> Path:
    """Export the executed notebooks and every run's notebook, then write ``index.html``; return it.

    ``runs_dir`` may be the runs folder or the sweep's output folder (holding ``runs/``);
    ``out_dir`` is created with its parents.
    """
    from tqdm.auto import tqdm

    runs_dir, out_dir, executed_dir = runs.resolve_runs_dir(runs_dir), Path(out_dir), Path(executed_dir)
    notebooks = sorted(executed_dir.glob(NOTEBOOK_GLOB)) if executed_dir.is_dir() else []
    run_notebooks = sorted(runs_dir.glob(f"*/{runs.RUN_NOTEBOOK}")) if runs_dir.is_dir() else []
    if not notebooks and not run_notebooks:
        raise UserError(f"{runs_dir}: no run notebooks, and no executed notebooks in {executed_dir}; "
                                f"run `python -m ser_utils sweep` first, or pass --runs/--executed")
    out_dir.mkdir(parents=True, exist_ok=True)
    pages, run_pages = {}, {}
    for nb in tqdm(notebooks + run_notebooks, desc="html", unit="page", disable=not progress):
        if nb in run_notebooks:
            run_pages[nb.parent.name] = export_html(nb, out_dir / RUN_PAGES / f"{nb.parent.name}.html", code)
        else:
            pages[nb.stem] = export_html(nb, out_dir / f"{nb.stem}.html", code)
    results = runs.load_results(runs_dir)
    index = out_dir / "index.html"
    fileio.write_text(index, index_html(results, runs_dir, pages, run_pages, out_dir, executed_dir, code))
    return index


# ---------------------------------------------------------------------- index
def figure_data_uri(fig: Any, dpi: int = 110) -> str:
    """A matplotlib figure as a ``data:image/png;base64`` URI (and the figure closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def key_figures(results: Any, runs_dir: Path, synthetic: bool) -> list[tuple[str, str]]:
    """(caption, data URI) of Figures 7, 8 and 9 made from the run folders; none when nothing finished."""
    from ser_utils import analysis
    from ser_utils.analysis import plots

    best = analysis.best_run(results)
    if best is None:
        return []
    figures = [("Figure 7 · test accuracy by activation and learning rate", plots.accuracy_heatmaps(results))]
    run = runs.load_run(runs_dir / best)
    if run["confusion"] is not None:
        figures.append((f"Figure 8 · confusion matrix of the best run, {best} (test set)",
                        plots.confusion_counts_and_rates(run["confusion"], title=best)))
    curves = analysis.histories(runs_dir, analysis.top_runs(results, 3))
    if curves:
        best_epochs = results.set_index("run_id")["best_epoch"].to_dict()
        figures.append(("Figure 9 · training and validation loss of the top runs", plots.loss_curves(curves, best_epochs)))
    out = []
    for title, fig in figures:
        plots.corpus_banner(fig, synthetic)
        out.append((analysis.caption(title, synthetic), figure_data_uri(fig)))
    return out


def _link(href: str, text: str) -> str:
    return f"<a href='{html.escape(href, quote=True)}'>{html.escape(text)}</a>"


def _headline(results: Any, run_pages: Mapping[str, Path], synthetic: bool) -> str:
    from ser_utils import analysis

    table = analysis.best_per_model(results)
    if table.empty:
        return "<p class='muted'>No finished run yet.</p>"
    table = table[["model", "run_id", "activation", "lr", "accuracy", "report_accuracy", "f1", "uar", "best_epoch",
                   "epochs_run", "status"]]
    link = {"run_id": lambda r: _link(f"{RUN_PAGES}/{r}.html", r) if r in run_pages else html.escape(r)}
    return analysis.style_table(table, "Best configuration per architecture (Table 2, test set)", synthetic,
                                formats=link).to_html()


def _claims_table(results: Any, runs_dir: Path, synthetic: bool) -> str:
    """One row per finding of the report with our measured effect, p-value and computed verdict."""
    from ser_utils import analysis
    from ser_utils.analysis import claims

    done = list(runs.finished(results)["run_id"]) if len(results) else []
    table = claims.evaluate(results, runs.load_tables(runs_dir, done), runs.load_tables(runs_dir, done, runs.HISTORY_FILE))
    shown = table[["finding", "report_says", "we_measure", "p_value", "verdict"]]
    counts = ", ".join(f"{n} {verdict}" for verdict, n in table["verdict"].value_counts().items())
    styled = shown.style.format({"p_value": "{:.3g}"}, na_rep="—").hide(axis="index").set_caption(
        html.escape(analysis.caption("Each finding of the report against our runs (paired tests on the same clips)",
                                     synthetic)))
    return styled.to_html() + f"<p class='muted'>Verdicts: {html.escape(counts)}; details in notebook 08.</p>"


def _runs_list(results: Any, run_pages: Mapping[str, Path]) -> str:
    if results.empty:
        return "<p class='muted'>No run folders.</p>"
    rows = []
    for row in results.itertuples():
        name = _link(f"{RUN_PAGES}/{row.run_id}.html", row.run_id) if row.run_id in run_pages else html.escape(row.run_id)
        acc = f"{row.accuracy:.1%}" if isinstance(row.accuracy, float) and row.accuracy == row.accuracy else "—"
        note = html.escape(str(row.error)) if isinstance(row.error, str) else ""
        rows.append(f"<tr><td>{name}</td><td>{html.escape(str(row.status))}</td><td>{acc}</td>"
                    f"<td>{html.escape(str(row.corpus))}</td><td style='text-align:left'>{note}</td></tr>")
    return ("<table><tr><th>run</th><th>status</th><th>accuracy</th><th>corpus</th><th>error</th></tr>"
            + "".join(rows) + "</table>")


def index_html(results: Any, runs_dir: Path, pages: Mapping[str, Path], run_pages: Mapping[str, Path],
               out_dir: Path, executed_dir: Path, code: bool) -> str:
    """The report's front page: banner, headline table, key figures, links to every page."""
    from ser_utils import analysis

    synthetic = analysis.is_synthetic(results)
    figures = "".join(f"<figure><img alt='{html.escape(c, quote=True)}' src='{uri}'><figcaption>{html.escape(c)}"
                      f"</figcaption></figure>" for c, uri in key_figures(results, runs_dir, synthetic))
    notebook_links = "".join(f"<li>{_link(p.relative_to(out_dir).as_posix(), name)}</li>" for name, p in pages.items())
    if not notebook_links:
        notebook_links = (f"<li class='muted'>no executed notebooks in {html.escape(str(executed_dir))} "
                          f"(ser_utils.analysis.report.execute_notebooks writes them)</li>")
    expected = len(config.MODELS) * len(config.ACTIVATIONS) * len(config.LEARNING_RATES)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>CREMA-D speech emotion recognition: report</title>
<style>{PAGE_STYLE}</style></head><body>
<h1>Speech emotion recognition on CREMA-D</h1>
<p class="muted">Report generated {time.strftime('%Y-%m-%d %H:%M')} from {html.escape(str(runs_dir))}
({'with' if code else 'without'} code cells).</p>
{analysis.banner_html(synthetic)}
<p>{html.escape(analysis.sweep_status(results, expected=expected))}.</p>
<h2>Headline: best configuration per architecture</h2>
{_headline(results, run_pages, synthetic)}
<p class="muted">report_accuracy: the course report's published test accuracy for the same configuration
(its best: the 2D CNN with SiLU at lr 0.001, 64.1%); accuracy_ci: our 95% interval (bootstrap over the
test clips); chosen by test accuracy as in the report.</p>
<h2>The report's claims, tested</h2>
{_claims_table(results, runs_dir, synthetic)}
<h2>Key figures</h2>
{figures or "<p class='muted'>No finished run yet.</p>"}
<h2>Notebooks</h2>
<ul>{notebook_links}</ul>
<h2>Every run</h2>
{_runs_list(results, run_pages)}
</body></html>
"""
