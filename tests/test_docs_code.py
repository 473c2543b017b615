"""The code on the "BPTT, derived" pages (docs/bptt/) is the package's own code.

Read without building the site (fast):

* a Python block that is not executed (```python, ```{code-block} python,
  ```{code} python...) is refused: code shown on these pages is included
  from the package with ``literalinclude``;
* every ``literalinclude`` names a file of the package, and one with
  ``:pyobject:`` names an object that exists: the text Sphinx includes
  (found the way Sphinx finds it, from the file's syntax tree) equals
  ``inspect.getsource`` of the object that the import gives;
* an executed ``{code-cell}`` is usage code: it defines no function or class
  (a copy of package code is made by exec'ing ``inspect.getsource``);
* every page named in the section's toctree exists.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "docs" / "bptt"
PACKAGE = ROOT / "scratchrnn"

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<mark>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
DIRECTIVE = re.compile(r"^\{(?P<name>[\w:-]+)\}\s*(?P<arg>.*)$")
CODE_DIRECTIVES = {"code-block", "code", "sourcecode", "ipython", "jupyter-execute"}
PYTHON = {"python", "python3", "py", "ipython", "ipython3", "pycon", ""}


@dataclass
class Block:
    """One fenced block of a page: its info string, options and body."""

    page: Path
    line: int                     # 1-based line of the opening fence
    info: str                     # what follows the fence: "python", "{literalinclude} ..."
    options: dict[str, str] = field(default_factory=dict)
    body: str = ""

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if ROOT in self.page.parents else self.page
        return f"{page}:{self.line}"


def fenced_blocks(text: str, page: Path, first_line: int = 1) -> list[Block]:
    """The fenced blocks of a MyST page (``` ~~~ and ::: fences), nested ones
    included: the body of a directive that is not code is searched again."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or (m["mark"][0] == "`" and "`" in m["info"]):
            i += 1
            continue
        mark, start = m["mark"], i
        j = i + 1
        while j < len(lines):
            close = FENCE.match(lines[j])
            if close and close["mark"][0] == mark[0] and len(close["mark"]) >= len(mark) \
                    and not close["info"].strip():
                break
            j += 1
        body = lines[start + 1:j]
        options: dict[str, str] = {}
        if body and body[0].strip() == "---":                 # YAML-style options
            end = next((k for k in range(1, len(body)) if body[k].strip() == "---"), 0)
            for opt in body[1:end]:
                key, _, value = opt.partition(":")
                options[key.strip()] = value.strip()
            body = body[end + 1:]
        else:
            while body and body[0].startswith(":"):            # :option: value
                key, _, value = body[0][1:].partition(":")
                options[key.strip()] = value.strip()
                body = body[1:]
        block = Block(page, first_line + start, m["info"].strip(), options, "\n".join(body))
        blocks.append(block)
        d = DIRECTIVE.match(block.info)
        if d and d["name"] not in CODE_DIRECTIVES | {"code-cell", "literalinclude", "math"}:
            blocks += fenced_blocks(block.body, page, first_line + start + 1)
        i = j + 1
    return blocks


def all_blocks() -> list[Block]:
    return [b for page in sorted(PAGES.glob("*.md"))
            for b in fenced_blocks(page.read_text(encoding="utf-8"), page)]


def directive(block: Block) -> tuple[str, str]:
    """(directive name, argument) of a ```{name} arg block; ("", language) otherwise."""
    d = DIRECTIVE.match(block.info)
    return (d["name"], d["arg"].strip()) if d else ("", block.info.split()[0] if block.info
                                                     else "")


# --------------------------------------------------------------------------- #
# :pyobject: the way Sphinx finds it
# --------------------------------------------------------------------------- #
def pyobject_lines(source: str, dotted: str) -> tuple[int, int] | None:
    """1-based first and last line of ``dotted`` (``name`` or ``Class.method``)
    in ``source``, decorators included: what ``literalinclude :pyobject:`` shows."""
    body: list[ast.stmt] = ast.parse(source).body
    node: ast.AST | None = None
    for part in dotted.split("."):
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                       ast.ClassDef)) and n.name == part), None)
        if node is None:
            return None
        body = node.body
    assert node is not None
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return first, node.end_lineno


def included_text(path: Path, dotted: str) -> str | None:
    source = path.read_text(encoding="utf-8")
    span = pyobject_lines(source, dotted)
    if span is None:
        return None
    lines = source.splitlines(keepends=True)
    return "".join(lines[span[0] - 1:span[1]])


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def include_target(block: Block) -> Path:
    _, arg = directive(block)
    return (block.page.parent / arg).resolve()


# --------------------------------------------------------------------------- #
# The tests
# --------------------------------------------------------------------------- #
def test_the_pages_exist_and_include_package_code():
    blocks = all_blocks()
    assert (PAGES / "index.md").exists()
    includes = [b for b in blocks if directive(b)[0] == "literalinclude"]
    assert len(includes) >= 10, "the derivation pages include the package's functions"
    assert any(b.page.name == "lstm.md" and b.options.get("pyobject") == "lstm_backward"
               for b in includes)


def pasted_python(blocks: list[Block]) -> list[str]:
    """The blocks that show Python without including or executing it."""
    pasted = []
    for b in blocks:
        name, arg = directive(b)
        language = (arg.split() or [""])[0].lower()
        if (name == "" and language in PYTHON - {""}) or \
                (name in CODE_DIRECTIVES and language in PYTHON):
            pasted.append(f"{b.where}: ```{b.info}")
    return pasted


def test_no_python_is_pasted():
    pasted = pasted_python(all_blocks())
    assert not pasted, ("Python shown on a BPTT page must be included from the package "
                        "(literalinclude) or executed ({code-cell}); pasted: "
                        + "; ".join(pasted))


def test_every_literalinclude_is_package_source_and_resolves():
    problems = []
    for b in all_blocks():
        if directive(b)[0] != "literalinclude":
            continue
        path = include_target(b)
        if not path.is_file() or PACKAGE not in path.parents or path.suffix != ".py":
            problems.append(f"{b.where}: {directive(b)[1]} is not a file of the package")
            continue
        dotted = b.options.get("pyobject")
        if dotted is None:
            problems.append(f"{b.where}: include an object by name (:pyobject:)")
            continue
        text = included_text(path, dotted)
        if text is None:
            problems.append(f"{b.where}: {dotted} is not defined in {path.name}")
            continue
        obj = importlib.import_module(module_name(path))
        for part in dotted.split("."):
            obj = getattr(obj, part)
        if textwrap.dedent(text) != textwrap.dedent(inspect.getsource(obj)):
            problems.append(f"{b.where}: the text included for {dotted} is not its source")
    assert not problems, "\n".join(problems)


def test_pyobject_extraction_agrees_with_sphinx():
    """The extraction above is Sphinx's, wherever Sphinx is installed."""
    pycode = pytest.importorskip("sphinx.pycode")
    for b in all_blocks():
        dotted = b.options.get("pyobject")
        if directive(b)[0] != "literalinclude" or dotted is None:
            continue
        path = include_target(b)
        _, start, end = pycode.ModuleAnalyzer.for_file(str(path), "").find_tags()[dotted]
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        assert included_text(path, dotted) == "".join(lines[start - 1:end]), b.where


def test_executed_cells_define_nothing():
    problems = []
    for b in all_blocks():
        if directive(b)[0] != "code-cell":
            continue
        try:
            tree = ast.parse(b.body)
        except SyntaxError as e:
            problems.append(f"{b.where}: not Python ({e.msg})")
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                problems.append(f"{b.where}: defines {node.name!r} (exec the package's "
                                "source instead)")
    assert not problems, "\n".join(problems)


def test_every_page_of_the_toctree_exists():
    toctrees = [b for b in fenced_blocks((PAGES / "index.md").read_text(encoding="utf-8"),
                                         PAGES / "index.md") if directive(b)[0] == "toctree"]
    assert toctrees, "docs/bptt/index.md has a toctree"
    entries = [line.strip() for b in toctrees for line in b.body.splitlines()
               if line.strip() and not line.strip().startswith(":")]
    entries = [re.sub(r"^.*<(.+)>$", r"\1", e) for e in entries]     # "Title <page>"
    assert entries
    missing = [e for e in entries if not (PAGES / f"{e}.md").exists()]
    assert not missing, f"pages named in the toctree but not found: {missing}"
    listed = {f"{e}.md" for e in entries} | {"index.md"}
    unlisted = sorted(p.name for p in PAGES.glob("*.md") if p.name not in listed)
    assert not unlisted, f"pages not in the toctree: {unlisted}"


@pytest.mark.parametrize("text, refused", [
    ("```python\nx = 1\n```\n", True),
    ("```{code-block} python\n:linenos:\nx = 1\n```\n", True),
    ("````{note}\n```py\nx = 1\n```\n````\n", True),
    ("```text\nh_t = tanh(a_t)\n```\n", False),
    ("```{literalinclude} ../../scratchrnn/cells/lstm.py\n:pyobject: lstm_backward\n```\n",
     False),
])
def test_the_page_reader_finds_pasted_code(tmp_path, text, refused):
    """The reader itself: pasted Python is found, nested in a directive too."""
    page = tmp_path / "page.md"
    page.write_text(text)
    assert bool(pasted_python(fenced_blocks(text, page))) == refused
