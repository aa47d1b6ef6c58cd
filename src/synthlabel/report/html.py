"""Self-contained HTML pages (headings, text, tables, images and figures as base64 data URIs): no network and no
neighbouring files except those linked on purpose, which `missing_references` checks after a move or copy."""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from matplotlib.figure import Figure

from synthlabel.checkpoint import atomic_write_bytes
from synthlabel.tables import MISSING

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1, h2, h3 { line-height: 1.2; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
td { text-align: right; font-variant-numeric: tabular-nums; }
td:first-child, th:first-child { text-align: left; }
th { background: #f3f3f3; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""

# Counts <img> elements and those that decoded, for the headless-browser check (report/browser.py).
_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-total", String(imgs.length));
  document.body.setAttribute("data-images-loaded", String(ok));
});
"""

_IMAGE_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif"}
_SUFFIX_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                 ".svg": "image/svg+xml", ".webp": "image/webp"}  # fmt: skip


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: object) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _mime(data: bytes, suffix: str = "") -> str:
    for magic, mime in _IMAGE_TYPES.items():
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return _SUFFIX_TYPES.get(suffix.lower(), "application/octet-stream")


def data_uri(data: bytes, mime: str) -> str:
    """`data:<mime>;base64,...` for raw bytes."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class HtmlPage:
    """One self-contained HTML page built block by block; `write` saves it atomically.

    All text is escaped; images and figures are embedded as base64 data URIs, so the page is one file."""

    def __init__(self, title: str) -> None:
        self.title = str(title)
        self.blocks: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        """A heading <h1>..<h6>."""
        if not 1 <= int(level) <= 6:
            raise ValueError(f"heading level must be 1..6, got {level}")
        self.blocks.append(f"<h{int(level)}>{_esc(text)}</h{int(level)}>")

    def paragraph(self, text: str) -> None:
        """A paragraph of plain (escaped) text."""
        self.blocks.append(f"<p>{_esc(text)}</p>")

    def table(self, headers: Sequence[object], rows: Sequence[Sequence[object]]) -> None:
        """A table; cells are str or numbers, None is shown as "—"."""
        width = len(headers)
        for i, row in enumerate(rows):
            if len(row) != width:
                raise ValueError(f"row {i} has {len(row)} cells, the header has {width}")
        head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{_esc(_cell(c))}</td>" for c in row) + "</tr>\n" for row in rows)
        self.blocks.append(f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>")

    def image(self, image: str | os.PathLike | bytes, caption: str | None = None) -> None:
        """An image from a file path or raw bytes (PNG/JPEG/GIF/WebP), embedded as a data URI."""
        if isinstance(image, bytes | bytearray):
            data, suffix = bytes(image), ""
        else:
            path = Path(image)
            if not path.is_file():
                raise FileNotFoundError(f"image {path} does not exist; write it before adding it to the page")
            data, suffix = path.read_bytes(), path.suffix
        self._img(data_uri(data, _mime(data, suffix)), caption)

    def figure(self, figure: Figure, caption: str | None = None) -> None:
        """A matplotlib Figure rendered to PNG (savefig picks the Agg renderer whatever the canvas), embedded."""
        buf = io.BytesIO()
        figure.savefig(buf, format="png", dpi=figure.dpi)
        self._img(data_uri(buf.getvalue(), "image/png"), caption)

    def _img(self, src: str, caption: str | None) -> None:
        cap = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
        self.blocks.append(f'<figure><img src="{_esc(src)}" alt="{_esc(caption or "")}">{cap}</figure>')

    def code(self, text: str) -> None:
        """Preformatted text, e.g. a resolved config YAML."""
        self.blocks.append(f"<pre><code>{_esc(text)}</code></pre>")

    def link(self, href: str, text: str | None = None) -> None:
        """A paragraph holding one link, e.g. to a CSV beside the page (relative hrefs resolve against the page)."""
        self.blocks.append(f'<p><a href="{_esc(href)}">{_esc(text or href)}</a></p>')

    def render(self) -> str:
        """The whole page as a string."""
        body = "\n".join(self.blocks)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{_esc(self.title)}</title>\n<style>{_CSS}</style>\n<script>{_SCRIPT}</script>\n</head>\n"
            f"<body>\n<h1>{_esc(self.title)}</h1>\n{body}\n</body>\n</html>\n"
        )

    def write(self, path: str | os.PathLike) -> Path:
        """Write the page atomically (UTF-8); returns the path."""
        atomic_write_bytes(Path(path), self.render().encode("utf-8"))
        return Path(path)


class _RefParser(HTMLParser):
    """Collects src/href attribute values of real elements (escaped text in the page is not markup)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [v for k, v in attrs if k in ("src", "href") and v is not None]


def _is_local(ref: str) -> bool:
    if not ref or ref.startswith("#") or ref.startswith("//"):
        return False
    return urlsplit(ref).scheme.lower() in ("", "file")


def referenced_files(html_path: str | os.PathLike) -> list[Path]:
    """Every local file the page references (src/href that is not data:, http(s):, mailto: or #anchor),
    resolved relative to the page, in order of appearance without duplicates."""
    html_path = Path(html_path)
    parser = _RefParser()
    parser.feed(html_path.read_text(encoding="utf-8"))
    parser.close()
    out: list[Path] = []
    for ref in (r.strip() for r in parser.refs):
        if not _is_local(ref):
            continue
        target = Path(unquote(urlsplit(ref).path))
        path = Path(os.path.normpath(target if target.is_absolute() else html_path.parent / target))
        if path not in out:
            out.append(path)
    return out


def missing_references(html_path: str | os.PathLike) -> list[Path]:
    """The local files the page references that do not exist."""
    return [p for p in referenced_files(html_path) if not p.exists()]
