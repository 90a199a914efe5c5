"""The project's exception hierarchy: every error a user should see as one line."""

from __future__ import annotations


class AggregatorError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""


class ConfigError(AggregatorError):
    """feeds.yaml (or an option) is malformed or invalid."""


class ParseError(AggregatorError):
    """A feed body is not a readable feed."""


class StoreError(AggregatorError):
    """The database cannot be opened, migrated or written."""


class BusyError(StoreError):
    """Another polling pass holds the database's polling lock."""


class ConflictError(StoreError):
    """A decision was made on a row that changed since the editor saw it (another tab, an import)."""


class StaleError(ConflictError):
    """The row's revision moved on since the one the caller read: another tab or an import changed it."""


class DigestError(AggregatorError):
    """A digest file cannot be read, or a draft cannot be written."""


class ModelError(AggregatorError):
    """A saved model is missing, damaged or incompatible: retrain."""


class ModelFormatError(ModelError):
    """A saved model written by a release whose models read posts differently: training again replaces it."""


class AddError(AggregatorError):
    """A post cannot be added by its URL: not an http(s) URL, no title, no section to file it under."""
