"""Fault tests read stderr line by line: the synthlabel log goes to its own buffer, not to the captured stderr."""

from __future__ import annotations

import io
import logging

import pytest


@pytest.fixture(autouse=True)
def log_apart():
    """A console handler on a private buffer (setup_logging keeps an existing one), restored after the test."""
    logger = logging.getLogger("synthlabel")
    saved = list(logger.handlers)
    for h in saved:
        logger.removeHandler(h)
    buffer = io.StringIO()
    logger.addHandler(logging.StreamHandler(buffer))
    yield buffer
    for h in list(logger.handlers):
        logger.removeHandler(h)
        if h.__class__ is not logging.StreamHandler:
            h.close()
    for h in saved:
        logger.addHandler(h)
