"""The one small interface every RNDS source implements."""

from __future__ import annotations

import abc
from typing import Callable, ClassVar, Iterator

import polars as pl


class SourceError(Exception):
    """Input a source cannot read: its message is one line a person can act on
    (the CLI prints it on stderr and exits non-zero, never with a traceback)."""


class Source(abc.ABC):
    """Yields raw records (``contract.RAW_SCHEMA``, every column text, plus
    optionally ``contract.QUARANTINE_ORIGIN_COLUMN`` saying where each record
    came from and the transient CNS/CPF columns of ``validation``) in batches,
    so a source of any size streams through bounded memory."""

    kind: ClassVar[str]

    @abc.abstractmethod
    def batches(self) -> Iterator[pl.DataFrame]:
        """Raw frames, in the source's order."""

    def pseudonymizer(self) -> Callable[[pl.DataFrame], pl.Series] | None:
        """For sources that carry clear patient identifiers: the keyed hash that
        turns them into ``co_paciente``. ``None`` when the source has none."""
        return None
