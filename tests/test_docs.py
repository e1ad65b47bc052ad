"""The README is a front page: short, naming every module, and every link in it and in docs/ live."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PACKAGES = ("quantcraft_dagster", "assets", "resources", "sensors", "leaderboard_app")
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("*/**/README.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def modules() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path.name != "__init__.py" and ".venv" not in path.parts:
                found.append(path.stem)
    return sorted(set(found))


def test_readme_is_a_front_page():
    assert len(README.read_text().splitlines()) <= 150


@pytest.mark.parametrize("module", modules())
def test_every_module_is_in_the_readmes_map(module):
    names = " ".join(re.findall(r"`([^`]*)`", README.read_text()))
    assert re.search(rf"(?<![\w]){module}(?![\w])", names), f"{module} is missing from README's map"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_is_live(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # an absolute URL: not this repository's to check
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: dead link {target}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", file.read_text(), re.M)
            assert anchor in {slug(h) for h in headings}, f"{page.name}: no heading for #{anchor}"
