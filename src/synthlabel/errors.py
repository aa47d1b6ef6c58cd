"""Errors a user can cause; each message names the file and the fix."""


class SynthlabelError(Exception):
    """Base class for user-facing errors (the CLI prints them without a traceback)."""


class DataError(SynthlabelError):
    """A dataset, class spec or class map on disk is missing, malformed or inconsistent."""


class ConfigError(SynthlabelError):
    """A config file or override is invalid."""
