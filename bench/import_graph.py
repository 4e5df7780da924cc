"""The import graph of `bot/`, read with `ast` (nothing is imported): edges, cycles, and
the modules over a size, as text.

    python bench/import_graph.py            # this tree
    python bench/import_graph.py --root DIR # another checkout (e.g. before a change)

Every `import bot.x` / `from bot.x import y` counts, at module level or inside a
function (`[lazy]`); `if TYPE_CHECKING:` imports count too, as lazy (they never run, but
a cycle through them is still a cycle of the design, and import-linter counts them). A
cycle is a strongly connected set of modules; the report lists each with its edges.
"""

from __future__ import annotations

import argparse
import ast
from collections import defaultdict
from pathlib import Path

LONG_LINES = 450  # modules over this many lines are listed


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(tree: ast.Module, here: str, modules: set[str]) -> dict[str, bool]:
    """The bot modules this one imports -> True when only inside functions (lazy)."""
    found: dict[str, bool] = {}

    def add(target: str, lazy: bool) -> None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != here:
            found[target] = found.get(target, True) and lazy

    def walk(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                walk(child, True)  # never run, but a cycle through it is one of design
                continue
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("bot"):
                        add(alias.name, lazy)
            elif (
                isinstance(child, ast.ImportFrom)
                and child.module
                and child.level == 0
                and child.module.startswith("bot")
            ):
                for alias in child.names:  # `from bot import config` names a module
                    full = f"{child.module}.{alias.name}"
                    add(full if full in modules else child.module, lazy)
            walk(child, inner)

    walk(tree, False)
    return found


def graph(root: Path) -> tuple[dict[str, dict[str, bool]], dict[str, int]]:
    package = root / "bot"
    paths = {module_name(root, p): p for p in sorted(package.rglob("*.py"))}
    names = set(paths)
    edges: dict[str, dict[str, bool]] = {}
    sizes: dict[str, int] = {}
    for name, path in paths.items():
        text = path.read_text(encoding="utf-8")
        sizes[name] = text.count("\n")
        edges[name] = imports(ast.parse(text), name, names)
    return edges, sizes


def cycles(edges: dict[str, dict[str, bool]]) -> list[list[str]]:
    """Strongly connected sets of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def report(root: Path) -> str:
    edges, sizes = graph(root)
    lines = [f"{len(edges)} modules, {sum(len(e) for e in edges.values())} import edges"]
    found = cycles(edges)
    lines.append(f"cycles: {len(found) or 'none'}")
    for group in found:
        members = set(group)
        inner = [
            f"{a} -> {b}{' [lazy]' if edges[a][b] else ''}"
            for a in group
            for b in sorted(edges[a])
            if b in members
        ]
        lines.append("  " + ", ".join(inner))
    fan_in: dict[str, int] = defaultdict(int)
    for targets in edges.values():
        for target in targets:
            fan_in[target] += 1
    top = sorted(fan_in.items(), key=lambda kv: (-kv[1], kv[0]))[:6]
    lines.append("most imported: " + ", ".join(f"{m} ({n})" for m, n in top))
    long = sorted(((n, m) for m, n in sizes.items() if n > LONG_LINES), reverse=True)
    lines.append(f"over {LONG_LINES} lines: " + (", ".join(f"{m} {n}" for n, m in long) or "none"))
    lines.append("edges:")
    for name in sorted(edges):
        if edges[name]:
            targets = ", ".join(
                f"{t}{' [lazy]' if lazy else ''}" for t, lazy in sorted(edges[name].items())
            )
            lines.append(f"  {name} -> {targets}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    print(report(args.root))


if __name__ == "__main__":
    main()
