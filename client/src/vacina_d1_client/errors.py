"""What can stop a sync, and the exit code each maps to."""

from __future__ import annotations

EXIT_UP_TO_DATE = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2


class SyncError(Exception):
    """Stops the whole run: bad usage, credentials refused, terms not accepted."""

    exit_code = EXIT_USAGE


class UsageError(SyncError):
    pass


class AuthError(SyncError):
    """The portal refused the personal token (401): wrong, expired or revoked."""


class TermsNotAccepted(SyncError):
    def __init__(self, message: str, operation: str, version: int | None, text: str | None = None):
        super().__init__(message)
        self.operation = operation
        self.version = version
        self.text = text


class OutOfScope(SyncError):
    """404 on an operation: it does not exist or the credential does not grant it."""


class TransferFailed(Exception):
    """One file could not be fetched after every retry: the run is partial (exit 1)."""


class FolderBusy(SyncError):
    """Another sync holds the folder (a scheduled run overlapping a manual one): try later."""

    exit_code = EXIT_PARTIAL
