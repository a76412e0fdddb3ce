"""A run at a glance: one self-contained HTML page (every image embedded as base64) plus its PNGs.

``sbcore report run=DIR`` reads what a run folder already holds -- ``config.yaml``, ``metrics.jsonl``,
``eval.json`` (from ``sbcore eval``) and the latest pictures in ``pictures/`` -- draws the loss and
metric curves, and writes ``DIR/report/index.html`` next to copies of every picture it shows. The
page needs no network and no other file, so it can be mailed or attached to an issue as is.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

from sbcore.io import plots
from sbcore.log.plugin import read_metrics

#: what a metric's number means, shown under the table when the metric appears in it.
NOTES = {
    "feature_distance": "Fréchet distance on the features of sbcore's own digits/letters/fashion CNN "
                        "(sbcore.metrics.digits); not Inception FID, not comparable with published FIDs.",
    "domain_accuracy": "fraction of outputs the digits CNN assigns to the target domain.",
    "mmd": "squared MMD, RBF kernels of bandwidths scales x sqrt(dim).",
    "gaussian_w2": "squared W2 between Gaussians fitted to both sides (Bures-Wasserstein).",
    "msd": "mean squared distance between each input and its output.",
}
PICTURE = re.compile(r"^(?P<group>.+?)_step(?P<step>\d+)(?P<rest>.*)\.(?P<ext>png|gif)$")
MIME = {".png": "image/png", ".gif": "image/gif"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1.5em; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.85em; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { min-width: 360px; max-width: 560px; border: 1px solid #ddd; image-rendering: pixelated; }
figure.wide img { max-width: 100%; image-rendering: auto; }
figcaption { font-size: 0.85em; color: #555; } .muted { color: #777; }
"""

# Reports, once the page has loaded, how many of its images the browser could decode.
STATUS_SCRIPT = """
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const shown = images.filter((img) => img.complete && img.naturalWidth > 0).length;
  document.getElementById("status").textContent = `${shown} of ${images.length} images shown`;
});
"""


def latest_pictures(folder: Path) -> list[Path]:
    """The pictures of the latest evaluation step of each group (e.g. forward, backward), plus any
    picture whose name carries no step (but not the run's curves: the report redraws them)."""
    if not folder.is_dir():
        return []
    latest: dict[str, int] = {}
    loose: list[Path] = []
    for path in sorted(folder.iterdir()):
        match = PICTURE.match(path.name)
        if match:
            group, step = match["group"], int(match["step"])
            latest[group] = max(step, latest.get(group, -1))
        elif path.suffix in MIME and not path.name.startswith(".") and path.name not in plots.CURVE_FILES:
            loose.append(path)
    chosen = [p for p in sorted(folder.iterdir())
              if (m := PICTURE.match(p.name)) and int(m["step"]) == latest[m["group"]]]
    return chosen + loose


def _data_uri(path: Path) -> str:
    return f"data:{MIME[path.suffix]};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _figure(path: Path, caption: str, wide: bool = False) -> str:
    attrs = ' class="wide"' if wide else ""
    return (f'<figure{attrs}><img src="{_data_uri(path)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return html.escape(str(value))


def _table(rows: list[tuple[str, Any]], table_id: str) -> str:
    body = "".join(f"<tr><td>{html.escape(k)}</td><td class=\"num\">{_format(v)}</td></tr>" for k, v in rows)
    return f'<table id="{table_id}"><tr><th>metric</th><th>value</th></tr>{body}</table>'


def _read_summary(path: Path) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip().startswith('{"summary"'):
                summary = json.loads(line)["summary"]
    return summary


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write ``out/index.html`` (default ``run_dir/report``) and the PNGs it shows; return the page."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.yaml)")
    out = Path(out) if out is not None else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    config_text = (run_dir / "config.yaml").read_text()
    metrics_file = run_dir / "metrics.jsonl"
    records = read_metrics(metrics_file) if metrics_file.is_file() else []
    summary = _read_summary(metrics_file)
    eval_file = run_dir / "eval.json"
    evaluation = json.loads(eval_file.read_text()) if eval_file.is_file() else None

    sections = [f"<h1>Run {html.escape(run_dir.name)}</h1>",
                f'<p class="muted">{html.escape(str(run_dir.resolve()))} &middot; <span id="status">loading</span></p>']
    sections.append("<h2>Metrics</h2>")
    if evaluation is not None:
        sampler = dict(evaluation.get("sampler") or {})
        sampler_text = f"{sampler.pop('kind', '?')} ({', '.join(f'{k}={v}' for k, v in sampler.items())})"
        nfe = ", ".join(f"{k} {v}" for k, v in (evaluation.get("nfe") or {}).items())
        setting = (f"sbcore eval at step {evaluation.get('step')} ({evaluation.get('weights', 'ema')} weights), "
                   f"{evaluation.get('split', 'train')} split, n = {evaluation.get('n')}, "
                   f"seed {evaluation.get('seed')}, sampler {sampler_text}, "
                   f"NFE {nfe}, world size {evaluation.get('world_size')}, "
                   f"global batch {evaluation.get('global_batch')}")
        sections.append(f"<p>{html.escape(setting)}</p>")
        sections.append(_table(sorted(evaluation.get("metrics", {}).items()), "metrics"))
        names = {key.rsplit("/", 1)[-1] for key in evaluation.get("metrics", {})}
        notes = "".join(f"<li><b>{k}</b>: {html.escape(v)}</li>" for k, v in NOTES.items() if k in names)
        if notes:
            sections.append(f'<ul class="muted">{notes}</ul>')
        skipped = evaluation.get("skipped") or {}
        if skipped:
            items = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in sorted(skipped.items()))
            sections.append(f'<p class="muted">skipped:</p><ul class="muted">{items}</ul>')
    if summary:
        sections.append("<h3>End of training</h3>")
        sections.append(_table(list(summary.items()), "summary" if evaluation is not None else "metrics"))
    if evaluation is None and not summary:
        sections.append('<p id="metrics">no metrics yet: the run has not finished an evaluation; '
                        "run <code>sbcore eval run=DIR</code>.</p>")

    figures = plots.run_curves(records, out)
    if figures:
        sections.append("<h2>Curves</h2>" + "".join(_figure(p, caption, wide=True) for p, caption in figures))
    pictures = latest_pictures(run_dir / "pictures")
    if pictures:
        shown = []
        for picture in pictures:
            copy = out / picture.name
            plots.atomic_write(copy, lambda tmp, src=picture: shutil.copyfile(src, tmp))
            shown.append(_figure(copy, picture.stem.replace("_", " ")))
        sections.append("<h2>Pictures</h2>" + "".join(shown))
    sections.append(f"<h2>Config</h2><pre>{html.escape(config_text)}</pre>")

    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>sbcore run {html.escape(run_dir.name)}</title><style>{STYLE}</style>"
            f"<script>{STATUS_SCRIPT}</script></head><body>\n" + "\n".join(sections) + "\n</body></html>\n")
    return plots.atomic_write(out / "index.html", lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
