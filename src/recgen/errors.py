"""Errors and warnings raised by recgen.

Every message says what was received, what was expected, and how to fix it.
"""

from __future__ import annotations


class RecgenError(Exception):
    """Base class of every error recgen raises on purpose."""


class ConfigError(RecgenError, ValueError):
    """A configuration value or option is invalid."""


class DataError(RecgenError, ValueError):
    """Input data is missing, malformed or inconsistent."""


class IntegrityError(DataError):
    """A file recgen wrote earlier does not read back as written (corrupt, truncated, changed, or mismatched)."""


class TrainingDivergedError(RecgenError, RuntimeError):
    """Training produced a non-finite or exploding loss."""


class NotFittedError(RecgenError, RuntimeError):
    """A model was used before ``fit`` (or ``load``)."""


class BackendUnavailableError(RecgenError, ImportError):
    """An optional backend or package is not installed."""


class DataWarning(UserWarning):
    """Data was usable but something about it deserves attention."""
