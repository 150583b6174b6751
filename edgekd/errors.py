"""Errors a user can act on. The CLI prints their message and exits non-zero without a traceback."""


class EdgeKDError(Exception):
    """Base class for errors caused by user input (files, options, data)."""


class DatasetError(EdgeKDError):
    """A dataset is missing, empty, corrupt or inconsistent."""


class ConfigError(EdgeKDError):
    """An option or recipe value is wrong."""


class CheckpointError(EdgeKDError):
    """A model file is missing, corrupt or of the wrong kind."""


class ExportError(EdgeKDError):
    """An export that failed, or wrote a file that does not do what the torch model does."""
