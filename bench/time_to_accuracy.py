"""Draws docs/time-to-accuracy.svg from docs/time_to_accuracy.csv: test accuracy (with TTA) against whole-run wall
minutes, each run a point, one colour per recipe and side, with the 90.38% line (PyTorch's airbench94 on this
project's archive) and the 8-minute line. Plain Python, no plotting library: `python3 bench/time_to_accuracy.py`.

CSV columns: recipe, side, seed, wall_min, acc_tta (percent), note.
"""
import csv, os, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "docs", "time_to_accuracy.csv")
DST = os.path.join(ROOT, "docs", "time-to-accuracy.svg")
TARGET = 90.38
TIME_TARGET_MIN = 8.0  # issue 28's wall-time target for the Muon recipe
H, L, T, B = 440, 70, 40, 60  # height and margins; the width follows the legend
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#e377c2", "#7f7f7f", "#bcbd22", "#393b79"]


def main():
    with open(SRC, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["recipe"] and not r["recipe"].startswith("#")]
    if not rows:
        sys.exit(f"{SRC}: no rows")
    pts = [(r["recipe"] + " - " + r["side"], float(r["wall_min"]), float(r["acc_tta"])) for r in rows]
    # The legend's column as wide as its longest label (about 7 px a character at 12 px).
    R = max(230, 45 + 7 * max(len(p[0]) for p in pts))
    W = L + 460 + R
    xmax = max(p[1] for p in pts) * 1.1
    ys = [p[2] for p in pts] + [TARGET]
    ymin, ymax = min(ys) - 0.2, max(ys) + 0.2
    sx = lambda x: L + (W - L - R) * x / xmax
    sy = lambda y: T + (H - T - B) * (ymax - y) / (ymax - ymin)
    groups = list(dict.fromkeys(p[0] for p in pts))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="22" font-size="14">Test accuracy (TTA) against whole-run wall time, 2-core AMD CPUs, each run a point</text>']
    # axes and ticks
    out.append(f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>')
    out.append(f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>')
    step = 2 if xmax <= 20 else 5
    x = 0
    while x <= xmax:
        out.append(f'<line x1="{sx(x):.1f}" y1="{H - B}" x2="{sx(x):.1f}" y2="{H - B + 5}" stroke="black"/>')
        out.append(f'<text x="{sx(x):.1f}" y="{H - B + 18}" text-anchor="middle">{x}</text>')
        x += step
    y = round(ymin, 1)
    while y <= ymax:
        out.append(f'<line x1="{L - 5}" y1="{sy(y):.1f}" x2="{L}" y2="{sy(y):.1f}" stroke="black"/>')
        out.append(f'<text x="{L - 8}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.1f}</text>')
        y = round(y + 0.2, 1)
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 18}" text-anchor="middle">wall minutes (data load, training, evaluation)</text>')
    out.append(f'<text x="18" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 18 {(T + H - B) / 2})">test accuracy with TTA, %</text>')
    out.append(f'<line x1="{L}" y1="{sy(TARGET):.1f}" x2="{W - R}" y2="{sy(TARGET):.1f}" stroke="#777" stroke-dasharray="5,4"/>')
    out.append(f'<text x="{W - R - 4}" y="{sy(TARGET) - 5:.1f}" text-anchor="end" fill="#555">90.38% (PyTorch airbench94 here)</text>')
    if TIME_TARGET_MIN < xmax:
        out.append(f'<line x1="{sx(TIME_TARGET_MIN):.1f}" y1="{T}" x2="{sx(TIME_TARGET_MIN):.1f}" y2="{H - B}" stroke="#777" stroke-dasharray="2,4"/>')
        out.append(f'<text x="{sx(TIME_TARGET_MIN) - 4:.1f}" y="{T + 12}" text-anchor="end" fill="#555">8-minute target</text>')
    for i, g in enumerate(groups):
        c = COLOURS[i % len(COLOURS)]
        marker = "square" if "PyTorch" in g else "circle"
        for name, x, y in pts:
            if name != g:
                continue
            if marker == "circle":
                out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" fill="{c}" fill-opacity="0.8"/>')
            else:
                out.append(f'<rect x="{sx(x) - 5:.1f}" y="{sy(y) - 5:.1f}" width="10" height="10" fill="{c}"/>')
        ly = T + 10 + 20 * i
        if marker == "circle":
            out.append(f'<circle cx="{W - R + 20}" cy="{ly}" r="5" fill="{c}"/>')
        else:
            out.append(f'<rect x="{W - R + 15}" y="{ly - 5}" width="10" height="10" fill="{c}"/>')
        out.append(f'<text x="{W - R + 32}" y="{ly + 4}">{g}</text>')
    out.append("</svg>")
    tmp = DST + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, DST)
    print(f"wrote {DST} ({len(pts)} points)")


if __name__ == "__main__":
    main()
