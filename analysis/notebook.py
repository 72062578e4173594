"""Rich display of analyses in Jupyter: what ``_repr_html_`` of the result types returns.

- :func:`epoch_html`: an epoch's summary, its phase portrait inline (a PNG as a data URL, drawn
  by :func:`analysis.portraits.single_portrait`) and the tables of its fixed points and ghosts
  (:mod:`fixedpoints.display`).
- :func:`series_html`: the series' ``report.html`` (:func:`analysis.report.write_report`: the
  epoch slider over the portraits, the timeline, the events) inside an ``<iframe srcdoc>``, so
  its script and styles stay apart from the notebook's and several views can share a page.

Everything is embedded: the output asks for nothing over the network.
"""
from __future__ import annotations

import base64
import html
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from fixedpoints.display import fixed_points_html, ghosts_html

from .epoch import EpochAnalysis, counts_text

__all__ = ["epoch_html", "series_html"]

logger = logging.getLogger(__name__)


def _portrait_tag(result: EpochAnalysis, model: Any, settings: Any, options: Any = None) -> str:
    from .portraits import single_portrait
    from .sources import sources_by_epoch

    from .sources import ModelSource

    if isinstance(model, (str, os.PathLike)):  # a checkpoint file
        source: Any = ModelSource(path=os.fspath(model))
    else:
        source = None if model is None else sources_by_epoch({int(result.epoch): model},
                                                             [int(result.epoch)]).get(
            int(result.epoch))
    kwargs = {} if settings is None else {"input": settings.input, "drive": settings.drive,
                                          "time": settings.time}
    with tempfile.TemporaryDirectory(prefix="ghostscope-portrait-") as tmp:
        png = Path(tmp) / "portrait.png"
        try:
            single_portrait(result, source, png, options=options, **kwargs)
        except (ValueError, RuntimeError) as error:  # e.g. too few points to project
            logger.info("epoch %s: no portrait (%s)", result.epoch, error)
            return (f"<p class=\"gs-sub\">No portrait: {html.escape(str(error))}</p>")
        data = base64.b64encode(png.read_bytes()).decode("ascii")
    return (f"<img class=\"gs-portrait\" style=\"max-width:640px;height:auto\" "
            f"alt=\"phase portrait at epoch {int(result.epoch)}\" "
            f"src=\"data:image/png;base64,{data}\">")


def epoch_html(result: EpochAnalysis, model: Any = None, *, settings: Any = None,
               portrait: bool = True, options: Any = None) -> str:
    """HTML of one epoch's analysis: summary, portrait, points and ghosts tables.

    Parameters
    ----------
    result : EpochAnalysis
    model : nn.Module, Dynamics or checkpoint path, optional
        The epoch's model: the portrait then shows trajectories and the speed heatmap (points
        only without it).
    settings : EpochSettings, optional
        The analysis' input, drive and time (defaults otherwise).
    portrait : bool, default True
        Draw the portrait (matplotlib; False for tables only).
    options : PortraitOptions, optional
        How the portrait is drawn (``dpi``, ``grid``, ``n_trajectories``, ...; the report's
        defaults otherwise): ``PortraitOptions(dpi=60)`` keeps a saved notebook small.
    """
    esc = html.escape
    loss = "" if result.loss != result.loss else f" · loss {result.loss:.4g}"
    sig = result.signature
    head = (f"<div class=\"gs-epoch\"><h3 style=\"margin:4px 0\">Epoch {int(result.epoch)}"
            f"{esc(loss)}</h3><p class=\"gs-sub\">{esc(counts_text(result.counts()))}"
            + ("" if sig is None else f" · signature {esc(str(sig))}")
            + (f" · {esc(result.source)}" if result.source else "") + "</p>")
    parts = [head]
    if portrait:
        parts.append(_portrait_tag(result, model, settings, options))
    parts.append(fixed_points_html(result.fixed_points))
    if result.ghosts is not None:
        parts.append(ghosts_html(result.ghosts))
    parts.append("</div>")
    return "".join(parts)


def series_html(analysis: Any, models: Any = None, *, height: int = 900,
                out: Optional[str] = None) -> str:
    """HTML of a series analysis: its ``report.html`` in an isolated ``<iframe srcdoc>``.

    Parameters
    ----------
    analysis : SeriesAnalysis
    models : as :func:`analysis.report.write_report`, optional
        Where each epoch's model comes from (trajectories in the portraits).
    height : int, default 900
        Height of the frame in pixels.
    out : path, optional
        Keep the report's files there (a temporary directory otherwise).
    """
    from .report import write_report

    def page(directory: str) -> str:
        report = write_report(analysis, directory, models=models,
                              title="ghostscope series", source=None)
        return Path(report).read_text(encoding="utf-8")

    if out is not None:
        text = page(out)
    else:
        with tempfile.TemporaryDirectory(prefix="ghostscope-series-") as tmp:
            text = page(tmp)
    return (f"<iframe class=\"gs-series\" title=\"ghostscope series report\" "
            f"style=\"width:100%;height:{int(height)}px;border:1px solid #d9e2ec\" "
            f"srcdoc=\"{html.escape(text, quote=True)}\"></iframe>")
