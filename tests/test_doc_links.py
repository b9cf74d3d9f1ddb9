"""Every internal link in the tree resolves: Markdown links between pages and the README/docs paths that code,
comments, error messages, the Makefile and the workflows point at, with GitHub's heading anchors."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Trees whose text is data (files of the sample repos), not references to this project's pages.
NOT_REFERENCES = ("tests/fixtures/",)
MD_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
PATH_REF = re.compile(r"(?<![\w./-])((?:\.\./)*(?:bench/)?README\.md|(?:\.\./)*docs/[\w.-]+\.(?:md|png))(#[\w-]+)?")
OLD_STYLE = re.compile(r"\bREADME(?::|,) \"?[A-Z]")  # "README: Scale out": a section name no test can follow
FENCE = re.compile(r"^\s*(```|~~~)")


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: formatting and punctuation dropped, lower case, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays, its target goes
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor of a Markdown page: its headings (outside code fences, duplicates numbered) and HTML ids."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    in_fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = github_slug(heading.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
        found.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line))
    return found


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = []
    for name in names.decode().split("\0"):
        path = ROOT / name
        if not name or name.startswith(NOT_REFERENCES) or path == Path(__file__).resolve():
            continue
        if not path.is_file() or path.suffix in {".png", ".parquet"}:
            continue
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        files.append(path)
    return files


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def broken(source: Path, target: str, base: Path) -> str | None:
    """Why ``target`` (a path with an optional ``#anchor``, relative to ``base``) does not resolve, or None."""
    path_part, _, anchor = target.partition("#")
    page = (base / path_part).resolve() if path_part else source
    if not page.is_relative_to(ROOT):
        return f"{target}: outside the project"
    if not page.exists():
        return f"{target}: no such file"
    if anchor and page.suffix == ".md" and anchor not in anchors(page):
        return f"{target}: no heading with anchor #{anchor} in {shown(page)}"
    return None


def markdown_problems(page: Path) -> list[str]:
    problems = []
    in_fence = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            in_fence = not in_fence
        if in_fence:
            continue
        for target in MD_LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            why = broken(page, target, page.parent)
            if why:
                problems.append(f"{shown(page)}:{number}: {why}")
    return problems


def path_problems(source: Path) -> list[str]:
    problems = []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        for path_part, anchor in PATH_REF.findall(line):
            base = source.parent if path_part.startswith("../") else ROOT
            why = broken(source, path_part + anchor, base)
            if why:
                problems.append(f"{shown(source)}:{number}: {why}")
        if OLD_STYLE.search(line):
            problems.append(f"{shown(source)}:{number}: name the page's path (docs/<page>.md), not a section")
    return problems


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Shards at once: `make -j N repro`", "shards-at-once-make--j-n-repro"),
        ("What a clone downloads", "what-a-clone-downloads"),
        ("The R2 remote", "the-r2-remote"),
        ("xgov-digests: Feed entries", "xgov-digests-feed-entries"),
        ("`auto` vs `off` (partial clones)", "auto-vs-off-partial-clones"),
        ("Café & [links](x.md)", "café--links"),
        ("snake_case kept", "snake_case-kept"),
    ],
)
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_anchors_number_duplicates_and_skip_code(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("# Intro\n\n```sh\n# not a heading\n```\n\n## Intro\n\n### Next step ###\n")
    assert anchors(page) == {"intro", "intro-1", "next-step"}


def test_checker_finds_broken_links(tmp_path: Path) -> None:
    """The checker itself: a missing page, a missing anchor and a section-name reference are each reported."""
    page = ROOT / "docs" / "feed.md"
    assert broken(page, "pipeline.md#no-such-heading", page.parent)
    assert broken(page, "nowhere.md", page.parent)
    assert broken(page, "pipeline.md#the-pipeline", page.parent) is None
    source = tmp_path / "x.py"
    source.write_text('# see docs/nowhere.md and README.md#gone\n# (README, "Scale out")\n')
    problems = path_problems(source)
    assert len(problems) == 3, problems


def test_every_internal_link_resolves() -> None:
    files = tracked_text_files()
    assert any(f.name == "README.md" for f in files) and any(f.parent.name == "docs" for f in files)
    problems = []
    for path in files:
        if path.suffix == ".md":
            problems += markdown_problems(path)
        problems += path_problems(path)
    assert not problems, "\n".join(problems)


def test_readme_fits_a_first_screen_and_links_every_docs_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    linked = {Path(t).name for t in MD_LINK.findall(readme) if t.startswith("docs/") and t.endswith(".md")}
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages and pages <= linked, f"docs pages the README does not link: {sorted(pages - linked)}"
