"""Rich display in Jupyter: ``_repr_html_`` of FixedPoints, Ghosts, EpochAnalysis and
SeriesAnalysis, rendered without a browser and checked for their rows and numbers."""
from __future__ import annotations

import base64
import html
import re
from dataclasses import replace

import numpy as np
import pytest

from fixedpoints import systems
from fixedpoints.display import cell


def _rows(text: str, title: str):
    """The body rows (lists of cell texts) of the table titled ``title``."""
    block = text.split(f"<b>{title}</b>", 1)[1].split("</div>", 1)[0]
    return [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", block.split("<tbody>", 1)[-1])
            if "<td" in row]


@pytest.fixture(scope="module")
def series():
    from analysis import analyze_series

    items = [(e, systems.tanh_map(2.0, b)) for e, b in enumerate([0.40, 0.50, 0.55, 0.60])]
    return analyze_series(items), dict(items)


def test_fixed_points_table_has_one_row_per_point_with_its_numbers(series):
    fp = series[0].results[0].fixed_points  # b = 0.40: three fixed points
    expected = np.sort(systems.tanh_map_fixed_points(2.0, 0.40))
    assert len(fp) == len(expected) == 3
    rows = _rows(fp._repr_html_(), "FixedPoints")
    assert len(rows) == 3
    for i, row in enumerate(rows):
        assert row[0] == str(i) and row[1] == str(fp.kind[i])
        assert row[2] == str(int(fp.n_unstable[i])) and row[3] == cell(float(fp.speed[i]))
        assert row[4] == "–" and row[5] == "no"  # nothing certified for this map
    assert sorted(r[1] for r in rows) == ["stable", "stable", "unstable"]


def test_certificates_are_shown_where_present(series):
    fp = series[0].results[0].fixed_points
    radius = np.array([0.125, np.nan, 3.5e-7])
    proved = np.array([True, False, True])
    rows = _rows(replace(fp, certified_radius=radius, stability_certified=proved)._repr_html_(),
                 "FixedPoints")
    assert [r[4] for r in rows] == ["0.125", "–", "3.5e-07"]
    assert [r[5] for r in rows] == ["yes", "no", "yes"]


def test_ghosts_table_shows_strength_and_exclusion(series):
    ghosts = series[0].results[3].ghosts  # b = 0.60: past the saddle-node, one ghost
    assert ghosts is not None and len(ghosts) >= 1
    text = ghosts._repr_html_()
    rows = _rows(text, "Ghosts")
    assert len(rows) == len(ghosts)
    for i, row in enumerate(rows):
        assert row[1] == str(ghosts.kind[i]) and row[3] == cell(float(ghosts.speed[i]))
        assert row[4] == cell(float(ghosts.strength[i]))
        assert row[5] == (str(ghosts.strength_class[i]) or "–")
        assert row[6] == cell(float(ghosts.passage_time[i]))
        r = float(ghosts.exclusion_radius[i])
        assert row[7] == (cell(r) if r > 0 else "–")


def test_epoch_view_has_summary_portrait_and_both_tables(series):
    analysis, models = series
    result = analysis.results[3]
    text = result._repr_html_()
    assert f"Epoch {result.epoch}" in text
    assert text.count("<b>FixedPoints</b>") == 1 and text.count("<b>Ghosts</b>") == 1
    src = re.search(r'<img class="gs-portrait"[^>]*src="data:image/png;base64,([^"]+)"', text)
    assert src is not None
    assert base64.b64decode(src.group(1))[:8] == b"\x89PNG\r\n\x1a\n"  # a real PNG
    assert "http://" not in text and "https://" not in text  # nothing fetched



def test_epoch_view_reads_the_model_from_a_checkpoint_path(tmp_path):
    from analysis import analyze_checkpoint
    from analysis.notebook import epoch_html
    from checkpoints.train import train

    train("delayed_activation", "rank_one_rnn", tmp_path, epochs=1, lr=0.01, optimizer="sgd",
          n_states=8)
    path = tmp_path / "model_epoch1.pt"
    result = analyze_checkpoint(str(path), n_initial=16)
    widths = []
    for model in (path, str(path)):   # a Path and a str: both read as the checkpoint file
        text = epoch_html(result, model)
        assert "No portrait" not in text and '<img class="gs-portrait"' in text
        widths.append(_png_width(text))
    from analysis.portraits import PortraitOptions

    small = _png_width(epoch_html(result, path, options=PortraitOptions(dpi=50)))
    assert widths[0] == widths[1] and small == round(widths[0] / 2)  # default dpi 100


def _png_width(text: str) -> int:
    src = re.search(r'<img class="gs-portrait"[^>]*src="data:image/png;base64,([^"]+)"', text)
    assert src is not None
    return int.from_bytes(base64.b64decode(src.group(1))[16:20], "big")  # the IHDR width

def test_series_view_is_the_report_in_an_isolated_frame(series, tmp_path):
    from analysis.notebook import series_html

    analysis, models = series
    text = series_html(analysis, models, out=str(tmp_path))
    assert text.startswith("<iframe") and text.endswith("</iframe>")
    page = html.unescape(re.search(r'srcdoc="([^"]*)"', text).group(1))
    assert page == (tmp_path / "report.html").read_text(encoding="utf-8")
    assert len(re.findall(r'<img data-epoch="(\d+)"', page)) == len(analysis.results)
    assert 'id="epoch-slider"' in page and 'class="timeline"' in page
    assert analysis._repr_html_().startswith("<iframe")
