"""The small interface every export source implements.

A source knows which nights it has exports for and, for one night, which export files
are present, as local CSV files in kizuna's export format (docs/export-format.md). The
loader (`connectors.sources.loader`) does the rest: checksum, decoding, validation,
quarantine, merge, the raw-data gate, load log and archive, the same for every source.

Sources that are not folders of our CSV files (a cart's own CSV export read through a
mapping, a cart's database, a shop API) write what they read for a night into that format,
in a landing folder of their own (`<data_dir>/landing/<source>/<night>/`), and hand those
files to the loader. A source that pulls incrementally keeps its cursor in the warehouse:
`begin(con)` reads it before the load, `commit(con, night)` writes it inside the night's
transaction, so the cursor moves only when the night is kept (a refused or failed night
leaves it where it was). Choose the source with `KIZUNA_SOURCE` (`connectors.sources.registry`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from connectors.sources.export_format import ExportFile
from kizuna.errors import ExportError

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class ExportFileRef:
    """One export file of one night; `path` is a local file holding its original bytes."""

    night: date
    spec: ExportFile
    path: Path

    @property
    def file_name(self) -> str:
        return self.spec.file_name

    @property
    def table(self) -> str:
        return self.spec.table


class ExportSource(ABC):
    """Where nightly exports come from.

    `encoding` is how the loader decodes the files: ``"auto"`` (UTF-8 when the whole
    file is valid UTF-8, else CP932), ``"utf-8"`` or ``"cp932"``.
    """

    encoding: str = "auto"
    #: The export tables this source can deliver (what it cannot carry is absent, never invented:
    #: docs/sources.md says why for each source). Default: every table of the export format.
    carries: frozenset[str] | None = None

    def begin(self, con: "duckdb.DuckDBPyConnection") -> None:
        """Called once by the loader before it lists nights: read any state (a cursor) from the warehouse."""

    def commit(self, con: "duckdb.DuckDBPyConnection", night: date) -> None:
        """Called inside `night`'s transaction once its files are merged and the gate passed: record any state
        (advance a cursor) so that it is kept exactly when the night is."""

    @abstractmethod
    def nights(self) -> list[date]:
        """Every night this source has an export for, oldest first."""

    @abstractmethod
    def files(self, night: date) -> list[ExportFileRef]:
        """The export files present for `night`, in `EXPORT_FILES` order.

        A file that is absent means that table had no new or changed rows that night.
        Raises `ExportError` for an entry the loader must not read (e.g. a symbolic link).
        """

    def files_dir(self, night: date) -> Path | None:
        """The local folder holding `night`'s original files (the gate may read them there),
        or None when the source has no such folder."""
        return None

    def ignored(self, night: date | None = None) -> list[str]:
        """What the source saw but will not load, one sentence each saying what and why.

        Without `night`: everything (the exports root and every night); with it: that
        night's entries only. A source that ignores nothing returns an empty list.
        """
        return []


def link_refused(what: str, instead: str) -> ExportError:
    """The error for a symbolic link found among the exports: named, never followed.

    A link could point anywhere (a system file, another shop's export): reading it would
    load, archive or print in an error message what is not this shop's export.
    """
    return ExportError(
        f"{what} is a symbolic link: kizuna does not follow links among the exports, so its "
        f"target was not read. Put {instead} there instead of the link, then run the night again.")
