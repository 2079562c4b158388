#!/usr/bin/env python3
"""Draws the engine bench's ratios as an SVG bar chart (no dependencies beyond Python 3).

    scripts/perf_chart.py [results.json] [out.svg]

Defaults: target/engine-bench/results.json -> docs/perf-chart.svg (the JSON that
`cargo bench --bench engine` writes).

One horizontal bar per (workload, peer): the ratio taskrunner / peer on a log scale, oriented
so that > 1 (right of the 1.0 line, green) means taskrunner is better. The baseline itself and
other taskrunner configurations ("variant" peers) get no bar; the goals that compare those
("derived" entries) are listed under the chart. The output depends only on the JSON: the same
file always gives the same SVG.
"""

import json
import math
import os
import sys
from xml.sax.saxutils import escape

DEFAULT_IN = "target/engine-bench/results.json"
DEFAULT_OUT = "docs/perf-chart.svg"

# Layout, in pixels.
WIDTH = 1120
LEFT = 300  # peer labels end here
PLOT_W = 640  # the log-scale plot area
RATIO_X = LEFT + PLOT_W + 12  # the ratio text column
ROW = 17  # one bar
HEADER_ROW = 20  # one workload heading
TOP = 84  # below the title block
HEADING_CHARS = 125  # a workload heading is cut to this, so it stays clear of "vs <baseline>"
FONT = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""

# Ratios are clamped to this range (drawn with an arrow at the edge beyond it).
MIN_RATIO = 1e-3
MAX_RATIO = 1e3

GOOD = "#2e7d32"
BAD = "#c62828"


def fmt_ratio(r):
    if r >= 100:
        return f"{r:.0f}×"
    if r >= 10:
        return f"{r:.1f}×"
    if r >= 0.1:
        return f"{r:.2f}×"
    return f"{r:.3f}×"


def fmt_load(la):
    if not la:
        return "n/a"
    return "/".join(f"{x:.2f}" for x in la)


def tick_label(v):
    if v >= 1:
        return f"{v:g}×"
    return f"{v:.3f}".rstrip("0") + "×"


def peer_rows(workload):
    """The peers that get a bar: every non-baseline, non-variant peer, in JSON order."""
    rows = []
    for p in workload.get("peers", []):
        role = p.get("role", "peer" if p["name"] != workload.get("baseline") else "baseline")
        if role != "peer":
            continue
        r = p.get("ratio")
        rows.append((p["name"], r if isinstance(r, (int, float)) and r > 0 else None))
    return rows


def scale_range(ratios):
    lo = min([0.5] + ratios)
    hi = max([2.0] + ratios)
    lo = max(MIN_RATIO, 10 ** math.floor(math.log10(lo)))
    hi = min(MAX_RATIO, 10 ** math.ceil(math.log10(hi)))
    return lo, hi


def ticks(lo, hi):
    out = []
    k = round(math.log10(lo))
    while 10**k <= hi * 1.0001:
        for m in (1, 2, 5):
            v = m * 10**k
            if lo * 0.9999 <= v <= hi * 1.0001:
                out.append(v)
        k += 1
    return out


def render(doc):
    machine = doc.get("machine", {})
    workloads = doc.get("workloads", [])
    groups = [(w, peer_rows(w)) for w in workloads]
    ratios = [r for _, rows in groups for _, r in rows if r is not None]
    lo, hi = scale_range(ratios)
    llo, lhi = math.log10(lo), math.log10(hi)

    def x_of(r):
        r = min(max(r, lo), hi)
        return LEFT + (math.log10(r) - llo) / (lhi - llo) * PLOT_W

    derived = [(w["id"], d) for w in workloads for d in w.get("derived", [])]
    body_h = sum(HEADER_ROW + ROW * max(1, len(rows)) + 6 for _, rows in groups)
    height = TOP + body_h + 40 + 16 * (len(derived) + 2)

    out = []
    add = out.append
    add(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}">'
    )
    add(f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>')

    # Title block.
    quick = " · QUICK smoke run (not a measurement)" if machine.get("quick") else ""
    add(
        f'<text x="16" y="26" {FONT} font-size="17" font-weight="bold">'
        "taskrunner engine bench: taskrunner / peer, same run (log scale; &gt; 1 = taskrunner better)"
        "</text>"
    )
    sub = (
        f"{machine.get('date', '?')} · nproc {machine.get('nproc', '?')} · "
        f"workers {machine.get('workers', '?')} · rounds {machine.get('rounds', '?')} · "
        f"loadavg (1/5/15 min) start {fmt_load(machine.get('loadavg_start'))} → "
        f"end {fmt_load(machine.get('loadavg_end'))}{quick}"
    )
    add(f'<text x="16" y="46" {FONT} font-size="12" fill="#333">{escape(sub)}</text>')
    add(
        f'<text x="16" y="64" {FONT} font-size="11" fill="#555">'
        "Bars: median over rounds of each peer, ratio oriented so that right of 1× means taskrunner "
        "is faster / smaller. Green: taskrunner ahead; red: behind."
        "</text>"
    )

    # Axis: ticks and grid lines over the whole body, the 1.0 line on top.
    y0, y1 = TOP, TOP + body_h
    for v in ticks(lo, hi):
        x = x_of(v)
        add(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y1}" stroke="#e0e0e0" stroke-width="1"/>')
        add(
            f'<text x="{x:.1f}" y="{y0 - 4}" {FONT} font-size="10" fill="#555" '
            f'text-anchor="middle">{escape(tick_label(v))}</text>'
        )
        add(
            f'<text x="{x:.1f}" y="{y1 + 12}" {FONT} font-size="10" fill="#555" '
            f'text-anchor="middle">{escape(tick_label(v))}</text>'
        )

    y = TOP
    for i, (w, rows) in enumerate(groups):
        block_h = HEADER_ROW + ROW * max(1, len(rows))
        if i % 2 == 0:
            add(f'<rect x="8" y="{y}" width="{WIDTH - 16}" height="{block_h + 2}" fill="#f6f8fa"/>')
        better = "higher is better" if w.get("higher_is_better") else "lower is better"
        head = f"{w['id']} — {w.get('name', '')} [{w.get('metric', '')}, {better}]"
        if len(head) > HEADING_CHARS:
            head = head[: HEADING_CHARS - 1] + "…"
        add(
            f'<text x="16" y="{y + 14}" {FONT} font-size="12" font-weight="bold">'
            f"{escape(head)}</text>"
        )
        add(
            f'<text x="{WIDTH - 16}" y="{y + 14}" {FONT} font-size="10" fill="#555" '
            f'text-anchor="end">vs {escape(w.get("baseline", ""))}</text>'
        )
        y += HEADER_ROW
        if not rows:
            add(f'<text x="32" y="{y + 12}" {FONT} font-size="11" fill="#777">(no peers)</text>')
        for name, r in rows:
            cy = y + ROW / 2
            add(
                f'<text x="{LEFT - 8}" y="{cy + 4:.1f}" {FONT} font-size="11" '
                f'text-anchor="end">{escape(w["id"] + " · " + name)}</text>'
            )
            if r is None:
                add(
                    f'<text x="{RATIO_X}" y="{cy + 4:.1f}" {FONT} font-size="11" '
                    f'fill="#777">n/a (nothing to compare: ≤ 0, or under 1 byte)</text>'
                )
            else:
                x1, x2 = x_of(1.0), x_of(r)
                left, width = min(x1, x2), abs(x2 - x1)
                color = GOOD if r >= 1 else BAD
                add(
                    f'<rect x="{left:.1f}" y="{y + 3}" width="{max(width, 1.0):.1f}" '
                    f'height="{ROW - 6}" fill="{color}"/>'
                )
                clipped = r > hi or r < lo
                label = fmt_ratio(r) + (" (off scale)" if clipped else "")
                add(
                    f'<text x="{RATIO_X}" y="{cy + 4:.1f}" {FONT} font-size="11" '
                    f'fill="{color}">{escape(label)}</text>'
                )
            y += ROW
        y += 6

    x1 = x_of(1.0)
    add(f'<line x1="{x1:.1f}" y1="{y0}" x2="{x1:.1f}" y2="{y1}" stroke="#000" stroke-width="1.5"/>')

    # Goals that compare taskrunner with itself (derived entries).
    y = y1 + 34
    add(f'<text x="16" y="{y}" {FONT} font-size="12" font-weight="bold">Goals</text>')
    if not derived:
        y += 16
        add(f'<text x="16" y="{y}" {FONT} font-size="11" fill="#777">(none in this run)</text>')
    for wid, d in derived:
        y += 16
        met = d.get("met")
        mark, color = {True: ("met", GOOD), False: ("NOT met", BAD)}.get(met, ("", "#333"))
        value = d.get("value")
        value = f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"
        text = f"{wid}: {d.get('name', '')} = {value} (goal {d.get('goal', '')})"
        if mark:
            text += f" — {mark}"
        add(f'<text x="16" y="{y}" {FONT} font-size="11" fill="{color}">{escape(text)}</text>')

    add("</svg>")
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) > 3 or any(a in ("-h", "--help") for a in argv[1:]):
        print(__doc__.strip())
        return 0 if len(argv) <= 3 else 2
    src = argv[1] if len(argv) > 1 else DEFAULT_IN
    dst = argv[2] if len(argv) > 2 else DEFAULT_OUT
    try:
        with open(src, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print(f"perf_chart: cannot read {src}: {e} (run `cargo bench --bench engine` first)", file=sys.stderr)
        return 1
    svg = render(doc)
    parent = os.path.dirname(dst)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(dst, "w", encoding="utf-8", newline="\n") as f:
        f.write(svg)
    n = sum(len(peer_rows(w)) for w in doc.get("workloads", []))
    print(f"{dst}: {n} bars from {src}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
