"""The PyTorch tutorial catalog: load it, search it, filter it, and the course's guidance.

The catalog is a CSV (columns ``category, title, url, description, tags, source``) shipped in
``workbook/tutorials/data/``; an instructor can point ``Settings.catalog_path`` (``WORKBOOK_CATALOG``)
at another file for a new term. Categories are the left-menu sections of the tutorials
site. The homework's guidance was written for the 2022 menu, whose section names differ
from today's, so students pick a category from the union of both menus (plus any section
a replaced catalog introduces).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from workbook.errors import WorkbookError

__all__ = [
    "INTRO_CATEGORY",
    "OTHER_CATEGORY",
    "YOUTUBE_CATEGORY",
    "Catalog",
    "CatalogError",
    "Guidance",
    "Tutorial",
    "guidance_for",
    "is_youtube",
    "load_catalog",
]

INTRO_CATEGORY = "Introduction to PyTorch"
YOUTUBE_CATEGORY = "Introduction to PyTorch on YouTube"
TEXT_CATEGORY = "Text"
# Rows whose menu section could not be determined; not a section a student can pick.
OTHER_CATEGORY = "Other"

REQUIRED_COLUMNS = ("category", "title", "url")
_CATALOG_FILE = "pytorch_tutorials.csv"
_CATEGORIES_FILE = "pytorch_tutorial_categories.txt"
_CATEGORIES_2022_FILE = "pytorch_tutorial_categories_2022.txt"


class CatalogError(WorkbookError):
    """The catalog file is missing or malformed; the message names the file and the fix."""


@dataclass(frozen=True)
class Tutorial:
    """One tutorial card or recipe of the catalog."""

    category: str
    title: str
    url: str
    description: str = ""
    tags: tuple[str, ...] = ()

    @property
    def youtube(self) -> bool:
        """Whether this resource is the video series (the course asks to type the code out)."""
        return is_youtube(self.title, self.url, self.category)


@dataclass(frozen=True)
class Guidance:
    """What the course says about a category.

    Attributes:
        category: the menu section it applies to.
        kind: ``"recommended"``, ``"rule"`` (changes what counts), ``"caution"`` or
            ``"advanced"``.
        text: the advice, written for the student.
    """

    category: str
    kind: str
    text: str


_ADVANCED = (
    "A more advanced option. Pick it if the topic appeals to you; expect to read around "
    "the tutorial a little."
)
# The course's advice per section (homework.md, Part A). Sections the course says nothing
# about get no entry: any tutorial there is fine.
_GUIDANCE: dict[str, tuple[str, str]] = {
    "PyTorch Recipes": ("recommended", "Many good options: short, focused, practical."),
    INTRO_CATEGORY: (
        "rule",
        "If you choose this section, the whole section counts as one resource. Much of it "
        "can be skimmed; slow down on the parts that are new to you. Your second resource "
        "must come from a different section.",
    ),
    YOUTUBE_CATEGORY: (
        "rule",
        "If you choose the video series, type the code out yourself as you watch (no "
        "copy-paste): that is where the learning happens.",
    ),
    "Image and Video": ("recommended", "All good choices."),
    TEXT_CATEGORY: (
        "caution",
        "Weaker for this course: these tutorials use other abstractions than Hugging Face, "
        "which the course uses for text.",
    ),
    "Reinforcement Learning": ("advanced", _ADVANCED),
    "Deploying PyTorch Models in Production": ("advanced", _ADVANCED),
    "Parallel and Distributed Training": ("advanced", _ADVANCED),
    "Mobile": ("advanced", _ADVANCED),
    # ExecuTorch is where the 2022 "Mobile" section's content went.
    "Edge with ExecuTorch": ("advanced", _ADVANCED + " (This section replaced 'Mobile'.)"),
    "Recommendation Systems": ("advanced", _ADVANCED),
}
# Tags that mark a text/NLP tutorial, wherever today's menu files it.
_TEXT_TAGS = {"nlp", "text"}


def is_youtube(title: str, url: str, category: str = "") -> bool:
    """Whether a resource is the "Introduction to PyTorch on YouTube" series or a video.

    Today's catalog files the series under "Introduction to PyTorch"; the 2022 menu had it as
    its own section, and the course's rule (type the code out) is about the videos.
    """
    if category == YOUTUBE_CATEGORY:
        return True
    lowered_url = url.lower()
    return (
        "youtube" in title.lower()
        or "/introyt/" in lowered_url
        or "youtube.com" in lowered_url
        or "youtu.be" in lowered_url
    )


def guidance_for(category: str, tutorial: Tutorial | None = None) -> Guidance | None:
    """The course's advice for a category (and, when given, for one tutorial in it).

    A tutorial can carry advice its section does not: the YouTube series sits inside
    "Introduction to PyTorch" today, and text tutorials are filed under other sections.

    Returns:
        The advice, or ``None`` when the course says nothing special.
    """
    if tutorial is not None:
        if tutorial.youtube:
            category = YOUTUBE_CATEGORY
        elif category not in _GUIDANCE and _TEXT_TAGS & {t.lower() for t in tutorial.tags}:
            category = TEXT_CATEGORY
    found = _GUIDANCE.get(category)
    if found is None:
        return None
    kind, text = found
    return Guidance(category=category, kind=kind, text=text)


def _merge_menus(today: list[str], older: list[str]) -> list[str]:
    """Today's menu order, with each section only the older menu has placed after the
    section that preceded it there (so "…on YouTube" follows "Introduction to PyTorch")."""
    merged = list(today)
    for index, name in enumerate(older):
        if name in merged:
            continue
        previous = older[index - 1] if index > 0 else None
        position = merged.index(previous) + 1 if previous in merged else len(merged)
        merged.insert(position, name)
    return merged


@dataclass(frozen=True)
class Catalog:
    """The tutorials and the sections a student may file a resource under.

    Attributes:
        tutorials: every catalog row, in file order.
        categories: the sections a student may pick (today's menu merged with 2022's, plus
            any section only the catalog file names; never ``"Other"``).
        source: where the catalog was read from (for messages).
    """

    tutorials: tuple[Tutorial, ...]
    categories: tuple[str, ...]
    source: str = ""

    def filter_categories(self) -> list[str]:
        """Sections that have at least one catalog row, in menu order (``"Other"`` last)."""
        present = {t.category for t in self.tutorials}
        ordered = [c for c in self.categories if c in present]
        if OTHER_CATEGORY in present:
            ordered.append(OTHER_CATEGORY)
        return ordered

    def search(self, query: str = "", categories: list[str] | None = None) -> list[Tutorial]:
        """Tutorials matching every word of ``query`` (in title, description, tags or
        category, case-insensitive), restricted to ``categories`` when given.

        Args:
            query: free text; empty matches everything.
            categories: keep only rows in these sections; ``None`` or empty keeps all.
        """
        words = [w for w in re.split(r"\s+", query.lower().strip()) if w]
        wanted = set(categories or [])
        results = []
        for tutorial in self.tutorials:
            if wanted and tutorial.category not in wanted:
                continue
            haystack = " ".join(
                (tutorial.title, tutorial.description, tutorial.category, " ".join(tutorial.tags))
            ).lower()
            if all(word in haystack for word in words):
                results.append(tutorial)
        return results

    def by_url(self, url: str) -> Tutorial | None:
        """The catalog row with this url (trailing slash and case of the host ignored)."""
        key = _normalise_url(url)
        for tutorial in self.tutorials:
            if _normalise_url(tutorial.url) == key:
                return tutorial
        return None

    def in_category(self, category: str) -> list[Tutorial]:
        """Every catalog row filed under ``category``."""
        return [t for t in self.tutorials if t.category == category]


def _normalise_url(url: str) -> str:
    return url.strip().rstrip("/").lower()


def _read_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _parse_catalog(text: str, source: str) -> list[Tutorial]:
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip().lower() for c in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise CatalogError(
            f"The tutorial catalog {source} lacks the column(s) {', '.join(missing)}. "
            f"It needs a header row with at least: {', '.join(REQUIRED_COLUMNS)}."
        )
    tutorials = []
    for line_no, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        if not any(row.values()):
            continue  # a blank line
        empty = [c for c in REQUIRED_COLUMNS if not row.get(c)]
        if empty:
            raise CatalogError(
                f"Line {line_no} of the tutorial catalog {source} has no {', '.join(empty)}. "
                "Fill it in or delete the line."
            )
        tags = tuple(t.strip() for t in row.get("tags", "").split(",") if t.strip())
        tutorials.append(
            Tutorial(
                category=row["category"],
                title=row["title"],
                url=row["url"],
                description=row.get("description", ""),
                tags=tags,
            )
        )
    if not tutorials:
        raise CatalogError(f"The tutorial catalog {source} has no tutorials in it.")
    return tutorials


@lru_cache(maxsize=8)
def _load(path: str | None, mtime: float | None) -> Catalog:
    # ``mtime`` is part of the cache key so that an instructor's edited file is re-read.
    data = resources.files("workbook.tutorials") / "data"
    if path is None:
        text = (data / _CATALOG_FILE).read_text(encoding="utf-8")
        source = "(bundled)"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise CatalogError(
                f"Cannot read the tutorial catalog {path}: {exc.strerror or exc}. "
                "Check WORKBOOK_CATALOG, or unset it to use the bundled catalog."
            ) from exc
        except UnicodeDecodeError as exc:
            raise CatalogError(
                f"The tutorial catalog {path} is not UTF-8 text. Save it as UTF-8 CSV."
            ) from exc
        source = path
    tutorials = _parse_catalog(text, source)
    today = _read_lines((data / _CATEGORIES_FILE).read_text(encoding="utf-8"))
    older = _read_lines((data / _CATEGORIES_2022_FILE).read_text(encoding="utf-8"))
    categories = _merge_menus(today, older)
    for tutorial in tutorials:
        # A replaced catalog may name sections neither menu file knows.
        if tutorial.category not in categories and tutorial.category != OTHER_CATEGORY:
            categories.append(tutorial.category)
    return Catalog(tutorials=tuple(tutorials), categories=tuple(categories), source=source)


def load_catalog(path: Path | None = None) -> Catalog:
    """Read the catalog (cached; re-read when the file changes).

    Args:
        path: a CSV replacing the bundled catalog (``Settings.catalog_path``); ``None``
            uses the bundled one.

    Raises:
        CatalogError: the file cannot be read or lacks required columns or values.
    """
    if path is None:
        return _load(None, None)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = None  # _load reports the unreadable file with a clear message
    return _load(str(path), mtime)
