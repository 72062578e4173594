"""Rich display of point results in Jupyter: plain HTML tables, no plotting.

:func:`fixed_points_html` and :func:`ghosts_html` are what ``FixedPoints._repr_html_`` and
``Ghosts._repr_html_`` return: a one-line summary and one table row per point (at most
``max_rows``; the rest are counted). Numbers show 4 significant digits; "–" is a missing value
(NaN, or a certificate that proved nothing).
"""
from __future__ import annotations

import html
import math
from typing import Any, Sequence

import numpy as np

__all__ = ["fixed_points_html", "ghosts_html", "html_table", "cell"]

_STYLE = ("<style>.gs-table{border-collapse:collapse;font-size:13px}"
          ".gs-table th,.gs-table td{border-bottom:1px solid #d9e2ec;padding:3px 8px;"
          "text-align:left}.gs-table td.num{text-align:right;"
          "font-variant-numeric:tabular-nums}.gs-sub{color:#52606d;margin:2px 0 6px}</style>")


def cell(value: Any, digits: int = 4) -> str:
    """One table cell's text: ``digits`` significant digits, "–" for None or non-finite."""
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return f"{value:.{digits}g}" if math.isfinite(value) else "–"
    return str(value)


def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str,
               summary: str, max_rows: int = 50) -> str:
    """A titled HTML table (cells escaped; numbers right-aligned), ``max_rows`` rows shown."""
    esc = html.escape
    parts = [_STYLE, f"<div class=\"gs-result\"><b>{esc(title)}</b>",
             f"<p class=\"gs-sub\">{esc(summary)}</p>"]
    if rows:
        parts.append("<table class=\"gs-table\"><thead><tr>"
                     + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead><tbody>")
        for row in rows[:max_rows]:
            parts.append("<tr>" + "".join(
                f"<td class=\"num\">{esc(cell(v))}</td>"
                if isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
                else f"<td>{esc(cell(v))}</td>" for v in row) + "</tr>")
        parts.append("</tbody></table>")
        if len(rows) > max_rows:
            parts.append(f"<p class=\"gs-sub\">… and {len(rows) - max_rows} more rows</p>")
    parts.append("</div>")
    return "".join(parts)


def _summary(counts: dict, extra: str) -> str:
    parts = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    return f"{parts or 'no point'}; {extra}"


def fixed_points_html(result: Any, max_rows: int = 50) -> str:
    """HTML of a :class:`fixedpoints.FixedPoints`: kind, index, speed and certificate per point.

    Columns: ``#``, ``kind``, ``index`` (unstable directions), ``speed`` (q), ``certified
    radius`` (max-norm; "–" where nothing was proved), ``stability proved``.
    """
    radius = np.asarray(result.certified_radius, dtype=float)
    proved = np.asarray(result.stability_certified, dtype=bool)
    rows = [(i, str(result.kind[i]), int(result.n_unstable[i]), float(result.speed[i]),
             float(radius[i]), bool(proved[i])) for i in range(len(result))]
    summary = _summary(result.counts(), f"time={result.time}, status={result.status.name}; "
                       + result.certification_text())
    return html_table(["#", "kind", "index", "speed", "certified radius", "stability proved"],
                      rows, title="FixedPoints", summary=summary, max_rows=max_rows)


def ghosts_html(result: Any, max_rows: int = 50) -> str:
    """HTML of a :class:`fixedpoints.Ghosts`: kind, index, speed, strength and certificate.

    Columns: ``#``, ``kind``, ``index`` (unstable transverse directions), ``speed`` (q),
    ``strength`` (passage / relaxation time), ``class`` (strong/weak), ``passage time``,
    ``exclusion radius`` (no fixed point provably within it; "–" where nothing was proved).
    """
    excl = np.asarray(result.exclusion_radius, dtype=float)
    rows = [(i, str(result.kind[i]), int(result.n_unstable[i]), float(result.speed[i]),
             float(result.strength[i]), str(result.strength_class[i]) or "–",
             float(result.passage_time[i]), float(excl[i]) if excl[i] > 0 else None)
            for i in range(len(result))]
    counts = {str(k): int(np.sum(result.kind == k)) for k in dict.fromkeys(result.kind)}
    strength = ", ".join(f"{v} {k}" for k, v in result.class_counts().items() if v)
    summary = _summary(counts, f"time={result.time}" + (f"; {strength}" if strength else ""))
    return html_table(["#", "kind", "index", "speed", "strength", "class", "passage time",
                       "exclusion radius"], rows, title="Ghosts", summary=summary,
                      max_rows=max_rows)
