"""Every internal link in the tree resolves: Markdown links between pages and the README/docs paths that code,
comments, error messages, the Makefile and the workflows point at, with GitHub's heading anchors."""

import io
import re
import shlex
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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


# --- the commands the README and the docs show: each one parses, whatever the words around it say ---------------

INLINE_CODE = re.compile(r"`([^`\n]+)`")
PLACEHOLDER_JOBS = re.compile(r"(-j)\s+[A-Z]\b")  # `make -j N repro`: any number of jobs


def shown_commands(program: str, pages: list[Path] | None = None) -> dict[str, list[str]]:
    """Every ``program ...`` command the README and the docs show (a line of a code block, or inline code), and
    where: what a reader copies, not the prose around it."""
    pages = pages or [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
    found: dict[str, list[str]] = {}
    for page in pages:
        in_fence = False
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if FENCE.match(line):
                in_fence = not in_fence
                continue
            texts = [line.split("#")[0]] if in_fence else INLINE_CODE.findall(line)
            for text in texts:
                for command in text.split(" / "):  # `make push / make pull`
                    command = command.strip().removeprefix("$ ")
                    if command.split(" ", 1)[0] == program:
                        found.setdefault(command, []).append(f"{shown(page)}:{number}")
    return found


def make_problem(command: str) -> str | None:
    """Why ``make ...`` would not run as shown (GNU make's dry run: the targets exist, the arguments parse), or None."""
    args = shlex.split(PLACEHOLDER_JOBS.sub(r"\1 2", command))[1:]
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    return None if result.returncode == 0 else f"{command}: {result.stderr.strip().splitlines()[-1]}"


def verb_problem(command: str) -> str | None:
    """Why ``xgov-digests VERB ...`` names no verb the installed command has (its --help fails), or None."""
    words = shlex.split(command)[1:]
    verb = [w for w in words[:1] if not w.startswith("-") and w.isascii() and w.upper() != w]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "xgov-digests"), *verb, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return None if result.returncode == 0 else f"{command}: {(result.stderr or result.stdout).strip()[-200:]}"


def test_every_make_command_the_docs_show_runs() -> None:
    commands = shown_commands("make")
    assert {"make -j 10 repro", "make test-fast", "make push", "make pull"} <= set(commands)  # the scan finds them
    problems = [
        f"{', '.join(where)}: {why}" for command, where in sorted(commands.items()) if (why := make_problem(command))
    ]
    assert problems == [], "\n".join(problems)


def test_every_xgov_digests_verb_the_docs_show_exists() -> None:
    commands = shown_commands("xgov-digests")
    assert "xgov-digests repro -j 10" in commands  # the scan finds them
    problems = [
        f"{', '.join(where)}: {why}" for command, where in sorted(commands.items()) if (why := verb_problem(command))
    ]
    assert problems == [], "\n".join(problems)


def test_the_command_checks_can_fail(tmp_path: Path) -> None:
    """A target the Makefile lacks and a verb the command lacks are each reported; the scan reads code blocks and
    inline code, not prose."""
    page = tmp_path / "p.md"
    page.write_text(
        "Run `make no-such-target` or\n\n```sh\nmake -j N repro   # comment\n"
        "xgov-digests no-such-verb\n```\n\nmake lint in prose is not a command.\n"
    )
    assert set(shown_commands("make", [page])) == {"make no-such-target", "make -j N repro"}
    assert make_problem("make no-such-target") and make_problem("make -j N repro") is None
    assert verb_problem("xgov-digests no-such-verb") and verb_problem("xgov-digests repro -j 10") is None


TEST_PATH = re.compile(r"(?<![\w./-])(tests/[\w/]+\.py)\b")


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of what a reader reads as prose: a page's lines; a module's comments and docstrings (its
    other strings are data, such as the paths a test plants)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".py":
        return list(enumerate(text.splitlines(), 1))
    lines, previous = [], tokenize.NEWLINE
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        docstring = tok.type == tokenize.STRING and previous in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
        if tok.type == tokenize.COMMENT or docstring:
            lines += [(tok.start[0] + i, ln) for i, ln in enumerate(tok.string.splitlines())]
        if tok.type not in (tokenize.NL, tokenize.COMMENT):
            previous = tok.type
    return lines


def stale_test_paths(pages: list[Path]) -> list[str]:
    """The ``tests/....py`` paths a page names that do not exist (a test moved, the page not told)."""
    return [
        f"{shown(page)}:{number}: {path}: no such file"
        for page in pages
        for number, line in prose_lines(page)
        for path in TEST_PATH.findall(line)
        if not (ROOT / path).is_file()
    ]


def test_every_test_file_the_pages_name_exists() -> None:
    """The pages, and the code's own docstrings and comments that point at the test holding them to something."""
    pages = [p for p in tracked_text_files() if p.suffix in (".md", ".py")]
    assert any("tests/unit/" in p.read_text(encoding="utf-8") for p in pages)  # the scan reads the pages that name them
    assert stale_test_paths(pages) == []


def test_the_test_path_check_can_fail(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("`tests/unit/test_docs.py` and `tests/test_gone.py`\n")
    module = tmp_path / "m.py"
    module.write_text('"""Held by tests/test_gone.py."""\nPLANTED = "tests/test_data.py"  # and tests/test_old.py\n')
    assert stale_test_paths([page, module]) == [
        f"{page}:1: tests/test_gone.py: no such file",
        f"{module}:1: tests/test_gone.py: no such file",
        f"{module}:2: tests/test_old.py: no such file",
    ]
