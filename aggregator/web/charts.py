"""Inline SVG charts for the model page: pure functions from figures to SVG text, every value escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

# Colours and dash patterns per series, so two lines differ in more than hue.
PALETTE = ("#1f5fbf", "#c2571a", "#2e8540", "#8a3ca5", "#6b6b6b", "#b8860b")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 4", "10 4")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'  # attributes, not a style: the desk's CSP allows no inline style


def _e(value: object) -> str:
    """Text or an attribute value, escaped for SVG (an XML dialect: quotes too)."""
    return escape(str(value), quote=True)


def _num(value: float) -> str:
    return f"{value:.1f}"


def _svg(width: int, height: int, title: str, desc: str, body: Sequence[str], css_class: str) -> str:
    return (f'<svg class="{_e(css_class)}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" {FONT}>'
            f"<title>{_e(title)}</title><desc>{_e(desc)}</desc>{''.join(body)}</svg>")


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def line_chart(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], *,
               width: int = 540, height: int = 250) -> str:
    """One line per series over `labels` (x), values from 0 to 1 (y); a missing value breaks the line."""
    left, right, top, bottom = 40, 130, 12, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(labels) - 1, 1)

    def x(i: int) -> float:
        return left + (i * step if len(labels) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - max(0.0, min(1.0, v)))

    body = [f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>']
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{_num(y(tick))}" y2="{_num(y(tick))}" stroke="#eee"/>'
                    f'<text x="{left - 4}" y="{_num(y(tick) + 4)}" text-anchor="end">{tick:.2f}</text>')
    every = max(1, len(labels) // 12)
    for i, label in enumerate(labels):
        if i % every == 0 or i == len(labels) - 1:
            body.append(f'<text x="{_num(x(i))}" y="{height - bottom + 14}" text-anchor="end" '
                        f'transform="rotate(-35 {_num(x(i))} {height - bottom + 14})">{_e(label)}</text>')
    lines = []
    for n, (name, values) in enumerate(series):
        colour, dash = PALETTE[n % len(PALETTE)], DASHES[n % len(DASHES)]
        runs: list[list[str]] = [[]]
        for i, v in enumerate(values):
            if v is None:
                runs.append([])
            else:
                runs[-1].append(f"{_num(x(i))},{_num(y(v))}")
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        for run in runs:
            if len(run) > 1:
                body.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="2"{dashed}/>')
            for point in run:
                px, py = point.split(",")
                body.append(f'<circle cx="{px}" cy="{py}" r="2.5" fill="{colour}"/>')
        ly = top + 14 * n + 6
        body.append(f'<line x1="{width - right + 10}" x2="{width - right + 34}" y1="{ly}" y2="{ly}" stroke="{colour}" '
                    f'stroke-width="2"{dashed}/><text x="{width - right + 38}" y="{ly + 4}">{_e(name)}</text>')
        lines.append(f"{name}: " + ", ".join(f"{label} {_fmt(v)}" for label, v in zip(labels, values)))
    return _svg(width, height, title, "; ".join(lines), body, "chart line-chart")


def calibration_chart(rows: Sequence[tuple[str, int, float, float]], *, size: int = 300) -> str:
    """Predicted P(pick) (x) against the share picked (y), one dot per bin sized by its posts, each labelled
    with its count; the diagonal is perfect calibration. Rows as `evaluate.calibration` gives them."""
    pad = 40
    plot = size - 2 * pad

    def at(v: float) -> float:
        return max(0.0, min(1.0, v)) * plot

    body = [f'<rect x="{pad}" y="{pad // 2}" width="{plot}" height="{plot}" fill="none" stroke="#ccc"/>',
            f'<line x1="{pad}" y1="{pad // 2 + plot}" x2="{pad + plot}" y2="{pad // 2}" stroke="#999" stroke-dasharray="4 3"/>']
    for tick in (0.0, 0.5, 1.0):
        body.append(f'<text x="{_num(pad + at(tick))}" y="{pad // 2 + plot + 14}" text-anchor="middle">{tick:.1f}</text>'
                    f'<text x="{pad - 4}" y="{_num(pad // 2 + plot - at(tick) + 4)}" text-anchor="end">{tick:.1f}</text>')
    body.append(f'<text x="{pad + plot // 2}" y="{size - 4}" text-anchor="middle">predicted P(pick)</text>'
                f'<text x="10" y="{pad // 2 + plot // 2}" text-anchor="middle" transform="rotate(-90 10 {pad // 2 + plot // 2})">share picked</text>')
    most = max((n for _, n, _, _ in rows), default=1)
    for name, n, mean_p, share in rows:
        cx, cy = pad + at(mean_p), pad // 2 + plot - at(share)
        r = 3 + 9 * (n / most) ** 0.5
        body.append(f'<circle cx="{_num(cx)}" cy="{_num(cy)}" r="{_num(r)}" fill="{PALETTE[0]}" fill-opacity="0.5" '
                    f'stroke="{PALETTE[0]}"><title>{_e(name)}: {n} posts, mean P {mean_p:.2f}, {share:.2f} picked</title></circle>'
                    f'<text x="{_num(cx + r + 2)}" y="{_num(cy + 4)}">{n}</text>')
    desc = "; ".join(f"P {name}: {n} posts, mean P {mean_p:.2f}, share picked {share:.2f}" for name, n, mean_p, share in rows)
    return _svg(size, size, "Calibration of the model's P(pick)", desc or "no bins", body, "chart calibration-chart")


def confusion_chart(sections: Sequence[str], cells: Sequence[tuple[str, str, int]], *, cell: int = 26) -> str:
    """The confusion matrix as a grid: the editor's section per row, the model's per column, each cell's
    count written in it and its shade by count; sections are numbered, the key beside the grid."""
    index = {name: i for i, name in enumerate(sections)}
    n = len(sections)
    left, top = 36, 36
    key_w = 330
    width, height = left + n * cell + 16 + key_w, max(top + n * cell + 10, top + 14 * n + 10)
    most = max((c for _, _, c in cells), default=1)
    body = [f'<text x="{left + n * cell // 2}" y="12" text-anchor="middle">model\u2019s section</text>',
            f'<text x="10" y="{top + n * cell // 2}" text-anchor="middle" transform="rotate(-90 10 {top + n * cell // 2})">editor\u2019s</text>']
    for i in range(n):
        body.append(f'<text x="{left + i * cell + cell // 2}" y="{top - 6}" text-anchor="middle">{i + 1}</text>'
                    f'<text x="{left - 4}" y="{top + i * cell + cell // 2 + 4}" text-anchor="end">{i + 1}</text>')
        for j in range(n):
            body.append(f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell}" height="{cell}" fill="#fff" stroke="#ddd"/>')
    for truth, guess, count in cells:
        i, j = index[truth], index[guess]
        shade = 0.15 + 0.85 * count / most
        colour = PALETTE[2] if i == j else PALETTE[1]
        body.append(f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell}" height="{cell}" fill="{colour}" '
                    f'fill-opacity="{shade:.2f}"><title>{_e(truth)} filed as {_e(guess)}: {count}</title></rect>'
                    f'<text x="{left + j * cell + cell // 2}" y="{top + i * cell + cell // 2 + 4}" text-anchor="middle">{count}</text>')
    for i, name in enumerate(sections):
        short = name if len(name) <= 52 else name[:51] + "…"
        body.append(f'<text x="{left + n * cell + 16}" y="{top + 14 * i + 10}">{i + 1}. {_e(short)}</text>')
    desc = "; ".join(f"{truth} filed as {guess}: {count}" for truth, guess, count in cells)
    return _svg(width, height, "Section confusion matrix", desc or "no picks", body, "chart confusion-chart")


def bar_chart(title: str, rows: Sequence[tuple[str, float, str]], *, width: int = 640, bar: int = 16) -> str:
    """Horizontal bars, one per (label, value from 0 to 1, the text written after the bar)."""
    left = 220
    plot = width - left - 110
    body = []
    for i, (label, value, text) in enumerate(rows):
        yy = 4 + i * (bar + 4)
        short = label if len(label) <= 34 else label[:33] + "…"
        body.append(f'<text x="{left - 6}" y="{yy + bar - 4}" text-anchor="end">{_e(short)}</text>'
                    f'<rect x="{left}" y="{yy}" width="{_num(plot * max(0.0, min(1.0, value)))}" height="{bar}" fill="{PALETTE[0]}"/>'
                    f'<text x="{_num(left + plot * max(0.0, min(1.0, value)) + 4)}" y="{yy + bar - 4}">{_e(text)}</text>')
    desc = "; ".join(f"{label}: {text}" for label, _, text in rows)
    return _svg(width, 8 + len(rows) * (bar + 4), title, desc or "none", body, "chart bar-chart")
