"""The notebook's series view (``SeriesAnalysis._repr_html_``) in headless Chromium: the report in
an ``<iframe srcdoc>`` on a page, as Jupyter shows it; clicking its slider shows another epoch.

Uses the DevTools pipe client of :mod:`tests.analysis.test_browser`; skips where the
``chromium`` executable is absent.
"""
import tempfile

import pytest

from tests.analysis.test_browser import CHROMIUM, DevTools, _evaluate, open_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="the `chromium` executable is not on PATH; "
                       "install Debian's chromium package (`apt-get install chromium`) to run "
                       "the notebook view's browser test"),
]

FRAME = "document.querySelector('iframe.gs-series').contentDocument"
SHOWN = f"""(() => {{
  const shown = [...{FRAME}.querySelectorAll('#frames img')].filter(i => !i.hidden);
  return shown.map(i => ({{epoch: i.dataset.epoch, width: i.naturalWidth}}));
}})()"""


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from analysis import analyze_series
    from fixedpoints import systems

    series = [(e, systems.tanh_map(2.0, b)) for e, b in enumerate([0.40, 0.45, 0.50, 0.55])]
    analysis = analyze_series(series, n_initial=48)
    out = tmp_path_factory.mktemp("notebook_view") / "cell.html"
    out.write_text("<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body>"
                   "<h1>a notebook cell</h1>" + analysis._repr_html_() + "</body></html>",
                   encoding="utf-8")
    return out


def test_series_view_slider_changes_the_portrait(page):
    with tempfile.TemporaryDirectory(prefix="ghostscope-chromium-") as profile:
        tools = DevTools(profile)
        try:
            session = open_page(tools, page)
            assert _evaluate(tools, session, f"{FRAME}.querySelectorAll('#frames img').length") == 4
            before = _evaluate(tools, session, SHOWN)
            assert [b["epoch"] for b in before] == ["0"] and before[0]["width"] > 0

            box = _evaluate(tools, session, f"""(() => {{
                const f = document.querySelector('iframe.gs-series').getBoundingClientRect();
                const r = {FRAME}.getElementById('epoch-slider').getBoundingClientRect();
                return {{x: f.left + r.left, y: f.top + r.top, w: r.width, h: r.height}}; }})()""")
            assert box["w"] > 50
            x, y = box["x"] + 0.95 * box["w"], box["y"] + box["h"] / 2
            for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
                tools.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y,
                                                        "button": "left", "clickCount": 1},
                           session)
            after = _evaluate(tools, session, SHOWN)
            assert len(after) == 1 and after[0]["epoch"] in ("2", "3") and after[0]["width"] > 0
            label = _evaluate(tools, session,
                              f"{FRAME}.getElementById('epoch-label').textContent")
            assert label.startswith(f"epoch {after[0]['epoch']}")
            tools.pump(0.3)
            errors = [e for e in tools.events if e.get("method") == "Runtime.exceptionThrown"]
            assert errors == []
            requests = [e["params"]["request"]["url"] for e in tools.events
                        if e.get("method") == "Network.requestWillBeSent"]
            assert [u for u in requests if not u.startswith(("file:", "data:", "about:"))] == []
        finally:
            tools.close()
