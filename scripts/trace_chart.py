#!/usr/bin/env python3
"""Draws a Chrome trace of taskrunner (as the demo writes with `--trace FILE`) as an SVG
timeline, for the docs (no dependencies beyond Python 3).

    scripts/trace_chart.py demo-trace.json docs/trace-demo.svg [FROM_MS TO_MS]

One row per thread. A task is a bar on the thread that ran it, coloured by priority; a post
(the `ready` event: the task entered a ready queue) is a tick on the posting thread, and a thin
line joins it to the bar of the task it made ready (the two share `ready_at_us`). The optional
window keeps the picture readable. The output depends only on the input.
"""

import json
import sys
from xml.sax.saxutils import escape

COLORS = {"UserBlocking": "#d9480f", "UserVisible": "#1c7ed6", "BestEffort": "#868e96"}
WIDTH = 1100
LEFT = 190
ROW = 22
TOP = 46


def main():
    src, out = sys.argv[1], sys.argv[2]
    window = (float(sys.argv[3]) * 1000, float(sys.argv[4]) * 1000) if len(sys.argv) > 4 else None
    events = json.load(open(src))
    names = {e["tid"]: e["args"]["name"] for e in events if e.get("ph") == "M"}
    open_spans, slices, readies = {}, [], []
    for e in events:
        if e.get("cat") != "taskrunner::task":
            continue
        args = e.get("args", {})
        if e["ph"] == "B":
            open_spans.setdefault(e["tid"], []).append(e)
        elif e["ph"] == "E" and open_spans.get(e["tid"]):
            b = open_spans[e["tid"]].pop()
            slices.append((e["tid"], b["ts"], e["ts"], b.get("args", {})))
        elif e["ph"] == "i":
            readies.append((e["tid"], e["ts"], args))
    if window:
        lo, hi = window
        slices = [s for s in slices if s[2] >= lo and s[1] <= hi]
        readies = [r for r in readies if lo <= r[1] <= hi]
    else:
        ts = [s[1] for s in slices] + [s[2] for s in slices] + [r[1] for r in readies]
        lo, hi = min(ts), max(ts)
    tids = sorted({s[0] for s in slices} | {r[0] for r in readies})
    row_of = {t: i for i, t in enumerate(tids)}
    span = max(hi - lo, 1.0)

    def x(ts):
        return LEFT + (min(max(ts, lo), hi) - lo) / span * (WIDTH - LEFT - 20)

    def y(tid):
        return TOP + row_of[tid] * ROW

    height = TOP + len(tids) * ROW + 40
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="10" y="18" font-size="13">taskrunner demo timeline, '
        f"{(hi - lo) / 1000:.1f} ms: tasks by thread (bars, coloured by priority), posts "
        f"(ticks) joined to the task they made ready</text>",
    ]
    for i, (name, color) in enumerate(COLORS.items()):
        svg.append(f'<rect x="{10 + i * 120}" y="26" width="10" height="10" fill="{color}"/>')
        svg.append(f'<text x="{24 + i * 120}" y="35">{name}</text>')
    for t in tids:
        svg.append(
            f'<text x="10" y="{y(t) + 14}">{escape(names.get(t, f"thread {t}"))}</text>'
        )
        svg.append(
            f'<line x1="{LEFT}" x2="{WIDTH - 20}" y1="{y(t) + ROW - 2}" y2="{y(t) + ROW - 2}" '
            f'stroke="#eee"/>'
        )
    starts = {}
    for tid, b, e, args in slices:
        starts.setdefault(args.get("ready_at_us"), (tid, b))
    for tid, ts, args in readies:
        target = starts.get(args.get("ready_at_us"))
        if target:
            svg.append(
                f'<line x1="{x(ts):.1f}" y1="{y(tid) + 10}" x2="{x(target[1]):.1f}" '
                f'y2="{y(target[0]) + 10}" stroke="#adb5bd" stroke-width="0.6"/>'
            )
    for tid, b, e, args in slices:
        w = max(x(e) - x(b), 1.5)
        color = COLORS.get(args.get("priority"), "#495057")
        who = f'{args["runner"]}: ' if args.get("runner") else ""
        title = escape(f'{who}{args.get("posted_from", "")}, queued {args.get("queue_time_us", "?")} µs')
        svg.append(
            f'<rect x="{x(b):.1f}" y="{y(tid) + 4}" width="{w:.1f}" height="{ROW - 8}" '
            f'fill="{color}"><title>{title}</title></rect>'
        )
    for tid, ts, args in readies:
        svg.append(
            f'<line x1="{x(ts):.1f}" x2="{x(ts):.1f}" y1="{y(tid) + 3}" y2="{y(tid) + ROW - 5}" '
            f'stroke="#212529" stroke-width="1"/>'
        )
    base = TOP + len(tids) * ROW + 16
    for k in range(6):
        ts = lo + span * k / 5
        svg.append(f'<text x="{x(ts) - 10:.1f}" y="{base}">{(ts - lo) / 1000:.1f} ms</text>')
    svg.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
