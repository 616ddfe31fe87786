"""The self-contained HTML report of ``d2lparams compare --out DIR`` (inline SVG plots)."""

from __future__ import annotations

import html

from . import _registry


def _color(name: str) -> str:
    """The colour a backend declares for plots (black for the NumPy reference)."""
    try:
        return _registry.adapter_class(name).color
    except (KeyError, ValueError, TypeError):
        return "#000"


def _svg_histogram(title: str, subtitle: str, data: dict) -> str:
    counts, edges = data["histogram"], data["edges"]
    w, h, pad = 320, 190, 34
    top = max(counts) or 1
    bar = (w - 2 * pad) / len(counts)
    parts = [f'<svg class="plot" width="{w}" height="{h}" role="img" aria-label="{html.escape(title)}">',
             f'<text x="{pad}" y="14" font-size="12" font-weight="bold">{html.escape(title)}</text>',
             f'<text x="{pad}" y="27" font-size="9">{html.escape(subtitle[:60])}</text>']
    for i, c in enumerate(counts):
        bh = (h - 2 * pad) * c / top
        parts.append(f'<rect x="{pad + i * bar:.1f}" y="{h - pad - bh:.1f}" width="{bar - 1:.1f}" '
                     f'height="{bh:.1f}" fill="#90a4ae"/>')
    # the formula: a uniform density over [-bound, bound]
    lo, hi = edges[0], edges[-1]
    b = data["bound"]
    x0 = pad + (-b - lo) / (hi - lo) * (w - 2 * pad)
    x1 = pad + (b - lo) / (hi - lo) * (w - 2 * pad)
    expected = sum(counts) / len(counts) * (hi - lo) / (2 * b)
    y = h - pad - (h - 2 * pad) * expected / top
    parts.append(f'<polyline fill="none" stroke="#d32f2f" stroke-width="2" points="'
                 f'{x0:.1f},{h - pad} {x0:.1f},{y:.1f} {x1:.1f},{y:.1f} {x1:.1f},{h - pad}"/>')
    parts.append(f'<text x="{pad}" y="{h - 8}" font-size="10">[{lo:.3f}, {hi:.3f}]  '
                 f'std {data["std"]:.4f} (formula {data["expected_std"]:.4f})</text></svg>')
    return "".join(parts)


def _svg_losses(curves: dict) -> str:
    w, h, pad = 520, 260, 36
    values = [v for c in curves.values() for v in c if v > 0]
    if not values:
        return "<p>no loss curves</p>"
    import math

    lo, hi = math.log10(min(values)), math.log10(max(values))
    hi = hi if hi > lo else lo + 1
    n = max(len(c) for c in curves.values())
    parts = [f'<svg class="plot" width="{w}" height="{h}" role="img" aria-label="training loss">',
             f'<text x="{pad}" y="16" font-size="12">training loss (log scale), 30 epochs, '
             'the same start on every backend</text>']
    for i, (name, curve) in enumerate(curves.items()):
        pts = " ".join(
            f"{pad + k * (w - 2 * pad) / max(1, n - 1):.1f},"
            f"{h - pad - (math.log10(max(v, 1e-30)) - lo) / (hi - lo) * (h - 2 * pad):.1f}"
            for k, v in enumerate(curve))
        color = _color(name)
        dash = ' stroke-dasharray="6 4"' if name == "NumPy reference" else ""
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{pts}"/>')
        parts.append(f'<text x="{w - pad - 110}" y="{30 + 14 * i}" font-size="11" fill="{color}">'
                     f'{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def write_html(path: str, report: dict) -> None:
    """Write the report: the table, the native default-initialization histograms of each
    framework against its formula, and every backend's training loss overlaid."""
    hist, curves = [], {}
    for name, data in report["backends"].items():
        for r in data.get("results", []):
            if r["scenario"] == "native defaults" and r["data"].get("histogram"):
                scheme = r["data"]["scheme"].split(": ", 1)[-1]
                hist.append(_svg_histogram(name, scheme, r["data"]))
            if r["scenario"] == "optimizer groups" and r["data"].get("losses"):
                curves[name] = r["data"]["losses"]
                curves.setdefault("NumPy reference", r["data"]["reference"])
    if "NumPy reference" in curves:
        curves["NumPy reference"] = curves.pop("NumPy reference")
    versions = ", ".join(f"{b} {d.get('version', '?')}" for b, d in report["backends"].items()
                         if not d.get("not_installed"))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>d2lparams compare</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em}}
pre{{background:#f5f5f5;padding:1em;overflow:auto}}.plot{{margin:.5em;border:1px solid #ddd}}</style>
</head><body>
<h1>d2lparams compare</h1>
<p>Each scenario of the chapter ran on each backend in its own process and was checked against
NumPy; a cell gives the verdict and the largest relative deviation. Frameworks: {html.escape(versions)}.</p>
<pre id="table">{html.escape(report["table"])}</pre>
<h2>Native default initialization</h2>
<p>Histogram of each framework's own default weights for Linear(300, 300); red: the documented formula.</p>
<div id="histograms">{"".join(hist)}</div>
<h2>Training loss</h2>
<div id="losses">{_svg_losses(curves)}</div>
</body></html>
"""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(page)
