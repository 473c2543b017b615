"""A cell's pointwise functions, read once and restated for a kernel.

The cells write their gate math as plain Python over whole (B, H) blocks
(``scratchrnn/cells/*.py``). An accelerated engine needs the same lines per
element inside its own loop: numba source for the CPU, CUDA C for the GPU.
:func:`parse` reads a cell's ``forward``/``backward`` (their source, with
:mod:`ast`) into a :class:`Pointwise`: the arguments, the assignments in
order and what is returned. The emitters then print each assignment for a
target, line for line, names kept:

    tanh_c = tanh(c)                     (cell file)
    tanh_c = tanh(c)                     (numba, ``python_lines``)
    T v_tanh_c = tanh(v_c);              (CUDA, ``c_lines``)

The grammar is deliberately tiny: ``name = expression`` statements, the
operators ``+ - * /``, unary minus, numbers, the cell's arguments, the
cache's fields (``k.f``) and the calls ``sigmoid``, ``tanh``, ``relu`` and
``relu_prime``. Anything else is refused with the line it is on, so a cell
that the kernels cannot state faithfully fails loudly instead of silently.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, fields

CALLS = ("sigmoid", "tanh", "relu", "relu_prime")
_C_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


@dataclass(frozen=True)
class Pointwise:
    """One pointwise function, parsed."""

    name: str
    args: tuple[str, ...]                 # argument names, in order
    cache_arg: str | None                 # backward: the cache argument ("k")
    body: tuple[ast.Assign, ...]          # the assignments, in order
    returns: tuple[tuple[ast.expr, ...] | None, ...]  # the returned groups

    def used(self, name: str) -> bool:
        """Whether the body or the returns read ``name`` (an argument or ``k.field``)."""
        nodes = list(self.body) + [e for g in self.returns if g for e in g]
        return any(isinstance(n, ast.Name) and n.id == name
                   for node in nodes for n in ast.walk(node))


def _fail(fn: Callable, node: ast.AST, why: str) -> None:
    raise ValueError(f"{fn.__qualname__}, line {getattr(node, 'lineno', '?')}: {why} "
                     f"(pointwise cell functions allow `name = expr` with + - * /, numbers, "
                     f"arguments, cache fields and {', '.join(CALLS)})")


def parse(fn: Callable, cache_type: type | None = None) -> Pointwise:
    """Read ``fn``; with ``cache_type`` it is a backward whose last argument is the cache.

    ``k.field`` becomes the name ``k_field`` in the parsed body.
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    fdef = tree.body[0]
    if not isinstance(fdef, ast.FunctionDef):
        _fail(fn, fdef, "not a function definition")
    args = tuple(a.arg for a in fdef.args.args)
    cache_arg = args[-1] if cache_type is not None else None
    cache_fields = {f.name for f in fields(cache_type)} if cache_type else set()
    stmts = [s for s in fdef.body
             if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if not stmts or not isinstance(stmts[-1], ast.Return):
        _fail(fn, fdef, "the last statement must be a return")

    class _Cache(ast.NodeTransformer):
        def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
            if not (isinstance(node.value, ast.Name) and node.value.id == cache_arg
                    and node.attr in cache_fields):
                _fail(fn, node, f"attribute {ast.unparse(node)!r}")
            return ast.copy_location(ast.Name(f"{cache_arg}_{node.attr}", ast.Load()), node)

    body = []
    for s in stmts[:-1]:
        if not (isinstance(s, ast.Assign) and len(s.targets) == 1
                and isinstance(s.targets[0], ast.Name)):
            _fail(fn, s, "not a single `name = expr` assignment")
        s = _Cache().visit(s)
        _check_expr(fn, s.value)
        body.append(s)
    ret = stmts[-1].value
    if not isinstance(ret, ast.Tuple):
        _fail(fn, stmts[-1], "the return must be a tuple of groups")
    groups: list[tuple[ast.expr, ...] | None] = []
    for g in ret.elts:
        if isinstance(g, ast.Constant) and g.value is None:
            groups.append(None)
            continue
        elts = g.args if isinstance(g, ast.Call) else getattr(g, "elts", None)
        if elts is None:
            _fail(fn, g, "each returned group must be a tuple or the cache's constructor")
        elts = tuple(_Cache().visit(e) for e in elts)
        for e in elts:
            _check_expr(fn, e)
        groups.append(elts)
    return Pointwise(fn.__name__, args, cache_arg, tuple(body), tuple(groups))


def _check_expr(fn: Callable, node: ast.expr) -> None:
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            if not (isinstance(n.func, ast.Name) and n.func.id in CALLS) or n.keywords:
                _fail(fn, n, f"call {ast.unparse(n)!r}")
        elif isinstance(n, ast.BinOp):
            if type(n.op) not in _C_OPS:
                _fail(fn, n, f"operator in {ast.unparse(n)!r}")
        elif isinstance(n, ast.UnaryOp):
            if not isinstance(n.op, ast.USub):
                _fail(fn, n, f"operator in {ast.unparse(n)!r}")
        elif isinstance(n, ast.Constant):
            if isinstance(n.value, bool) or not isinstance(n.value, (int, float)):
                _fail(fn, n, f"constant {n.value!r}")
        elif not isinstance(n, (ast.Name, ast.Load, ast.operator, ast.unaryop, ast.expr_context)):
            _fail(fn, n, f"expression {ast.unparse(n)!r}")


def is_zero(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value == 0


# --------------------------------------------------------------------------- #
# Emitters
# --------------------------------------------------------------------------- #
def constants(pw: Pointwise) -> list[float]:
    """Every number the function uses, in first-use order (a kernel types them once)."""
    found: list[float] = []
    nodes = list(pw.body) + [e for g in pw.returns if g for e in g]
    for node in nodes:
        for n in ast.walk(node):
            if isinstance(n, ast.Constant) and float(n.value) not in found:
                found.append(float(n.value))
    return found


def python_expr(node: ast.expr) -> str:
    """Python source with each number ``v`` as the typed constant ``_c[v]``'s name."""

    class _Consts(ast.NodeTransformer):
        def visit_Constant(self, n: ast.Constant) -> ast.AST:
            return ast.Name(const_name(float(n.value)), ast.Load())

    return ast.unparse(_Consts().visit(ast.parse(ast.unparse(node), mode="eval")).body)


def const_name(value: float) -> str:
    return "_c_" + repr(float(value)).replace(".", "_").replace("-", "m").replace("+", "p")


def python_lines(pw: Pointwise) -> list[str]:
    """The body as numba-ready Python statements, one per cell line."""
    return [f"{s.targets[0].id} = {python_expr(s.value)}" for s in pw.body]


def c_expr(node: ast.expr) -> str:
    """CUDA C for an expression: names prefixed ``v_``, numbers as ``T(value)``."""
    if isinstance(node, ast.BinOp):
        return f"({c_expr(node.left)} {_C_OPS[type(node.op)]} {c_expr(node.right)})"
    if isinstance(node, ast.UnaryOp):
        return f"(-{c_expr(node.operand)})"
    if isinstance(node, ast.Call):
        return f"{node.func.id}({', '.join(c_expr(a) for a in node.args)})"
    if isinstance(node, ast.Constant):
        return f"T({float(node.value)!r})"
    if isinstance(node, ast.Name):
        return f"v_{node.id}"
    raise ValueError(f"cannot state {ast.unparse(node)!r} in C")


def c_lines(pw: Pointwise, known: set[str]) -> list[str]:
    """The body as CUDA C statements; a name's first assignment declares it (``T v_x = ...``)."""
    lines, seen = [], set(known)
    for s in pw.body:
        name = s.targets[0].id
        decl = "" if name in seen else "T "
        seen.add(name)
        lines.append(f"{decl}v_{name} = {c_expr(s.value)};")
    return lines
