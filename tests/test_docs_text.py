"""The project's prose: it speaks of the code only, and README's example is the one the site runs.

README, the documentation, the benchmark log, the package and the examples
say what is and how it was measured (machine, date), never how the work was
organised. The words below are refused there in that sense; "session" in
another sense (a pytest session fixture) lives in tests/, which is not read.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Generated folders of the site are not sources.
GENERATED = ("docs/_build", "docs/auto_examples", "docs/notebooks", "docs/reference/generated",
             "docs/reference/api.rst")
SOURCES = (".md", ".py", ".rst", ".txt", ".toml", ".sh", ".cfg", ".ipynb")
FORBIDDEN = re.compile(
    r"\bsessions?\b|\bsession-\d|\bthe lead\b|\bthis task\b|\bissue\s*#?\d+"
    r"|\bprevious (?:session|run of the team)\b",
    re.IGNORECASE)


def prose_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "benchmarks" / "RESULTS.md"]
    for folder in ("docs", "scratchrnn", "examples", "notebooks"):
        for path in sorted((ROOT / folder).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if (path.is_file() and path.suffix in SOURCES and "__pycache__" not in rel
                    and not rel.startswith(GENERATED)):
                files.append(path)
    return files


def test_the_project_speaks_of_itself_only():
    hits = []
    for path in prose_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in FORBIDDEN.finditer(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {m.group(0)!r} in {line.strip()!r}")
    assert not hits, "words about how the work was organised:\n" + "\n".join(hits)


def test_the_pattern_catches_what_it_must():
    for text in ("Session 1's run", "this session had no GPU", "The previous session's",
                 "as the lead measured", "this task was not drawn", "issue 12 item 7",
                 "session-2 machine"):
        assert FORBIDDEN.search(text), text
    for text in ("a pytest fixture", "the leading dims", "the task's batch size"):
        assert not FORBIDDEN.search(text), text


def code_block(text: str, opener: str) -> str:
    start = text.index(opener) + len(opener)
    return text[start:text.index("\n```", start)].strip("\n")


def test_readme_example_is_the_one_the_site_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quickstart = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Forward, loss, backward and SGD in 20 lines"):]
    assert code_block(section, "```python\n") == code_block(quickstart, "```{code-cell} python\n")


def test_readme_stays_a_front_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    test_command = re.search(r"<!-- test-command -->\n```\n(.*)\n```\n<!-- /test-command -->",
                             readme)
    assert test_command and ".[test,fast,mpi,docs]" in test_command.group(1)
    assert "sphinx-build -W --keep-going -b html docs docs/_build/html" in readme
    for link in re.findall(r"\]\(((?:docs|examples|benchmarks)/[^)#]*)", readme):
        assert (ROOT / link).exists(), f"README links to a missing {link}"
