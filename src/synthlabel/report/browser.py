"""Render a report page in a real headless Chromium and check that every image decodes: the inline script of
`report.html.HtmlPage` writes the image counts into body attributes on window load; `--dump-dom` hands them back."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FLAGS = (
    "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
    "--disable-component-update --disable-sync --disable-dev-shm-usage --hide-scrollbars"
).split()


@dataclass(frozen=True)
class BrowserCheck:
    """Outcome of `render_check`: ok when the page rendered, its script reported the counts and every <img> decoded.
    A page without images passes (nothing can be broken); callers that expect figures also check images_total."""

    ok: bool
    images_total: int | None
    images_loaded: int | None
    title: str | None
    error: str | None = None


def chromium_path() -> str | None:
    """The Chromium executable: $SYNTHLABEL_CHROMIUM if set and runnable, else /usr/bin/chromium or one on PATH."""
    env = os.environ.get("SYNTHLABEL_CHROMIUM")
    if env:
        return shutil.which(env)
    return next(filter(None, map(shutil.which, _CANDIDATES)), None)


def _run_chromium(extra_args: list[str], html_path: Path, timeout_s: float) -> subprocess.CompletedProcess:
    """Run Chromium once with a fresh profile dir (removed afterwards) on file://<abs path of the page>."""
    exe = chromium_path()
    if exe is None:
        raise FileNotFoundError(
            "no Chromium found: install it (e.g. apt-get install chromium) or set SYNTHLABEL_CHROMIUM"
        )
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(f"page {html_path} does not exist")
    with tempfile.TemporaryDirectory(prefix="synthlabel-chromium-") as profile:
        cmd = [exe, *_FLAGS, f"--user-data-dir={profile}", *extra_args, html_path.as_uri()]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)


def _body_attr(dom: str, name: str) -> int | None:
    body = re.search(r"<body\b[^>]*>", dom, re.IGNORECASE)
    if body is None:
        return None
    match = re.search(rf'\b{re.escape(name)}\s*=\s*"(\d+)"', body.group(0))
    return int(match.group(1)) if match else None


def _title(dom: str) -> str | None:
    match = re.search(r"<title>(.*?)</title>", dom, re.IGNORECASE | re.DOTALL)
    return html.unescape(match.group(1)).strip() if match else None


def _stderr_tail(proc: subprocess.CompletedProcess) -> str:
    return " | ".join((proc.stderr or "").strip().splitlines()[-3:])


def render_check(html_path: str | os.PathLike, timeout_s: float = 60) -> BrowserCheck:
    """Load the page in headless Chromium and report how many <img> elements decoded.

    Never raises for a page that fails to render: the reason is in `error` and ok is False."""
    try:
        proc = _run_chromium(["--virtual-time-budget=5000", "--dump-dom"], Path(html_path), timeout_s)
    except (FileNotFoundError, subprocess.TimeoutExpired, OSError) as exc:
        return BrowserCheck(False, None, None, None, f"{type(exc).__name__}: {exc}")
    dom = proc.stdout or ""
    total, loaded = _body_attr(dom, "data-images-total"), _body_attr(dom, "data-images-loaded")
    if proc.returncode != 0 or total is None or loaded is None:
        reason = f"chromium exited with {proc.returncode}"
        if proc.returncode == 0:
            reason = "the page's image-count script did not run (not an HtmlPage, or scripts blocked)"
        return BrowserCheck(False, total, loaded, _title(dom), f"{reason}: {_stderr_tail(proc)}")
    ok = loaded == total
    error = None if ok else f"{total - loaded} of {total} images did not decode"
    return BrowserCheck(ok, total, loaded, _title(dom), error)
