"""The routing curve as a standalone SVG: quality against strong-call share, or against cost."""

from __future__ import annotations

from html import escape

WIDTH, HEIGHT, MARGIN = 640, 400, 64


def curve_svg(points: list[tuple[float, float]], x_label: str, weak: float, strong: float, title: str) -> str:
    """Linear axes; dashed lines at the weak and strong models' quality."""
    xs = [x for x, _ in points]
    low_y, high_y = min([weak, strong, *(y for _, y in points)]), max([weak, strong, *(y for _, y in points)])
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (high_y - low_y) or 1.0
    sx = lambda x: MARGIN + (x - min(xs)) / span_x * (WIDTH - MARGIN - 20)  # noqa: E731
    sy = lambda y: HEIGHT - MARGIN - (y - low_y) / span_y * (HEIGHT - MARGIN - 40)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>',
             f'<text x="{WIDTH / 2}" y="{HEIGHT - 16}" text-anchor="middle">{escape(x_label)}</text>',
             f'<text x="16" y="{HEIGHT / 2}" text-anchor="middle" transform="rotate(-90 16 {HEIGHT / 2})">quality</text>',
             f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - 20}" y2="{HEIGHT - MARGIN}" stroke="black"/>',
             f'<line x1="{MARGIN}" y1="40" x2="{MARGIN}" y2="{HEIGHT - MARGIN}" stroke="black"/>']
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        x, y = min(xs) + fraction * span_x, low_y + fraction * span_y
        parts.append(f'<text x="{sx(x):.1f}" y="{HEIGHT - MARGIN + 16}" text-anchor="middle">{x:.3g}</text>')
        parts.append(f'<text x="{MARGIN - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.3f}</text>')
    for label, level, color in (("weak", weak, "#d62728"), ("strong", strong, "#2ca02c")):
        parts.append(f'<line x1="{MARGIN}" y1="{sy(level):.1f}" x2="{WIDTH - 20}" y2="{sy(level):.1f}" '
                     f'stroke="{color}" stroke-dasharray="5,4"/>')
        parts.append(f'<text x="{WIDTH - 24}" y="{sy(level) - 4:.1f}" text-anchor="end" fill="{color}">{label}</text>')
    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    parts.append(f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{path}"/>')
    parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="#1f77b4"/>' for x, y in points]
    parts.append("</svg>")
    return "\n".join(parts)
