"""HtmlPage: escaping, base64 data-URI embedding round trip, atomic write, and local reference checks."""

import base64
import io
import re

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from synthlabel.report.html import HtmlPage, missing_references, referenced_files


def png_bytes(color=(255, 0, 0), size=(4, 3)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def data_uris(text: str) -> list[tuple[str, bytes]]:
    return [(m, base64.b64decode(b)) for m, b in re.findall(r'src="data:([^;"]+);base64,([A-Za-z0-9+/=]+)"', text)]


def test_text_is_escaped(tmp_path):
    evil = '<script>alert("x")</script> & <img src=x onerror=1>'
    page = HtmlPage(evil)
    page.heading(evil, level=3)
    page.paragraph(evil)
    page.table([evil, "n"], [[evil, 1], [None, 0.5]])
    page.code("a: <b>\n")
    text = page.write(tmp_path / "p.html").read_text(encoding="utf-8")
    assert "<script>alert" not in text and "<img src=x" not in text
    assert text.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp;") == 6  # title, h1, h3, p, th, td
    assert "<h3>" in text and "<td>—</td>" in text and "<td>0.5</td>" in text
    assert "<pre><code>a: &lt;b&gt;\n</code></pre>" in text
    assert referenced_files(tmp_path / "p.html") == []  # escaped text is not markup
    with pytest.raises(ValueError, match="row 0"):
        page.table(["a", "b"], [[1]])


def test_image_bytes_path_and_figure_round_trip(tmp_path):
    raw = png_bytes()
    (tmp_path / "pic.png").write_bytes(png_bytes((0, 0, 255)))
    fig = Figure(figsize=(2, 1.5), dpi=50)
    fig.add_subplot().plot([0, 1], [1, 0])
    page = HtmlPage("imgs")
    page.image(raw, caption="from bytes <1>")
    page.image(tmp_path / "pic.png")
    page.figure(fig, caption="fig")
    out = page.write(tmp_path / "sub" / "page.html")
    text = out.read_text(encoding="utf-8")
    uris = data_uris(text)
    assert [m for m, _ in uris] == ["image/png"] * 3
    assert uris[0][1] == raw and uris[1][1] == (tmp_path / "pic.png").read_bytes()
    decoded = Image.open(io.BytesIO(uris[2][1]))
    assert decoded.size == (100, 75)
    assert np.asarray(decoded.convert("RGB")).std() > 0  # the line was drawn
    assert "<figcaption>from bytes &lt;1&gt;</figcaption>" in text
    assert referenced_files(out) == [] and missing_references(out) == []
    assert not list(out.parent.glob(".*.tmp"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        page.image(tmp_path / "nope.png")


def test_missing_references_follow_links(tmp_path):
    (tmp_path / "results.csv").write_text("a\n1\n")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "curve.png").write_bytes(png_bytes())
    page = HtmlPage("links")
    page.link("results.csv", "CSV")
    page.link("plots/curve.png")
    page.link("https://example.org/x.png", "external")
    page.link("#top", "anchor")
    page.link("mailto:someone@example.org", "mail")
    out = page.write(tmp_path / "report.html")
    assert referenced_files(out) == [tmp_path / "results.csv", tmp_path / "plots" / "curve.png"]
    assert missing_references(out) == []
    (tmp_path / "results.csv").unlink()
    assert missing_references(out) == [tmp_path / "results.csv"]


def test_hand_written_references_resolve_relative_to_page(tmp_path):
    page = tmp_path / "a" / "index.html"
    page.parent.mkdir()
    page.write_text(
        "<html><body><img src='../img%20one.png'><a href=\"data.json#frag\">d</a>"
        '<img src="data:image/png;base64,AAAA"><script src="http://cdn.example/x.js"></script></body></html>'
    )
    assert referenced_files(page) == [tmp_path / "img one.png", tmp_path / "a" / "data.json"]
    assert len(missing_references(page)) == 2


def test_page_has_image_count_script():
    text = HtmlPage("s").render()
    assert "data-images-total" in text and "naturalWidth" in text
    assert "http" not in text.replace('lang="en"', "")  # no external resources at all
