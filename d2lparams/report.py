"""The HTML report of ``d2lparams compare --out DIR``: one self-contained file (inline CSS and
SVG, no script, nothing fetched), readable offline and attachable to a bug report.

It shows the verdict, the table (one row per scenario with its tolerance, a red or green cell
per backend), what each row compares, the full text of every failure, each framework's
default initialization as a histogram against its formula, and how far each backend's
training loss is from NumPy's, epoch by epoch.
"""

from __future__ import annotations

import html
import math

from . import __version__, _registry

# Curves of different backends stay apart even where they coincide: each backend gets a
# marker and a dash pattern by its place among the registered backends, and the colour it
# declares itself.
_MARKERS = ("circle", "square", "triangle", "diamond")
_DASHES = ("", "7 3", "2 3", "9 3 2 3")


def _color(name: str) -> str:
    """The colour a backend declares for plots (black for anything else)."""
    try:
        return _registry.adapter_class(name).color
    except (KeyError, ValueError, TypeError):
        return "#000"


def _place(name: str) -> int:
    names = _registry.list_backends()
    return names.index(name) if name in names else 0


def _marker_of(name: str) -> str:
    return _MARKERS[_place(name) % len(_MARKERS)]


def _dash_of(name: str) -> str:
    return _DASHES[_place(name) % len(_DASHES)]

FLOOR = 1e-12  # deviations below (exact agreement included) are drawn here, on a log axis

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:72em;
  padding:0 1em;color:#212121}
h1{margin-bottom:.2em}.sub{color:#616161;margin-top:0}
.verdict{padding:.8em 1.2em;border-radius:6px;font-size:1.25em;font-weight:600;margin:1em 0}
.verdict.ok{background:#e8f5e9;color:#1b5e20;border:2px solid #43a047}
.verdict.fail{background:#ffebee;color:#b71c1c;border:2px solid #e53935}
.verdict ul{font-size:.8em;font-weight:normal;margin:.4em 0 0}
table.results{border-collapse:collapse;margin:1em 0}
table.results th,table.results td{padding:.3em .8em;border:1px solid #e0e0e0;text-align:left;
  font-variant-numeric:tabular-nums}
table.results th{background:#fafafa}
td.ok{background:#c8e6c9;color:#1b5e20}td.fail,td.crashed{background:#ef9a9a;color:#b71c1c;
  font-weight:600}td.absent{color:#9e9e9e}td.tol{color:#616161}
dl.legend{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;color:#424242}
dl.legend dt{font-weight:600}dl.legend dd{margin:0}
pre{background:#f5f5f5;padding:.8em;overflow:auto;border-left:4px solid #e53935}
.plots{display:flex;flex-wrap:wrap;gap:.5em}.plot{border:1px solid #e0e0e0;background:#fff}
.note{color:#616161;font-size:.9em}
table.diff{border-collapse:collapse;margin:.5em 0}table.diff th,table.diff td{padding:.2em .7em;
  border:1px solid #e0e0e0;text-align:left;font-variant-numeric:tabular-nums}
table.diff th{background:#fafafa}tr.fail td{background:#ef9a9a;color:#b71c1c}
span.fail{color:#b71c1c;font-weight:600}
"""


# -- plotting -------------------------------------------------------------------------------
def _nice_step(span: float, count: int) -> float:
    raw = span / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    step = _nice_step(hi - lo, count)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + 1e-9 * step:
        ticks.append(0.0 if abs(value) < 1e-12 * step else value)
        value += step
    return ticks


def _fmt(value: float) -> str:
    return f"{value:g}" if value == 0 or 1e-3 <= abs(value) < 1e4 else f"{value:.0e}"


class _Plot:
    """An SVG plot area with linear x, linear or log10 y, axes, ticks and labels."""

    def __init__(self, title: str, xlim, ylim, xlabel: str, ylabel: str, *, log_y=False,
                 width=420, height=280):
        self.w, self.h = width, height
        self.left, self.right, self.top, self.bottom = 62, 14, 34, 46
        self.xlim, self.log_y = xlim, log_y
        self.ylim = (math.log10(ylim[0]), math.log10(ylim[1])) if log_y else ylim
        self.parts = [f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" '
                      f'height="{height}" role="img" aria-label="{html.escape(title)}">',
                      f'<text x="{self.left}" y="18" font-size="13" font-weight="600">'
                      f'{html.escape(title)}</text>']
        self.xlabel, self.ylabel = xlabel, ylabel

    def x(self, value: float) -> float:
        lo, hi = self.xlim
        return self.left + (value - lo) / ((hi - lo) or 1) * (self.w - self.left - self.right)

    def y(self, value: float) -> float:
        lo, hi = self.ylim
        v = math.log10(max(value, 10 ** lo)) if self.log_y else value
        return self.h - self.bottom - (v - lo) / ((hi - lo) or 1) * (self.h - self.top - self.bottom)

    def axes(self, xticks, yticks, xfmt=_fmt, yfmt=_fmt) -> None:
        x0, x1 = self.left, self.w - self.right
        y0, y1 = self.h - self.bottom, self.top
        p = self.parts
        for t in yticks:  # grid first, under the data
            y = self.y(t)
            p.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#eeeeee"/>')
        p.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#424242"/>')
        p.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#424242"/>')
        for t in xticks:
            x = self.x(t)
            p.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + 5}" stroke="#424242"/>')
            p.append(f'<text x="{x:.1f}" y="{y0 + 17}" font-size="10" text-anchor="middle">'
                     f'{html.escape(xfmt(t))}</text>')
        for t in yticks:
            y = self.y(t)
            p.append(f'<line x1="{x0 - 5}" y1="{y:.1f}" x2="{x0}" y2="{y:.1f}" stroke="#424242"/>')
            p.append(f'<text x="{x0 - 8}" y="{y + 3.5:.1f}" font-size="10" text-anchor="end">'
                     f'{html.escape(yfmt(t))}</text>')
        p.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{self.h - 8}" font-size="11" '
                 f'text-anchor="middle">{html.escape(self.xlabel)}</text>')
        p.append(f'<text transform="translate(14 {(y0 + y1) / 2:.1f}) rotate(-90)" font-size="11" '
                 f'text-anchor="middle">{html.escape(self.ylabel)}</text>')

    def add(self, svg: str) -> None:
        self.parts.append(svg)

    def svg(self) -> str:
        return "".join(self.parts) + "</svg>"


def _marker(kind: str, x: float, y: float, color: str) -> str:
    if kind == "square":
        return f'<rect x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6" fill="{color}"/>'
    if kind == "triangle":
        return (f'<polygon points="{x:.1f},{y - 4:.1f} {x - 4:.1f},{y + 3:.1f} {x + 4:.1f},{y + 3:.1f}" '
                f'fill="none" stroke="{color}" stroke-width="1.5"/>')
    if kind == "diamond":
        return (f'<polygon points="{x:.1f},{y - 4:.1f} {x + 4:.1f},{y:.1f} {x:.1f},{y + 4:.1f} '
                f'{x - 4:.1f},{y:.1f}" fill="{color}"/>')
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="none" stroke="{color}" stroke-width="1.5"/>'


def histogram_svg(backend: str, data: dict) -> str:
    """One framework's default weights: bars over bins that start and end at the formula's
    bounds, and the formula's expected count per bin."""
    counts, edges = data["histogram"], data["edges"]
    low, high = data.get("low", -data["bound"]), data.get("high", data["bound"])
    total = data.get("count", sum(counts))
    width = edges[1] - edges[0]
    # the formula's count per bin: given (a truncated normal), else a uniform density's
    per_bin = data.get("expected")
    expected = max(per_bin) if per_bin else total * width / (high - low)
    top = max(max(counts), expected) * 1.1 or 1
    formula = data["scheme"].split(": ", 1)[-1].split(",")[0].removeprefix("weight ")
    plot = _Plot(f"{backend}", (edges[0], edges[-1]), (0, top), "weight value", "weights per bin")
    plot.axes(_ticks(edges[0], edges[-1], 4), _ticks(0, top, 4))
    base = plot.y(0)
    for c, a, b in zip(counts, edges[:-1], edges[1:]):
        x0, x1 = plot.x(a), plot.x(b)
        plot.add(f'<rect x="{x0 + 0.5:.1f}" y="{plot.y(c):.1f}" width="{max(0.5, x1 - x0 - 1):.1f}" '
                 f'height="{base - plot.y(c):.1f}" fill="#90a4ae"><title>[{a:.4g}, {b:.4g}): '
                 f'{c}</title></rect>')
    if per_bin:
        steps = [f"{plot.x(edges[0]):.1f},{base:.1f}"]
        for e, a, b in zip(per_bin, edges[:-1], edges[1:]):
            steps += [f"{plot.x(a):.1f},{plot.y(e):.1f}", f"{plot.x(b):.1f},{plot.y(e):.1f}"]
        steps.append(f"{plot.x(edges[-1]):.1f},{base:.1f}")
        plot.add(f'<polyline fill="none" stroke="#d32f2f" stroke-width="2" points="{" ".join(steps)}"/>')
    else:
        y = plot.y(expected)
        plot.add(f'<polyline fill="none" stroke="#d32f2f" stroke-width="2" points="{plot.x(edges[0]):.1f},'
                 f'{base:.1f} {plot.x(low):.1f},{base:.1f} {plot.x(low):.1f},{y:.1f} {plot.x(high):.1f},'
                 f'{y:.1f} {plot.x(high):.1f},{base:.1f} {plot.x(edges[-1]):.1f},{base:.1f}"/>')
    plot.add(f'<text x="{plot.w - plot.right}" y="{plot.top - 4}" font-size="10" text-anchor="end" '
             f'fill="#d32f2f">formula {html.escape(formula)}</text>')
    return plot.svg()


def deviation_svg(curves: dict, tolerance: float) -> str:
    """Per backend and epoch, |loss - NumPy's loss| / NumPy's loss on a log axis."""
    epochs = max(len(c) for c in curves.values())
    values = [max(v, FLOOR) for c in curves.values() for v in c] + [tolerance]
    hi = 10 ** math.ceil(math.log10(max(values)) + 1e-9)
    plot = _Plot("training loss: relative deviation from NumPy", (1, epochs), (FLOOR, hi),
                 "epoch", "|loss - NumPy| / NumPy", log_y=True, width=620, height=320)
    decades = range(int(math.log10(FLOOR)), int(math.log10(hi)) + 1)
    step = 2 if len(decades) > 8 else 1
    yticks = [10.0 ** d for d in decades if (d - decades[0]) % step == 0]
    xticks = [1] + [e for e in range(5, epochs + 1, 5)]
    plot.axes(xticks, yticks, xfmt=lambda v: f"{v:.0f}", yfmt=lambda v: f"1e{round(math.log10(v))}")
    ty = plot.y(tolerance)
    plot.add(f'<line x1="{plot.left}" y1="{ty:.1f}" x2="{plot.w - plot.right}" y2="{ty:.1f}" '
             f'stroke="#e53935" stroke-dasharray="4 3"/><text x="{plot.w - plot.right - 2}" '
             f'y="{ty - 4:.1f}" font-size="10" text-anchor="end" fill="#e53935">tolerance '
             f'{tolerance:.0e}</text>')
    for i, (name, curve) in enumerate(curves.items()):
        color = _color(name)
        points = [(plot.x(k + 1), plot.y(max(v, FLOOR))) for k, v in enumerate(curve)]
        dash = f' stroke-dasharray="{_dash_of(name)}"' if _dash_of(name) else ""
        plot.add(f'<polyline fill="none" stroke="{color}" stroke-width="1.5"{dash} points="'
                 + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + '"/>')
        for x, y in points:
            plot.add(_marker(_marker_of(name), x, y, color))
        lx, ly = plot.left + 12 + 110 * i, plot.top + 4
        plot.add(_marker(_marker_of(name), lx, ly, color))
        plot.add(f'<text x="{lx + 8}" y="{ly + 4}" font-size="11" fill="{color}">'
                 f'{html.escape(name)}</text>')
    return plot.svg()


# -- the page -------------------------------------------------------------------------------
def cell(report: dict, backend: str, name: str) -> tuple[str, str]:
    """One table cell of the report (also the command line's): its text, and its kind: ok,
    fail, crashed or absent."""
    data = report["backends"][backend]
    if data.get("not_installed"):
        return "not installed", "absent"
    found = [r for r in data.get("results", []) if r["scenario"] == name]
    if not found:
        return ("crashed", "crashed") if data.get("crashed") else ("-", "absent")
    r = found[0]
    dev = r["deviation"]
    number = "" if dev is None else (f" {dev:.1e}" if dev else " 0")
    return ("ok" + number, "ok") if r["ok"] else ("FAIL" + number, "fail")


def failures(report: dict) -> list[dict]:
    """Every failure, backend by backend: a one-line ``summary`` (the verdict's), a
    ``title`` and the full ``detail`` (the error with its traceback, or a crash's output)."""
    found = []
    for b in report["requested"]:
        data = report["backends"][b]
        crash = data.get("crashed")
        if crash:
            found.append({"summary": f"{b} crashed ({crash['signal'] or crash['how']})",
                          "title": f"{b} crashed during the {crash['phase']}: {crash['how']}",
                          "detail": f"its output ends with:\n{crash['tail']}"})
        for r in data.get("results", []):
            if not r["ok"]:
                name = "saving its checkpoint" if r["scenario"] == "port: save" else r["scenario"]
                found.append({"summary": f"{b}: {name}", "title": f"{b} / {name}",
                              "detail": r["error"] or "failed"})
    return found


def _table(report: dict) -> str:
    head = "".join(f"<th>{html.escape(b)}</th>" for b in report["requested"])
    rows = []
    for name in report["scenarios"]:
        cells = "".join(
            f'<td class="{kind}">{html.escape(text)}</td>'
            for text, kind in (cell(report, b, name) for b in report["requested"]))
        rows.append(f"<tr><th>{html.escape(name)}</th><td class=\"tol\">"
                    f"{report['tolerances'][name]:.0e}</td>{cells}</tr>")
    hidden = (f'<p class="note">Not requested: {html.escape(", ".join(report["hidden"]))}.</p>'
              if report.get("hidden") else "")
    return (f'<table class="results" id="results"><thead><tr><th>scenario</th><th>tolerance</th>'
            f'{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>{hidden}')


def render(report: dict) -> str:
    """The report page as one HTML string."""
    run_on = [b for b, d in report["backends"].items() if not d.get("not_installed")]
    failed = failures(report)
    if report.get("ok"):
        verdict = (f'<div class="verdict ok" id="verdict">All installed backends agree: '
                   f'{html.escape(", ".join(run_on))}</div>')
    else:
        items = "".join(f"<li>{html.escape(f)}</li>" for f in report.get("failed", []))
        what = "no requested backend is installed" if not run_on else "some backend disagrees"
        verdict = f'<div class="verdict fail" id="verdict">FAILED: {what}<ul>{items}</ul></div>'
    versions = ", ".join(f"{b} {d.get('version', '?')}" for b, d in report["backends"].items()
                         if not d.get("not_installed") and d.get("version"))
    legend = "".join(f"<dt>{html.escape(n)}</dt><dd>{html.escape(report['measures'].get(n, ''))}</dd>"
                     for n in report["scenarios"])
    failure_html = "".join(f"<h3>{html.escape(f['title'])}</h3><pre>{html.escape(f['detail'])}</pre>"
                           for f in failed)
    hist, curves, tolerance = [], {}, 1e-5
    for name in run_on:
        for r in report["backends"][name].get("results", []):
            if r["scenario"] == "native defaults" and r["data"].get("histogram"):
                hist.append(histogram_svg(name, r["data"]))
            if r["scenario"] == "optimizer groups" and r["data"].get("losses"):
                curves[name] = [abs(a - b) / abs(b) for a, b in zip(r["data"]["losses"],
                                                                     r["data"]["reference"])]
                tolerance = r.get("tolerance", tolerance)
    deviation = (deviation_svg(curves, tolerance) if curves
                 else '<p class="note">No backend finished the training scenario.</p>')
    hist_html = "".join(hist) or '<p class="note">No backend finished this scenario.</p>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>d2lparams compare</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{CSS}</style></head><body>
<h1>d2lparams compare</h1>
<p class="sub">d2lparams {html.escape(str(report.get("version", "")))}; {html.escape(versions)}.
Each backend ran every scenario of the chapter in a process of its own, checked against NumPy.</p>
{verdict}
<h2>Results</h2>
{_table(report)}
<p>A cell is the verdict and the largest deviation from NumPy, relative:
|backend &minus; NumPy| / max(1, |NumPy|) unless the row says otherwise; it is ok when the
deviation is at most the row's tolerance. What each row compares:</p>
<dl class="legend">{legend}</dl>
{f'<h2>Failures</h2><div id="failures">{failure_html}</div>' if failed else ""}
<h2>Native default initialization</h2>
<p>Each framework's own default weights of a Linear(300, 300) layer, 90,000 values; the bins
start and end at the formula's bounds, and the red line is the count per bin the formula
predicts.</p>
<div class="plots" id="histograms">{hist_html}</div>
<h2>Training</h2>
<p>Two parameter groups, momentum and a MultiStepLR schedule, 30 epochs from the same start
on every backend: how far each backend's loss is from NumPy's, per epoch. Deviations below
{FLOOR:.0e}, exact agreement included, are drawn at {FLOOR:.0e}.</p>
<div class="plots" id="training">{deviation}</div>
<h2>Layer-by-layer diff</h2>
<p>The chapter's tied network with the weights of {html.escape(str((report.get("diffs") or {}).get("reference")))}
on every backend, in eval mode, on the chapter's input: each layer's output and each
parameter's gradient (of the sum of the outputs) against that backend's, as
<code>d2p.diff</code> reports them. A red row deviates beyond tolerance.</p>
<div id="diffs">{diff_section(report.get("diffs"))}</div>
</body></html>
"""


def diff_section(diffs: dict | None) -> str:
    """The report's layer-by-layer diff: each backend's run of the chapter's tied network
    with the reference backend's weights, against the reference's, layer by layer."""
    from .interop import DiffReport

    if not diffs or diffs.get("reference") is None:
        return '<p class="note">No backend saved a checkpoint: nothing to diff.</p>'
    parts = [DiffReport.from_dict(d).to_html() for d in diffs.get("reports", [])]
    parts += [f'<p class="note">{html.escape(b)}: no layer-by-layer diff ({html.escape(why)}).</p>'
              for b, why in diffs.get("missing", {}).items()]
    if not diffs.get("reports") and not diffs.get("missing"):
        parts.append('<p class="note">Only one backend ran: nothing to diff against.</p>')
    return "".join(parts)


def diff_page(report) -> str:
    """A :class:`~d2lparams.interop.DiffReport` as a self-contained HTML page
    (``d2lparams diff a b --out FILE``)."""
    a, b = (html.escape(str(x)) for x in report.backends)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>d2lparams diff</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{CSS}</style></head><body>
<h1>d2lparams diff</h1>
<p class="sub">d2lparams {html.escape(__version__)}: {a} against {b}.</p>
<div id="diff">{report.to_html()}</div>
</body></html>
"""


def write_html(path: str, report: dict) -> None:
    """Write the report of ``d2lparams compare`` (the dict it also writes as results.json)."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(render(report))
