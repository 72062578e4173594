"""The self-contained ``report.html``: images embedded as base64, inline CSS and JS.

One page, no external resource: an epoch slider over the portraits, the timeline, the events
table, the epochs that failed, and the settings and versions. :func:`write_html` streams the
images in one at a time, so memory does not grow with the number of epochs.
"""
from __future__ import annotations

import base64
import html
import io
import math
import os
from pathlib import Path
from typing import IO, Any, Mapping, Optional, Sequence, Tuple, Union

from fixedpoints.serialization import atomic_write, json_text

__all__ = ["write_html", "write_index_html", "format_number", "html_key"]

#: The second line of a page written with a key: ``<!-- ghostscope-key: KEY -->``.
_KEY_PREFIX = "<!-- ghostscope-key: "


def html_key(path: Union[str, os.PathLike]) -> Optional[str]:
    """The key :func:`write_html` wrote on the page's second line (None if absent)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(256).decode("utf-8", "replace").split("\n")
    except OSError:
        return None
    if len(head) < 2 or not head[1].startswith(_KEY_PREFIX) or not head[1].endswith(" -->"):
        return None
    return head[1][len(_KEY_PREFIX):-len(" -->")]


def _data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def format_number(value: Any, digits: int = 4) -> str:
    """A number for the page: ``digits`` significant digits, "–" for None, NaN or inf."""
    if value is None:
        return "–"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.{digits}g}"
    return str(value)


_CSS = """
:root { --ink:#1f2933; --muted:#52606d; --line:#d9e2ec; --accent:#7b2cbf; --bg:#f8fafc; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       background: var(--bg); margin: 0; }
header, main { max-width: 1100px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 22px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 26px 0 10px; border-bottom: 1px solid var(--line);
     padding-bottom: 4px; }
.sub { color: var(--muted); margin: 0; word-break: break-all; }
.facts { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0 0; padding: 0;
         list-style: none; }
.facts li { background: white; border: 1px solid var(--line); border-radius: 8px;
            padding: 6px 12px; }
.facts b { display: block; font-size: 18px; }
.viewer { background: white; border: 1px solid var(--line); border-radius: 10px; padding: 14px; }
.controls { display: flex; align-items: center; gap: 10px; flex-wrap: wrap; }
.controls input[type=range] { flex: 1; min-width: 200px; accent-color: var(--accent); }
.controls button { font: inherit; border: 1px solid var(--line); background: white;
                   border-radius: 6px; padding: 3px 10px; cursor: pointer; }
#epoch-label { font-variant-numeric: tabular-nums; min-width: 150px; font-weight: 600; }
#frames { text-align: center; margin-top: 10px; }
#frames img { max-width: 100%; height: auto; }
#frame-caption { color: var(--muted); text-align: center; margin: 4px 0 0; }
img.timeline { max-width: 100%; height: auto; background: white; border: 1px solid var(--line);
               border-radius: 10px; }
table { border-collapse: collapse; width: 100%; background: white; font-size: 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left;
         vertical-align: top; }
th { background: #eef2f7; position: sticky; top: 0; }
tr.event { cursor: pointer; }
tr.event:hover, tr.event.current { background: #f3e8ff; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; }
pre { background: white; border: 1px solid var(--line); border-radius: 8px; padding: 10px;
      overflow: auto; }
.empty { color: var(--muted); font-style: italic; }
footer { max-width: 1100px; margin: 30px auto; padding: 0 20px; color: var(--muted);
         font-size: 13px; }
"""

_JS = """
(function () {
  'use strict';
  var frames = Array.prototype.slice.call(document.querySelectorAll('#frames img'));
  var slider = document.getElementById('epoch-slider');
  var label = document.getElementById('epoch-label');
  var caption = document.getElementById('frame-caption');
  var rows = Array.prototype.slice.call(document.querySelectorAll('tr.event'));
  var timer = null;
  function show(i) {
    if (!frames.length) { return; }
    i = Math.max(0, Math.min(frames.length - 1, i));
    frames.forEach(function (f, j) { f.hidden = (j !== i); });
    var f = frames[i];
    slider.value = String(i);
    label.textContent = 'epoch ' + f.dataset.epoch + ' (' + (i + 1) + ' / ' + frames.length + ')';
    caption.textContent = f.dataset.caption || '';
    rows.forEach(function (r) {
      r.classList.toggle('current', r.dataset.epoch === f.dataset.epoch);
    });
  }
  function step(d) { show(Number(slider.value) + d); }
  if (slider) {
    slider.addEventListener('input', function () { show(Number(slider.value)); });
    document.getElementById('prev').addEventListener('click', function () { step(-1); });
    document.getElementById('next').addEventListener('click', function () { step(1); });
    var play = document.getElementById('play');
    play.addEventListener('click', function () {
      if (timer) { clearInterval(timer); timer = null; play.textContent = '▶ play'; return; }
      play.textContent = '❚❚ pause';
      timer = setInterval(function () {
        if (Number(slider.value) >= frames.length - 1) { show(0); } else { step(1); }
      }, 450);
    });
    document.addEventListener('keydown', function (e) {
      if (e.target === slider) { return; }
      if (e.key === 'ArrowRight') { step(1); } else if (e.key === 'ArrowLeft') { step(-1); }
    });
  }
  rows.forEach(function (r) {
    r.addEventListener('click', function () {
      var k = frames.findIndex(function (f) { return f.dataset.epoch === r.dataset.epoch; });
      if (k >= 0) { show(k); document.getElementById('portraits').scrollIntoView(); }
    });
  });
  show(0);
}());
"""


def write_html(path: Union[str, os.PathLike], *, title: str, subtitle: str,
               facts: Sequence[Tuple[str, str]],
               frames: Sequence[Tuple[int, Path, str]], timeline: Optional[Path],
               events: Sequence[Mapping[str, Any]], failed: Sequence[Mapping[str, Any]],
               details: Mapping[str, Any], key: Optional[str] = None) -> Path:
    """Write the self-contained ``report.html`` (images streamed in one at a time).

    Parameters
    ----------
    frames : sequence of (epoch, png path, caption)
    events : sequence of dicts with epoch, epoch_before, epoch_after, kind, points, lead_time,
        detail, and ``sentence`` (the event in words, shown instead of the JSON detail)
    failed : sequence of dicts with epoch, source, reason
    details : JSON-ready settings and versions, shown at the bottom
    key : str, optional
        What the page was made from, written as a comment on its second line
        (:func:`html_key` reads it back; a re-run that finds the same key keeps the page).
    """
    if key is not None and ("\n" in key or "--" in key):
        raise ValueError(f"key={key!r} is invalid; pass one line without '--'")
    esc = html.escape

    def write(handle: IO[bytes]) -> None:
        with io.TextIOWrapper(handle, encoding="utf-8") as out:  # closing it closes handle
            out.write("<!DOCTYPE html>\n")
            if key is not None:
                out.write(f"{_KEY_PREFIX}{key} -->\n")
            out.write("<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                      f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n")
            out.write(f"<header><h1>{esc(title)}</h1><p class=\"sub\">{esc(subtitle)}</p>\n"
                      "<ul class=\"facts\">")
            for name, value in facts:
                out.write(f"<li><b>{esc(value)}</b>{esc(name)}</li>")
            out.write("</ul></header>\n<main>\n")
            out.write("<section id=\"portraits\"><h2>Phase portraits</h2>\n")
            if frames:
                out.write("<div class=\"viewer\"><div class=\"controls\">"
                          "<button id=\"prev\" type=\"button\" "
                          "aria-label=\"previous epoch\">◀</button>"
                          f"<input id=\"epoch-slider\" type=\"range\" min=\"0\" "
                          f"max=\"{len(frames) - 1}\" value=\"0\" step=\"1\" "
                          "aria-label=\"epoch\">"
                          "<button id=\"next\" type=\"button\" aria-label=\"next epoch\">▶</button>"
                          "<button id=\"play\" type=\"button\">▶ play</button>"
                          "<span id=\"epoch-label\"></span></div>\n<div id=\"frames\">")
                for i, (epoch, png, caption) in enumerate(frames):
                    hidden = "" if i == 0 else " hidden"
                    out.write(f"<img data-epoch=\"{int(epoch)}\" data-caption=\"{esc(caption)}\" "
                              f"alt=\"phase portrait at epoch {int(epoch)}\"{hidden} src=\"")
                    out.write(_data_url(png))
                    out.write("\">\n")
                out.write("</div><p id=\"frame-caption\"></p></div>\n")
            else:
                out.write("<p class=\"empty\">No epoch could be analyzed, so there is no "
                          "portrait.</p>\n")
            out.write("</section>\n<section id=\"timeline\"><h2>Timeline</h2>\n")
            if timeline is not None:
                out.write(f"<img class=\"timeline\" alt=\"loss and point counts over epochs\" "
                          f"src=\"{_data_url(timeline)}\">\n")
            out.write("</section>\n<section id=\"events\"><h2>Restructuring events</h2>\n")
            if events:
                out.write("<table><thead><tr><th>between</th><th>what happened</th>"
                          "<th>kind</th><th>lead time</th></tr></thead><tbody>\n")
                for e in events:
                    sentence = e.get("sentence") or json_text(e.get("detail", {}), indent=None)
                    out.write(
                        f"<tr class=\"event\" data-epoch=\"{int(e['epoch_after'])}\">"
                        f"<td>{int(e['epoch_before'])} → {int(e['epoch_after'])}</td>"
                        f"<td>{esc(sentence)}</td>"
                        f"<td>{esc(str(e['kind']))}</td>"
                        f"<td class=\"num\">{esc(format_number(e.get('lead_time')))}</td></tr>\n")
                out.write("</tbody></table>\n<p class=\"sub\">Every detail (points, distances, "
                          "eigenvalues) is in events.csv and events.json.</p>\n")
            else:
                out.write("<p class=\"empty\">No restructuring event between consecutive "
                          "analyzed epochs.</p>\n")
            out.write("</section>\n")
            if failed:
                out.write("<section id=\"failed\"><h2>Epochs that failed</h2><table><thead><tr>"
                          "<th>epoch</th><th>file</th><th>reason</th></tr></thead><tbody>\n")
                for f in failed:
                    out.write(f"<tr><td class=\"num\">{esc(format_number(f.get('epoch')))}</td>"
                              f"<td><code>{esc(str(f.get('source', '')))}</code></td>"
                              f"<td>{esc(str(f.get('reason', '')))}</td></tr>\n")
                out.write("</tbody></table></section>\n")
            out.write("<section id=\"settings\"><h2>Settings and versions</h2><pre>")
            out.write(esc(json_text(details, indent=2)))
            out.write("</pre></section>\n</main>\n<footer>Written by ghostscope. Everything is "
                      "embedded in this one file.</footer>\n")
            out.write(f"<script>{_JS}</script>\n</body>\n</html>\n")

    return atomic_write(path, write)


def write_index_html(path: Union[str, os.PathLike], *, title: str, subtitle: str,
                     facts: Sequence[Tuple[str, str]], conditions: Sequence[Mapping[str, Any]],
                     events: Sequence[Mapping[str, Any]], input_path: Optional[str] = None,
                     path_rows: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Write the index ``report.html`` of a run at several input conditions.

    Parameters
    ----------
    conditions : sequence of dicts with name, input (text), href (the condition's report,
        relative), timeline (png path or None), epochs, events, failed
    events : sequence of dicts with condition, epoch_before, epoch_after, kind, lead_time and
        ``sentence``
    input_path : str, optional
        The ``A:B:n`` path, when the fixed points were continued along one.
    path_rows : sequence of dicts with epoch, text (its folds and Hopf points) and href (the
        diagram, relative, or None)
    """
    esc = html.escape

    def write(handle: IO[bytes]) -> None:
        with io.TextIOWrapper(handle, encoding="utf-8") as out:
            out.write("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                      f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n")
            out.write(f"<header><h1>{esc(title)}</h1><p class=\"sub\">{esc(subtitle)}</p>\n"
                      "<ul class=\"facts\">")
            for name, value in facts:
                out.write(f"<li><b>{esc(value)}</b>{esc(name)}</li>")
            out.write("</ul></header>\n<main>\n<section id=\"conditions\"><h2>Input conditions"
                      "</h2>\n<table><thead><tr><th>condition</th><th>input</th><th>epochs</th>"
                      "<th>events</th><th>failed</th></tr></thead><tbody>\n")
            for c in conditions:
                out.write(f"<tr><td><a href=\"{esc(str(c['href']))}\">{esc(str(c['name']))}</a>"
                          f"</td><td><code>{esc(str(c['input']))}</code></td>"
                          f"<td class=\"num\">{int(c['epochs'])}</td>"
                          f"<td class=\"num\">{int(c['events'])}</td>"
                          f"<td class=\"num\">{int(c['failed'])}</td></tr>\n")
            out.write("</tbody></table>\n<p class=\"sub\">Each condition's report (portraits, "
                      "timeline, events) is linked by its name.</p>\n")
            for c in conditions:
                timeline = c.get("timeline")
                if timeline is not None and Path(timeline).is_file():
                    out.write(f"<h3>{esc(str(c['name']))}</h3><img class=\"timeline\" "
                              f"alt=\"timeline of condition {esc(str(c['name']))}\" "
                              f"src=\"{_data_url(Path(timeline))}\">\n")
            out.write("</section>\n<section id=\"events\"><h2>Restructuring events</h2>\n")
            if events:
                out.write("<table><thead><tr><th>condition</th><th>between</th><th>what "
                          "happened</th><th>kind</th><th>lead time</th></tr></thead><tbody>\n")
                for e in events:
                    sentence = e.get("sentence") or json_text(e.get("detail", {}), indent=None)
                    out.write(f"<tr><td>{esc(str(e['condition']))}</td>"
                              f"<td>{int(e['epoch_before'])} → {int(e['epoch_after'])}</td>"
                              f"<td>{esc(sentence)}</td><td>{esc(str(e['kind']))}</td>"
                              f"<td class=\"num\">{esc(format_number(e.get('lead_time')))}"
                              f"</td></tr>\n")
                out.write("</tbody></table>\n<p class=\"sub\">All events, with their condition, "
                          "are in events.csv and events.json.</p>\n")
            else:
                out.write("<p class=\"empty\">No restructuring event at any condition.</p>\n")
            out.write("</section>\n")
            if input_path is not None:
                out.write(f"<section id=\"input-path\"><h2>Along the input path "
                          f"<code>{esc(input_path)}</code></h2>\n<table><thead><tr><th>epoch"
                          "</th><th>folds and Hopf points</th><th>diagram</th></tr></thead>"
                          "<tbody>\n")
                for r in path_rows:
                    link = "–" if r.get("href") is None else \
                        f"<a href=\"{esc(str(r['href']))}\">png</a>"
                    out.write(f"<tr><td class=\"num\">{int(r['epoch'])}</td>"
                              f"<td>{esc(str(r['text']))}</td><td>{link}</td></tr>\n")
                out.write("</tbody></table></section>\n")
            out.write("</main>\n<footer>Written by ghostscope.</footer>\n</body>\n</html>\n")

    return atomic_write(path, write)
