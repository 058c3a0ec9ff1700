"""`aig report`: one static HTML page (images inlined as data URIs) summarising a dataset and its evaluation."""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path

from aig.manifests.catalog import query_rows
from aig.manifests.dataset import Dataset
from aig.manifests.errors import AigError
from aig.pipeline.shards import read_member

from .options import ReportOptions

THUMB = 192
# After loading, the page counts its images that failed to display: recorded on <body> (data-images,
# data-broken) and, only when some did, shown as a warning.
RENDER_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length;
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-broken', broken);
  if (broken) {
    var p = document.createElement('p');
    p.className = 'bad'; p.textContent = broken + ' of ' + imgs.length + ' images failed to display';
    document.body.insertBefore(p, document.body.firstChild);
  }
});
</script>"""
CSS = """*{box-sizing:border-box}body{font-family:system-ui,sans-serif;margin:0 auto;padding:1em;max-width:1100px;color:#222}
h1,p,li,figcaption{overflow-wrap:anywhere}img{max-width:100%;height:auto}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;max-width:420px;overflow-wrap:anywhere}
th{background:#f3f3f3}figure{margin:0}
.pair{display:grid;grid-template-columns:repeat(3,minmax(0,192px)) minmax(0,1fr);gap:8px;margin:8px 0;align-items:start}
.sem{display:grid;grid-template-columns:minmax(0,192px) minmax(0,1fr);gap:12px;margin:8px 0;align-items:start}
.sem ul{margin:0}
figcaption{font-size:12px;color:#555}.bad{color:#b00;font-weight:bold}
.note{color:#666;font-size:13px}code{background:#f5f5f5;padding:0 3px;overflow-wrap:anywhere}
@media (max-width:600px){.pair{grid-template-columns:repeat(3,minmax(0,1fr))}.pair>p{grid-column:1/-1}}"""


def esc(v) -> str:
    return html.escape("" if v is None else str(v))


def table(rows: list[dict], cols: list[str] | None = None) -> str:
    if not rows:
        return "<p class=note>none</p>"
    cols = cols or list(rows[0])
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{esc(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<div class=scroll><table><tr>{head}</tr>{body}</table></div>"


def data_uri_png(img) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def thumb(img):
    img = img.copy()
    img.thumbnail((THUMB, THUMB))
    return img


def amplified_difference(a, b):
    """|a - b| per pixel, scaled so its 99th percentile is white (the artifact made visible)."""
    import numpy as np
    from PIL import Image

    d = np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b.resize(a.size), dtype=np.float32)).mean(axis=2)
    top = max(float(np.percentile(d, 99)), 1e-6)
    return Image.fromarray(np.clip(d / top * 255, 0, 255).astype(np.uint8), "L")


def _try_rows(root: Path, sql: str, params: list | None = None) -> list[dict] | None:
    """Rows, or None when a table is missing (older datasets have no label or eval tables)."""
    import duckdb

    try:
        return query_rows(root, sql, params)
    except duckdb.Error:
        return None


def counts_section(root: Path) -> str:
    samples = query_rows(root, "select task, split, label, coalesce(generator, '-') as generator, count(*) as n "
                               "from samples group by all order by all")
    failures = query_rows(root, "select stage, reason, count(*) as n from failures group by all order by n desc")
    return ("<h2>Counts</h2>" + table(samples) + "<h3>Failures (inputs rejected, by reason)</h3>" + table(failures))


def provenance_section(root: Path) -> str:
    runs = query_rows(root, "select run_id, status, started_at, finished_at, n_inputs, n_samples, n_failures, "
                            "git_commit, command from runs order by run_id")
    gens = query_rows(root, """select generator, generator_kind, model_id, count(*) as n,
        any_value(provenance->>'scheduler') as scheduler, any_value(provenance->>'steps') as steps,
        any_value(provenance->>'dtype') as dtype, any_value(provenance->>'device') as device,
        any_value(provenance->>'latent') as latent
        from samples where label = 'fake' group by all order by all""")
    return "<h2>Provenance</h2><h3>Runs</h3>" + table(runs) + "<h3>Generators</h3>" + table(gens)


def gallery_section(root: Path, pairs: int) -> str:
    from .dataset_io import open_rgb

    rows = query_rows(root, """
        with p as (select pair_id, min(split) as split from samples where task = 'pixel' and pair_id is not null
                   group by pair_id having count(distinct label) = 2
                   order by (min(split) = 'test') desc, pair_id limit ?)
        select s.* from samples s join p using (pair_id) order by (s.split = 'test') desc, s.pair_id, s.label desc""",
                      [int(pairs)])
    if not rows:
        return "<h2>Pixel pairs</h2><p class=note>no pixel pairs in this dataset</p>"
    out = ["<h2>Pixel pairs: real | reconstruction | amplified difference</h2>"]
    by_pair: dict[str, dict] = {}
    for r in rows:
        by_pair.setdefault(r["pair_id"], {})[r["label"]] = r
    for pid, pair in by_pair.items():
        real, _ = open_rgb(read_member(root, pair["real"]))
        fake, _ = open_rgb(read_member(root, pair["fake"]))
        if real is None or fake is None:
            out.append(f"<p class=bad>pair {esc(pid)}: unreadable image</p>")
            continue
        diff = amplified_difference(real, fake)
        figs = [(real, f"real {pair['real']['key']}"), (fake, f"{pair['fake']['generator']} reconstruction"),
                (diff, "|real − reconstruction|, amplified")]
        out.append("<div class=pair>" + "".join(
            f"<figure><img src='{data_uri_png(thumb(im))}' alt='{esc(cap)}'><figcaption>{esc(cap)}</figcaption></figure>"
            for im, cap in figs) + f"<p class=note>{esc(pair['real']['split'])}, {real.width}×{real.height}</p></div>")
    return "".join(out)


def is_stand_in(annotator: str) -> bool:
    """True for an annotator id naming one of aig's untrained stand-in models (its config says so)."""
    from aig.labeling.command import stand_in_note

    if not annotator or not annotator.startswith("transformers:"):
        return False
    model = annotator.removeprefix("transformers:").split("@", 1)[0]
    try:
        return stand_in_note(model) is not None
    except (OSError, ValueError):
        return False


def semantic_section(root: Path, limit: int = 12) -> str:
    from .dataset_io import open_rgb

    head = "<h2>Semantic fakes and their named inconsistencies</h2>"
    labels = _try_rows(root, """select l.key, l.annotator, l.decision, s.shard, s.offset_data, s.size, s.member,
        s.generator, s.prompt from semantic_labels l join samples s on s.key = l.key
        where l.label = 'fake' and l.decision = 'accepted' order by l.key limit ?""", [int(limit)])
    if labels is None:
        return head + "<p class=note>no semantic_labels table in this dataset (run <code>aig label-semantic</code>)</p>"
    if not labels:
        return head + "<p class=note>no accepted semantic fakes yet (run <code>aig label-semantic</code>)</p>"
    incs = _try_rows(root, "select key, idx, category, description, confidence from semantic_inconsistencies "
                           "order by key, idx") or []
    stand_ins = {a for a in {r["annotator"] for r in labels} if a and is_stand_in(a)}
    out = [head]
    if stand_ins:
        out.append("<p class=bad>Labelled by an untrained random-weight stand-in annotator ("
                   + ", ".join(f"<code>{esc(a)}</code>" for a in sorted(stand_ins))
                   + "): the named inconsistencies below carry no meaning; they show what the pipeline stores.</p>")
    for r in labels:
        img, err = open_rgb(read_member(root, r))
        items = "".join(f"<li><b>{esc(i['category'])}</b>: {esc(i['description'])}"
                        + (f" ({i['confidence']:.2f})" if i.get("confidence") is not None else "") + "</li>"
                        for i in incs if i["key"] == r["key"])
        pic = f"<img src='{data_uri_png(thumb(img))}' alt='{esc(r['key'])}'>" if img else f"<p class=bad>{esc(err)}</p>"
        out.append(f"<div class=sem><figure>{pic}<figcaption>{esc(r['generator'])}: {esc(r['prompt'])}</figcaption>"
                   f"</figure><div><p class=note>annotator <code>{esc(r['annotator'])}</code>"
                   + (" (an untrained stand-in: these labels carry no meaning)" if r["annotator"] in stand_ins else "")
                   + f"</p><ul>{items or '<li>none named</li>'}</ul></div></div>")
    return "".join(out)


def audit_section(root: Path, threshold: float) -> str:
    from .audit import audit_dataset

    res = audit_dataset(root, threshold)
    verdict = ("<p class=bad>" + "; ".join(f"SHORTCUT in {f.task}: {esc(f.attribute)} (AUROC {f.auroc:.3f})"
                                          for f in res.shortcuts) + "</p>") if res.shortcuts else \
        f"<p>no shortcut: no attribute alone predicts the label above AUROC {threshold}</p>"
    scores = [{"task": f.task, "attribute": f.attribute, "AUROC": f"{f.auroc:.3f}",
               "verdict": "SHORTCUT" if f.shortcut else (f.note or "ok")} for f in res.scores]
    unread = "".join(f"<p class=bad>unreadable: {esc(u)}</p>" for u in res.unreadable)
    unread += "".join(f"<p class=bad>DEGENERATE: generator {esc(d['generator'])}: median reconstruction PSNR "
                      f"{d['median_psnr']} dB &lt; {d['floor']} dB</p>" for d in res.degenerate)
    return "<h2>Shortcut audit</h2>" + verdict + unread + table(scores) + "<h3>Per split and class</h3>" + table(res.summary)


def markdown_to_html(md: str) -> str:
    """The subset of Markdown that results.md uses: headings, pipe tables, bullet lists, paragraphs."""
    out, rows = [], []

    def flush():
        if rows:
            head, body = rows[0], [r for r in rows[2:]]
            out.append("<div class=scroll><table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in head) + "</tr>" + "".join(
                "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in body) + "</table></div>")
            rows.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        flush()
        if line.startswith("## "):
            out.append(f"<h3>{esc(line[3:])}</h3>")
        elif line.startswith("# "):
            continue
        elif line.startswith("- "):
            out.append(f"<li>{esc(line[2:].replace('`', ''))}</li>")
        elif line.strip():
            out.append(f"<p>{esc(line)}</p>")
    flush()
    return "".join(out)


def evaluation_section(root: Path) -> str:
    head = "<h2>Evaluation</h2>"
    runs = _try_rows(root, "select * from eval_runs order by eval_id desc limit 1")
    if not runs:
        return head + "<p class=note>no evaluation yet (run <code>aig evaluate</code>)</p>"
    run = runs[0]
    folder = Dataset(root).eval_dir(run["eval_id"])
    md = (folder / "results.md").read_text() if (folder / "results.md").is_file() else ""
    cfg = json.loads(run["config"] or "{}")
    out = [head, f"<p>{esc(run['eval_id'])} ({esc(run['created_at'])}): pixel <code>{esc(run['pixel_checkpoint'])}</code>, "
                 f"semantic <code>{esc(run['semantic_model'])}</code> adapter <code>{esc(run['semantic_adapter'])}</code>; "
                 f"{run['n_images']} images, {run['n_unreadable']} unreadable; perturbations "
                 f"{esc(', '.join(cfg.get('perturbations', [])))}</p>", markdown_to_html(md)]
    for png in sorted(folder.glob("*.png")):
        uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
        out.append(f"<figure><img src='{uri}' alt='{esc(png.name)}'><figcaption>{esc(png.name)}</figcaption></figure>")
    return "".join(out)


class ReportError(AigError, OSError):
    """The report cannot be written; the message says where and what to do."""


@dataclass
class HtmlReport:
    path: Path

    def lines(self) -> list[str]:
        return [f"report: {self.path.resolve()}"]


def run(options: ReportOptions) -> HtmlReport:
    """`aig report`: write the dataset's one-page HTML report."""
    return HtmlReport(build_report(Path(options.dataset), options.output, options.pairs, options.threshold))


def build_report(root: Path, output: Path | None = None, pairs: int = 6, audit_threshold: float = 0.6) -> Path:
    Dataset(root).connect().close()  # a clear error when there is no dataset here
    sections = [counts_section(root), provenance_section(root), gallery_section(root, pairs), semantic_section(root),
                audit_section(root, audit_threshold), evaluation_section(root)]
    name = root.resolve().name  # the folder's name: the page may be mailed, its absolute path means nothing there
    page = (f"<!doctype html><html><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width, initial-scale=1'><title>aig report: {esc(name)}</title>"
            f"<style>{CSS}</style></head><body><h1>aig report: {esc(name)}</h1>"
            + "".join(sections) + RENDER_CHECK + "</body></html>")
    out = output or Dataset(root).report_path
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    except OSError as e:
        raise ReportError(f"cannot write the report to '{e.filename}' ({e.strerror}); "
                          "pass --output FILE in a writable folder") from None
    return out
