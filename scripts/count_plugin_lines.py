"""Count a plugin's lines of code the way issue 14 does: non-blank lines that are neither comments
nor docstrings, in the plugin's Python files, tests and migrations excluded.

    python scripts/count_plugin_lines.py docs/examples/guanxi-pigeon
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

EXCLUDED = {"tests", "migrations", ".venv", "build", "dist"}


def docstring_lines(source: str) -> set[int]:
    """Line numbers of the module's, classes' and functions' docstrings."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def count_file(path: Path) -> int:
    source = path.read_text(encoding="utf-8")
    docs = docstring_lines(source)
    return sum(1 for n, line in enumerate(source.splitlines(), 1) if line.strip() and not line.strip().startswith("#") and n not in docs)


def count(root: Path) -> dict[str, int]:
    """Lines of code per file of the plugin under ``root``."""
    files = sorted(p for p in root.rglob("*.py") if not EXCLUDED & set(p.relative_to(root).parts))
    return {str(p.relative_to(root)): count_file(p) for p in files}


def main(argv: list[str]) -> int:
    per_file = count(Path(argv[0]) if argv else Path("."))
    for name, n in per_file.items():
        print(f"{n:5d}  {name}")
    print(f"{sum(per_file.values()):5d}  total")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
