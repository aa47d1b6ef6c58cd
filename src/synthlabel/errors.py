"""Errors a user can cause; each message names the file and the fix."""


class SynthlabelError(Exception):
    """Base class for user-facing errors (the CLI prints them without a traceback)."""


class DataError(SynthlabelError):
    """A dataset, class spec or class map on disk is missing, malformed or inconsistent."""


class ConfigError(SynthlabelError):
    """A config file or override is invalid."""


class ModelError(SynthlabelError):
    """A model directory (config.json + *.safetensors) is missing, damaged or does not match its config."""


class StateError(SynthlabelError):
    """A training state file (train_state.pt) cannot be read as a synthlabel state."""


class DiskFullError(SynthlabelError):
    """A write failed because the disk is full; the file it was writing is named."""
