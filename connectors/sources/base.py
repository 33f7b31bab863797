"""The small interface every export source implements (today: CSV folders on disk).

A source knows which nights it has exports for and, for one night, which export
files are present. The loader (`connectors.sources.loader`) does the rest: checksum,
decoding, validation, merge, load log and archive, the same for every source.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from connectors.sources.export_format import ExportFile
from kizuna.errors import ExportError


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
