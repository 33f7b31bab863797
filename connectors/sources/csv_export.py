"""Nightly CSV exports in a folder: `<exports_dir>/<YYYY-MM-DD>/<table>.csv`.

* one folder per night, named for the night (JST) it covers; anything else in
  `exports_dir` (an `archive` folder, notes, a folder named like an impossible date) is
  not loaded, and `ignored()` says so, one sentence per entry (`shop.json`, written by
  the demo shop, and dot-files are expected and not reported);
* inside it, one CSV file per table, named as in `EXPORT_FILES` (`orders.csv`, ...);
  a missing file means that table had no new or changed rows that night (the same
  as a header-only file); other files in the folder are not loaded and reported by
  `ignored()` (with the export file name they probably meant);
* symbolic links are never followed: a night folder or an export file that is a link
  is refused with an `ExportError` naming it (its target is not read), and so is an
  export file name that is not a regular file (a folder, a pipe).
"""

from __future__ import annotations

import difflib
import os
import re
from datetime import date
from pathlib import Path

from connectors.sources.base import ExportFileRef, ExportSource, link_refused
from connectors.sources.export_format import ENCODINGS, EXPORT_FILES
from kizuna.errors import ExportError
from kizuna.i18n import gettext as _

_NIGHT_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Something that looks like a date written another way: 2025-3-1, 20250301, 2025_03_01.
_DATE_LIKE = re.compile(r"^(\d{4})[-_./]?(\d{1,2})[-_./]?(\d{1,2})$")
#: Files the exports root may hold that are not nights and need no mention.
KNOWN_ROOT_FILES = frozenset({"shop.json"})
_EXPORT_NAMES = [spec.file_name for spec in EXPORT_FILES]


def _night_of(name: str) -> date | None:
    """The night a folder name stands for, or None when it is not `YYYY-MM-DD` (a real date)."""
    if not _NIGHT_DIR.match(name):
        return None
    try:
        return date.fromisoformat(name)
    except ValueError:  # 2026-13-40
        return None


def _entries(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


def _is_dir(entry: os.DirEntry) -> bool:
    return entry.is_dir(follow_symlinks=False)


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
        """Every night folder, oldest first. A night "folder" that is a symbolic link is listed
        too, so that loading stops there with a clear error instead of skipping the night."""
        if not self.exports_dir.is_dir():
            return []
        return sorted(night for e in _entries(self.exports_dir)
                      if (night := _night_of(e.name)) is not None and (_is_dir(e) or e.is_symlink()))

    def night_dir(self, night: date) -> Path:
        return self.exports_dir / night.isoformat()

    def files_dir(self, night: date) -> Path | None:
        return self.night_dir(night)

    def files(self, night: date) -> list[ExportFileRef]:
        folder = self.night_dir(night)
        if folder.is_symlink():
            raise link_refused(f"The night folder {night}", "the folder itself (with the export files)")
        if not folder.is_dir():
            raise ExportError(f"No export folder for night {night}: expected {folder}.")
        present = {e.name: e for e in _entries(folder)}
        refs = []
        for spec in EXPORT_FILES:
            entry = present.get(spec.file_name)
            if entry is None:
                continue
            label = f"{night}/{spec.file_name}"
            if entry.is_symlink():
                raise link_refused(label, "the file itself (a copy)")
            if not entry.is_file(follow_symlinks=False):
                raise ExportError(f"{label} is not a regular file (a folder, a pipe or a device), so it "
                                  "cannot be an export: put the CSV file itself there, then run the night again.")
            refs.append(ExportFileRef(night, spec, folder / spec.file_name))
        return refs

    # -- what is not loaded, and why ------------------------------------------------------

    def ignored(self, night: date | None = None) -> list[str]:
        if night is not None:
            return self._ignored_in(night)
        if not self.exports_dir.is_dir():
            return []
        notes = []
        for e in _entries(self.exports_dir):
            if e.name.startswith("."):
                continue
            if e.name in KNOWN_ROOT_FILES and e.is_file(follow_symlinks=False):
                continue
            if _night_of(e.name) is not None and (_is_dir(e) or e.is_symlink()):
                continue  # a night: its folder's entries are listed below
            notes.append(self._why_not_a_night(e))
        for n in self.nights():
            notes += self._ignored_in(n)
        return notes

    @staticmethod
    def _why_not_a_night(e: os.DirEntry) -> str:
        if not _is_dir(e):
            if e.name in _EXPORT_NAMES:
                return _("{name}: ignored: export files belong in a night folder (YYYY-MM-DD/{name}), not "
                         "directly in the exports folder").format(name=e.name)
            return _("{name}: ignored: a file in the exports folder, which holds only night folders "
                     "(YYYY-MM-DD)").format(name=e.name)
        name = f"{e.name}/"
        if _NIGHT_DIR.match(e.name):
            return _("{name}: ignored: not a night folder, {folder} is not a valid date").format(name=name,
                                                                                                folder=e.name)
        loose = _DATE_LIKE.match(e.name)
        if loose:
            try:
                meant = date(*map(int, loose.groups()))
            except ValueError:
                meant = None
            if meant is not None:
                return _("{name}: ignored: not a night folder (named YYYY-MM-DD); did you mean {meant}?").format(
                    name=name, meant=meant.isoformat())
        return _("{name}: ignored: not a night folder (a night folder is named YYYY-MM-DD, e.g. 2025-03-01)").format(
            name=name)

    def _ignored_in(self, night: date) -> list[str]:
        folder = self.night_dir(night)
        if folder.is_symlink() or not folder.is_dir():
            return []  # `files()` refuses it with its own error
        notes = []
        for e in _entries(folder):
            if e.name.startswith(".") or e.name in _EXPORT_NAMES:
                continue
            label = f"{night}/{e.name}"
            if _is_dir(e):
                notes.append(_("{name}/: ignored: a folder inside a night folder (export files are read only "
                               "directly from the night folder)").format(name=label))
                continue
            meant = difflib.get_close_matches(e.name.lower(), _EXPORT_NAMES, n=1, cutoff=0.75)
            notes.append(_("{name}: ignored: not an export file name; did you mean {meant}?").format(
                name=label, meant=meant[0]) if meant else _(
                "{name}: ignored: not an export file name (export files: {files})").format(
                name=label, files=", ".join(_EXPORT_NAMES)))
        return notes

    def __repr__(self) -> str:
        return f"CsvExportSource({str(self.exports_dir)!r}, encoding={self.encoding!r})"


def source_from_settings(settings) -> CsvExportSource:
    """`KIZUNA_SOURCE=csv`: kizuna's export format, one folder per night in `KIZUNA_EXPORTS_DIR`."""
    return CsvExportSource(settings.exports_dir, encoding=settings.source_encoding)
