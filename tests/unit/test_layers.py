"""The floors only look down: jobs -> vipwatch -> operators -> index -> core, read from the
import statements of every module (ast, nothing imported). A project import inside a function
hides that direction, so it is allowed only with a ``# lazy: <why>`` comment on its line or on
the comment line just above it (an optional heavy dependency, an environment that must be set
first)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FLOORS = {"core": 0, "index": 1, "operators": 2, "vipwatch": 3, "jobs": 4}
LAZY_MARK = "# lazy:"


def project_imports(tree: ast.AST) -> list[tuple[str, int, bool]]:
    """(top-level package, line, inside a function) for every import of one of FLOORS."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name.split(".")[0], child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module.split(".")[0], child.lineno, in_function))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return [(package, line, inner) for package, line, inner in found if package in FLOORS]


def justified(lines: list[str], line: int) -> bool:
    """The mark on the import's line, or on a comment line above the run of imports it is in."""
    if LAZY_MARK in lines[line - 1]:
        return True
    above = line - 2
    while above >= 0 and lines[above].strip().startswith(("from ", "import ")):
        above -= 1
    return above >= 0 and lines[above].strip().startswith("#") and LAZY_MARK in lines[above]


def violations(root: Path) -> list[str]:
    problems = []
    for package, floor in FLOORS.items():
        for path in sorted((root / package).rglob("*.py")):
            source = path.read_text()
            lines = source.splitlines()
            where = path.relative_to(root)
            for target, line, in_function in project_imports(ast.parse(source, str(path))):
                if FLOORS[target] > floor:
                    problems.append(f"{where}:{line}: {package} (floor {floor}) imports {target} (floor {FLOORS[target]})")
                if in_function and not justified(lines, line):
                    problems.append(f"{where}:{line}: project import inside a function without '{LAZY_MARK} <why>'")
    return problems


def test_every_import_looks_down_and_none_hides_in_a_function():
    problems = violations(REPO)
    assert not problems, "\n".join(problems)


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("module, text, expected", [
    ("index/climbs.py", "from operators.decode import ImageDecoder\n", "index (floor 1) imports operators (floor 2)"),
    ("core/climbs.py", "import vipwatch.crawl.run\n", "core (floor 0) imports vipwatch (floor 3)"),
    ("operators/hidden.py", "def f():\n    from index.gallery import Gallery\n    return Gallery\n",
     "project import inside a function"),
])
def test_the_check_fails_on_a_bad_module(tmp_path, module, text, expected):
    write(tmp_path, "core/ok.py", "import json\n")
    write(tmp_path, module, text)
    problems = violations(tmp_path)
    assert len(problems) == 1 and expected in problems[0] and module in problems[0]


def test_the_check_passes_what_the_rule_allows(tmp_path):
    write(tmp_path, "vipwatch/fine.py", "from core import storage\nfrom operators.decode import ImageDecoder\n\n"
                                        "def f():\n    # lazy: heavy, only some runs need it\n"
                                        "    from index.faiss_index import gpu_count\n"
                                        "    from jobs import crawl  # lazy: an example on the same line\n"
                                        "    import json\n")
    problems = violations(tmp_path)
    # The same-line mark justifies being inside a function, never climbing a floor.
    assert problems == ["vipwatch/fine.py:7: vipwatch (floor 3) imports jobs (floor 4)"]
