"""A real headless Chromium renders report pages: figures decode, a broken image is caught.

Skipped only when no Chromium is installed (CI installs it).
"""

import base64

import pytest

from synthlabel.report.browser import BrowserCheck, chromium_path, render_check
from synthlabel.report.html import HtmlPage
from synthlabel.report.plots import amount_curve, delta_bars

needs_chromium = pytest.mark.skipif(chromium_path() is None, reason="no Chromium installed")


def two_figure_page(path):
    page = HtmlPage("Gain report")
    page.heading("Amount sweep")
    page.figure(amount_curve({"spade": [(0, 0.5, 0.01, 3), (1, 0.55, 0.02, 3)]}), caption="mIoU vs amount")
    page.figure(delta_bars({"spade": {"road": {"mean": 0.01, "std": 0.005}}}), caption="per-class delta")
    return page.write(path)


@needs_chromium
def test_page_with_two_figures_loads_every_image(tmp_path):
    check = render_check(two_figure_page(tmp_path / "report.html"))
    assert check == BrowserCheck(ok=True, images_total=2, images_loaded=2, title="Gain report", error=None)


@needs_chromium
def test_broken_image_fails_the_check(tmp_path):
    page = HtmlPage("broken")
    page.figure(amount_curve([(0, 0.5, None, 1)]))
    page.blocks.append('<img src="data:image/png;base64,' + base64.b64encode(b"not a png at all").decode() + '">')
    check = render_check(page.write(tmp_path / "broken.html"))
    assert not check.ok and check.images_total == 2 and check.images_loaded == 1
    assert "did not decode" in check.error


def test_missing_browser_or_page_is_reported_not_raised(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHLABEL_CHROMIUM", str(tmp_path / "no-such-chromium"))
    assert chromium_path() is None
    check = render_check(two_figure_page(tmp_path / "report.html"))
    assert not check.ok and "no Chromium" in check.error
    monkeypatch.delenv("SYNTHLABEL_CHROMIUM")
    if chromium_path() is not None:
        assert "does not exist" in render_check(tmp_path / "missing.html").error
