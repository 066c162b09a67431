"""Which failures deserve a retry. A step's RetryPolicy retries any exception; bad
input (a malformed source file, a staging object that breaks the contract, a step
run out of order) fails at once instead, through ``Failure(allow_retries=False)``,
with the one line that says why."""

from __future__ import annotations

import contextlib
from typing import Iterator

from dagster import Failure

# Configuration and input problems: retrying changes nothing.
_PERMANENT_OS_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def retryable(exc: BaseException) -> bool:
    """Storage, catalog and I/O failures that may pass: the store throttled or was
    down, the database was locked or unreachable, another run published the day
    first, a network read broke."""
    import sqlalchemy as sa

    from serving.publish import PublishError
    from serving.storage import ObjectNotFound, StorageError

    if isinstance(exc, ObjectNotFound):
        return False
    if isinstance(
        exc, (StorageError, PublishError, sa.exc.OperationalError, sa.exc.InterfaceError, TimeoutError, ConnectionError)
    ):
        return True
    return isinstance(exc, OSError) and not isinstance(exc, _PERMANENT_OS_ERRORS)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


@contextlib.contextmanager
def failing_clearly(what: str) -> Iterator[None]:
    """Let retryable failures reach the RetryPolicy; turn the others into a Failure
    that is not retried."""
    try:
        yield
    except Failure:
        raise
    except Exception as exc:  # noqa: BLE001 - classified here, re-raised either way
        if retryable(exc):
            raise
        raise Failure(description=f"{what}: {one_line(exc)}", allow_retries=False) from exc
