"""Nightly CSV exports in a folder: `<exports_dir>/<YYYY-MM-DD>/<table>.csv`.

* one folder per night, named for the night (JST) it covers; anything else in
  `exports_dir` (an `archive` folder, `shop.json`, notes) is ignored;
* inside it, one CSV file per table, named as in `EXPORT_FILES` (`orders.csv`, ...);
  a missing file means that table had no new or changed rows that night (the same
  as a header-only file); other files in the folder are ignored.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from connectors.sources.base import ExportFileRef, ExportSource
from connectors.sources.export_format import ENCODINGS, EXPORT_FILES
from kizuna.errors import ExportError

_NIGHT_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class CsvExportSource(ExportSource):
    def __init__(self, exports_dir: Path, encoding: str = "auto") -> None:
        encoding = encoding.lower().replace("_", "-")
        if encoding in ("shift-jis", "sjis", "shift_jis", "windows-31j", "ms932"):
            encoding = "cp932"
        if encoding in ("utf8", "utf-8-sig"):
            encoding = "utf-8"
        if encoding != "auto" and encoding not in ENCODINGS:
            raise ExportError(
                f"Unknown export encoding {encoding!r}: use one of auto, {', '.join(ENCODINGS)}."
            )
        self.exports_dir = Path(exports_dir)
        self.encoding = encoding

    def nights(self) -> list[date]:
        if not self.exports_dir.is_dir():
            return []
        found = []
        for child in self.exports_dir.iterdir():
            if child.is_dir() and _NIGHT_DIR.match(child.name):
                try:
                    found.append(date.fromisoformat(child.name))
                except ValueError:  # 2024-13-45: not a night folder
                    continue
        return sorted(found)

    def night_dir(self, night: date) -> Path:
        return self.exports_dir / night.isoformat()

    def files(self, night: date) -> list[ExportFileRef]:
        folder = self.night_dir(night)
        if not folder.is_dir():
            raise ExportError(f"No export folder for night {night}: expected {folder}.")
        return [
            ExportFileRef(night, spec, folder / spec.file_name)
            for spec in EXPORT_FILES
            if (folder / spec.file_name).is_file()
        ]

    def __repr__(self) -> str:
        return f"CsvExportSource({str(self.exports_dir)!r}, encoding={self.encoding!r})"
