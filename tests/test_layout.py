"""The layout's one rule, checked on the import graph read from the source (every import statement,
those inside functions and under TYPE_CHECKING included): no import circles in the project, data/
uses no other folder, scoring/ never the model side, no entry script is imported, and nothing on
the numpy side (every harness module but the torch side's, challenge.py, blind_test.py,
strategies/) reaches torch or transformers, however deep. The folders are by domain (scoring,
forecast, drafting); the rule is on modules, so it holds whatever a folder is called."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENTRY_SCRIPTS = ("challenge", "blind_test", "preprocess_train", "predict_emergence")
MODEL_LIBRARIES = {"torch", "transformers", "accelerate", "peft"}
# The one optional reach: a tokenizer folder saved without tokenizer.json is converted by transformers
# when it is installed, and is a one-line error when it is not (tests/test_cli.py covers both).
OPTIONAL = {("harness.data.tokenizer", "_converted", "transformers")}
# The torch side: everything in models/, and the one torch module of each domain folder.
TORCH_SIDE = ("harness.models", "harness.forecast.finetune", "harness.drafting.generation")


def torch_side(module: str) -> bool:
    return module == TORCH_SIDE[0] or module.startswith(TORCH_SIDE[0] + ".") or module in TORCH_SIDE[1:]


def project_modules() -> dict[str, Path]:
    paths = [
        *ROOT.glob("*.py"),
        *ROOT.glob("harness/**/*.py"),
        *ROOT.glob("strategies/*.py"),
        *ROOT.glob("suite/*.py"),
        *ROOT.glob("benchmarks/*.py"),
    ]
    modules = {}
    for path in paths:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = project_modules()


def imports(module: str) -> list[tuple[str, str]]:
    """(imported name, enclosing function or "") for every import in `module`: a project module's
    dotted name (`from harness.scoring import stats` names harness.scoring.stats), or a library's
    top-level name."""
    tree = ast.parse(MODULES[module].read_text())
    found = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Import):
                found.extend((alias.name, function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                for alias in child.names:
                    sub = f"{child.module}.{alias.name}"
                    found.append((sub if sub in MODULES else child.module, function))
            visit(child, inner)

    visit(tree, "")
    return found


def project_edges(module: str) -> set[str]:
    edges = set()
    for name, _ in imports(module):
        while name and name not in MODULES:  # `import harness.data.files` names harness.data.files
            name = name.rpartition(".")[0]
        if name and name != module:
            edges.add(name)
    return edges


GRAPH = {module: project_edges(module) for module in MODULES}


def reach(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(GRAPH[module])
    return seen


def test_no_import_circles():
    circles = sorted(
        f"{module} -> {imported}" for module in GRAPH for imported in GRAPH[module] if module in reach(imported)
    )
    assert not circles, "import circles: " + "; ".join(circles)


def test_imports_go_one_way_and_no_entry_script_is_imported():
    for module, imported in GRAPH.items():
        assert not set(ENTRY_SCRIPTS) & imported, f"{module} imports an entry script"
        if module.startswith("harness.data"):  # what every side shares uses no other folder
            assert not {
                m
                for m in imported
                if m.startswith("harness.") and not m.startswith("harness.data") and m != "harness.cli"
            }, module


NUMPY_SIDE = [
    "challenge",
    "blind_test",
    "strategies",
    *[m for m in MODULES if m.startswith("harness.") and not torch_side(m)],
]


@pytest.mark.parametrize("start", NUMPY_SIDE)
def test_the_numpy_side_never_reaches_torch(start):
    reached = reach(start)
    assert not {m for m in reached if torch_side(m)}, f"{start} reaches the torch side"
    libraries = {(module, name.partition(".")[0], function) for module in reached for name, function in imports(module)}
    bad = sorted(
        f"{module} imports {library}" + (f" in {function}()" if function else "")
        for module, library, function in libraries
        if library in MODEL_LIBRARIES and (module, function, library) not in OPTIONAL
    )
    assert not bad, "; ".join(bad)


def test_strategies_that_use_torch_declare_it():
    # The default run leaves such a strategy out, with a note, where torch is missing.
    for module in (m for m in MODULES if m.startswith("strategies.")):
        uses_torch = any(name.partition(".")[0] == "torch" for name, _ in imports(module))
        if uses_torch:
            assert 'requires=("torch",)' in MODULES[module].read_text(), f"{module} imports torch undeclared"


def test_the_graph_is_read():
    # The checks above are only as good as the graph: it sees imports inside functions too.
    assert "harness.scoring.stats" in GRAPH["harness.scoring.metrics"]
    assert ("torch", "fit_one") in imports("strategies.lowrank")
    assert ("transformers", "_converted") in imports("harness.data.tokenizer")
    assert "harness.models.inference" in reach("preprocess_train")
    # the domain folders' numpy modules are on the numpy side, their torch modules are not
    assert {"harness.forecast.fit", "harness.forecast.study", "harness.drafting.pricing"} <= set(NUMPY_SIDE)
    assert not {"harness.forecast.finetune", "harness.drafting.generation", "harness.models.suites"} & set(NUMPY_SIDE)
