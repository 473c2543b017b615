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


# The modules the API reference documents (docs/conf.py's API_MODULES).
API_MODULES = ("scratchrnn.functional", "scratchrnn.cells", "scratchrnn.nn", "scratchrnn.losses",
               "scratchrnn.training", "scratchrnn.gradcheck", "scratchrnn.data",
               "scratchrnn.models", "scratchrnn.backend", "scratchrnn.study")


def public_objects():
    """(dotted name, object) for every public module, class, function, method and
    property that the reference shows: defined in these modules, recursively."""
    import importlib
    import importlib.util
    import inspect
    import pkgutil

    seen: set[str] = set()

    def walk(name: str):
        if name in seen:
            return
        seen.add(name)
        module = importlib.import_module(name)
        yield name, module
        for key, obj in vars(module).items():
            if key.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if inspect.isfunction(obj):
                yield f"{name}.{key}", obj
            elif inspect.isclass(obj):
                yield f"{name}.{key}", obj
                for attr, member in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    if isinstance(member, property):
                        yield f"{name}.{key}.{attr}", member
                    elif inspect.isfunction(getattr(member, "__func__", member)):
                        yield f"{name}.{key}.{attr}", getattr(obj, attr)
        if hasattr(module, "__path__"):
            for info in pkgutil.iter_modules(module.__path__):
                if not info.name.startswith("_"):
                    yield from walk(f"{name}.{info.name}")

    for name in API_MODULES:
        if importlib.util.find_spec(name) is not None:
            yield from walk(name)


def test_every_public_name_has_a_docstring():
    import inspect

    missing = []
    for name, obj in public_objects():
        doc = obj.__doc__ if isinstance(obj, property) else inspect.getdoc(obj)
        if inspect.isclass(obj) and (obj.__doc__ is None
                                     or obj.__doc__.startswith(f"{obj.__name__}(")):
            doc = None          # a class says what it is itself (not dataclass's signature)
        if not (doc or "").strip():
            missing.append(name)
    assert not missing, "public names without a docstring:\n" + "\n".join(missing)
