"""The PyTorch tutorial catalog: bundled data, search, filters, categories and guidance."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from workbook.tutorials.catalog import (
    INTRO_CATEGORY,
    OTHER_CATEGORY,
    YOUTUBE_CATEGORY,
    CatalogError,
    Tutorial,
    guidance_for,
    is_youtube,
    load_catalog,
)

SHARED = Path(__file__).resolve().parents[1] / "workbook" / "tutorials" / "data"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_bundled_catalog_has_every_row_of_the_csv():
    catalog = load_catalog()
    rows = _rows(SHARED / "pytorch_tutorials.csv")
    assert len(catalog.tutorials) == len(rows)
    assert [t.url for t in catalog.tutorials] == [r["url"] for r in rows]


def test_categories_are_the_union_of_both_menus_without_other():
    catalog = load_catalog()
    today = (SHARED / "pytorch_tutorial_categories.txt").read_text().split("\n")
    older = (SHARED / "pytorch_tutorial_categories_2022.txt").read_text().split("\n")
    expected = {c.strip() for c in today + older if c.strip()}
    assert set(catalog.categories) == expected
    assert len(catalog.categories) == len(expected)  # no duplicates
    assert OTHER_CATEGORY not in catalog.categories


def test_sections_only_the_2022_menu_has_sit_after_their_old_neighbour():
    categories = list(load_catalog().categories)
    assert categories.index(YOUTUBE_CATEGORY) == categories.index(INTRO_CATEGORY) + 1
    assert categories.index("Text") == categories.index("Audio") + 1


def test_search_matches_every_word_case_insensitively():
    catalog = load_catalog()
    results = catalog.search("TENSORBOARD")
    assert results
    for tutorial in results:
        haystack = f"{tutorial.title} {tutorial.description} {' '.join(tutorial.tags)}".lower()
        assert "tensorboard" in haystack
    assert catalog.search("tensorboard zzzz-not-a-word") == []


def test_filter_by_category_keeps_only_those_sections():
    catalog = load_catalog()
    results = catalog.search("", ["Image and Video", "Audio"])
    assert results
    assert {t.category for t in results} == {"Image and Video", "Audio"}
    assert len(results) == len(catalog.in_category("Image and Video")) + len(
        catalog.in_category("Audio")
    )


def test_empty_query_without_filter_returns_everything():
    catalog = load_catalog()
    assert catalog.search() == list(catalog.tutorials)


def test_filter_categories_lists_sections_with_rows_and_other_last():
    catalog = load_catalog()
    filters = catalog.filter_categories()
    assert filters[-1] == OTHER_CATEGORY
    assert all(catalog.in_category(c) for c in filters)


def test_by_url_ignores_trailing_slash_and_case():
    catalog = load_catalog()
    first = catalog.tutorials[0]
    assert catalog.by_url(first.url.upper() + "/") == first
    assert catalog.by_url("https://example.org/not-there") is None


def test_youtube_series_is_recognised_inside_the_intro_section():
    youtube = [t for t in load_catalog().tutorials if t.youtube]
    assert youtube and all("introyt" in t.url for t in youtube)
    assert is_youtube("My notes", "https://www.youtube.com/watch?v=abc")
    assert not is_youtube(
        "Learn the Basics", "https://pytorch.org/tutorials/beginner/basics/intro.html"
    )


def test_guidance_covers_the_courses_named_sections():
    assert guidance_for("PyTorch Recipes").kind == "recommended"
    assert guidance_for(INTRO_CATEGORY).kind == "rule"
    assert "type the code" in guidance_for(YOUTUBE_CATEGORY).text
    assert guidance_for("Text").kind == "caution"
    for section in ("Reinforcement Learning", "Mobile", "Recommendation Systems"):
        assert guidance_for(section).kind == "advanced"
    assert guidance_for("Audio") is None


def test_guidance_for_a_tutorial_follows_youtube_and_nlp_tags():
    series = Tutorial(INTRO_CATEGORY, "Introduction to PyTorch on YouTube", "https://x/introyt/a")
    assert guidance_for(series.category, series).category == YOUTUBE_CATEGORY
    nlp = Tutorial(OTHER_CATEGORY, "NLP from Scratch", "https://x/nlp", tags=("NLP",))
    assert guidance_for(nlp.category, nlp).kind == "caution"


def test_replaced_catalog_is_used_and_new_sections_become_pickable(tmp_path):
    path = tmp_path / "term.csv"
    path.write_text(
        "category,title,url\nBrand New Section,A tutorial,https://example.org/a\n"
        "PyTorch Recipes,A recipe,https://example.org/b\n",
        encoding="utf-8",
    )
    catalog = load_catalog(path)
    assert [t.title for t in catalog.tutorials] == ["A tutorial", "A recipe"]
    assert "Brand New Section" in catalog.categories


def test_replaced_catalog_is_reread_after_an_edit(tmp_path):
    import os

    path = tmp_path / "term.csv"
    path.write_text("category,title,url\nAudio,One,https://e.org/1\n", encoding="utf-8")
    assert len(load_catalog(path).tutorials) == 1
    path.write_text(
        "category,title,url\nAudio,One,https://e.org/1\nAudio,Two,https://e.org/2\n",
        encoding="utf-8",
    )
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))
    assert len(load_catalog(path).tutorials) == 2


def test_catalog_missing_a_column_says_which(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("category,title\nAudio,One\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="url"):
        load_catalog(path)


def test_catalog_row_without_a_title_names_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("category,title,url\nAudio,One,https://e/1\nAudio,,https://e/2\n")
    with pytest.raises(CatalogError, match="Line 3"):
        load_catalog(path)


def test_missing_catalog_file_points_at_the_setting(tmp_path):
    with pytest.raises(CatalogError, match="WORKBOOK_CATALOG"):
        load_catalog(tmp_path / "nope.csv")
