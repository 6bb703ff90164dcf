"""The layered architecture (issue 23 items 1 and 2; docs/architecture.md), checked on the source text.

* **Layers point down**: ``core < data_prep < models < pipeline < benchmarks``. A module may import its own layer
  and the layers below it, never one above: no ``from pipeline ...`` in ``data_prep/``, ``models/`` or
  ``core/``. A lower module that needs something from a higher one is a sign that the thing belongs lower.
* **No import circles**: the graph of module imports has no strongly connected component of more than one
  module.
* **core is light**: importing every ``core`` module loads no TensorFlow, Keras, MLflow, h5py, segyio, ...

Every ``import`` counts, wherever it is written: at module level, inside a function (a lazy import), under
``if TYPE_CHECKING:`` and as ``importlib.import_module("a.b")`` with a constant name. A lazy import still
couples two modules (and a circle through one fails at run time on the first call that takes that path).
The edges go to the module an import names (``from core.cli import X`` → ``core.cli``;
``from pipeline import tracking`` → ``pipeline.tracking``), not to the packages above it that Python also
runs (``pipeline/__init__.py``): a package's ``__init__`` re-exporting its modules is not a circle.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

#: The layers, bottom first. A module may import modules of its own layer and of the layers before it.
LAYERS = ("core", "data_prep", "models", "pipeline", "benchmarks")
#: Third-party modules that importing ``core`` must not load (each costs seconds or hundreds of MB).
HEAVY_MODULES = (
    "tensorflow",
    "keras",
    "jax",
    "torch",
    "mlflow",
    "h5py",
    "segyio",
    "scipy",
    "matplotlib",
    "pydantic",
    "dask",
    "distributed",
    "data_prep",
    "models",
    "pipeline",
)


@dataclass(frozen=True)
class Import:
    """One import statement's target: the importing module, its file and line, and the module it names."""

    source: str
    path: str
    line: int
    target: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source} imports {self.target}"


def module_name(path: Path, root: Path = REPO_ROOT) -> str:
    """``pipeline/train.py`` → ``pipeline.train``; ``data_prep/ingest/__init__.py`` → ``data_prep.ingest``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path = REPO_ROOT, packages: Iterable[str] = LAYERS) -> dict[str, Path]:
    """Every module of the layered packages: name → file."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            modules[module_name(path, root)] = path
    return modules


def imported_names(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, list[str]]]:
    """Every import in ``tree`` with its line and the candidate names it may refer to, most specific first.

    ``import a.b`` → ``["a.b"]``; ``from a import b`` → ``["a.b", "a"]`` (``b`` is a module or a name of
    ``a``); relative imports are resolved against ``module``; ``importlib.import_module("a.b")`` and
    ``__import__("a.b")`` with a constant string → ``["a.b"]``.
    """
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, [alias.name]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".") if package else []
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found += [(node.lineno, [f"{base}.{alias.name}", base]) for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, [node.args[0].value]))
    return found


def resolve(candidates: list[str], known: Iterable[str]) -> str | None:
    """The project module an import refers to: the first candidate, or its longest prefix, that is a module."""
    known = set(known)
    for candidate in candidates:
        parts = candidate.split(".")
        for end in range(len(parts), 0, -1):
            name = ".".join(parts[:end])
            if name in known:
                return name
    return None


def project_imports(sources: Mapping[str, tuple[str, str]], known: Iterable[str]) -> list[Import]:
    """The imports between project modules. ``sources``: module → (file label, source text)."""
    known = set(known) | set(sources)
    result = []
    for module, (label, text) in sorted(sources.items()):
        is_package = label.endswith("__init__.py")
        for line, candidates in imported_names(ast.parse(text), module, is_package):
            target = resolve(candidates, known)
            if target is not None and target != module:
                result.append(Import(module, label, line, target))
    return result


def layer_of(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def layer_violations(imports: Iterable[Import]) -> list[Import]:
    """Imports of a module from a higher layer."""
    return [edge for edge in imports if layer_of(edge.target) > layer_of(edge.source)]


def strongly_connected_components(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit): the components with more than one node."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components = []
    counter = 0
    nodes = sorted(set(graph) | {target for targets in graph.values() for target in targets})
    successors = {node: sorted(set(graph.get(node, ()))) for node in nodes}
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = lowlink[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            for next_position in range(position, len(successors[node])):
                successor = successors[node][next_position]
                if successor not in index:
                    work.append((node, next_position + 1))
                    work.append((successor, 0))
                    recurse = True
                    break
                if successor in on_stack:
                    lowlink[node] = min(lowlink[node], index[successor])
            if recurse:
                continue
            if lowlink[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
            if work:
                parent = work[-1][0]
                lowlink[parent] = min(lowlink[parent], lowlink[node])
    return sorted(components)


def one_cycle(component: list[str], imports: Iterable[Import]) -> list[Import]:
    """A shortest circle through the first module of a component, as the import statements that make it."""
    members = set(component)
    edges: dict[str, list[Import]] = {}
    for edge in imports:
        if edge.source in members and edge.target in members:
            edges.setdefault(edge.source, []).append(edge)
    start = component[0]
    paths: dict[str, list[Import]] = {start: []}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in edges.get(node, []):
                if edge.target == start:
                    return paths[node] + [edge]
                if edge.target not in paths:
                    paths[edge.target] = paths[node] + [edge]
                    following.append(edge.target)
        frontier = following
    return []


def _repository_imports() -> list[Import]:
    modules = project_modules()
    sources = {
        name: (str(path.relative_to(REPO_ROOT)), path.read_text(encoding="utf-8"))
        for name, path in modules.items()
    }
    return project_imports(sources, modules)


def _import_graph(imports: Iterable[Import]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for edge in imports:
        graph.setdefault(edge.source, set()).add(edge.target)
    return graph


# ----------------------------------------------------------------------------------------------------------
# The checker itself can fail
# ----------------------------------------------------------------------------------------------------------

KNOWN = [
    "core",
    "core.cli",
    "data_prep",
    "data_prep.schema",
    "models",
    "pipeline",
    "pipeline.train",
    "pipeline.tracking",
    "pipeline.infer",
]


def test_the_checker_finds_every_kind_of_upward_import():
    bad = textwrap.dedent("""
        import pipeline.train
        from pipeline import tracking
        from core.cli import run_main
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from pipeline.infer import InferConfig
        def later():
            import importlib
            from pipeline.tracking import log_model
            return importlib.import_module("pipeline.infer")
    """)
    imports = project_imports({"data_prep.schema": ("data_prep/schema.py", bad)}, KNOWN)
    violations = layer_violations(imports)
    assert [(edge.line, edge.target) for edge in violations] == [
        (2, "pipeline.train"),
        (3, "pipeline.tracking"),
        (7, "pipeline.infer"),
        (10, "pipeline.tracking"),
        (11, "pipeline.infer"),
    ], violations
    assert str(violations[0]) == "data_prep/schema.py:2: data_prep.schema imports pipeline.train"


def test_the_checker_resolves_relative_imports_and_package_names():
    text = (
        "from . import layout\nfrom .. import schema\nfrom ..schema import SchemaError\nimport models.unet\n"
    )
    known = [*KNOWN, "data_prep.segy_io", "data_prep.segy_io.layout"]
    imports = project_imports({"data_prep.segy_io.read": ("data_prep/segy_io/read.py", text)}, known)
    assert [edge.target for edge in imports] == [
        "data_prep.segy_io.layout",
        "data_prep.schema",
        "data_prep.schema",
        "models",
    ]
    assert [edge.target for edge in layer_violations(imports)] == ["models"]
    package = project_imports(
        {"data_prep.segy_io": ("data_prep/segy_io/__init__.py", "from .layout import X\n")}, known
    )
    assert [edge.target for edge in package] == ["data_prep.segy_io.layout"]


def test_the_cycle_finder_names_the_circle():
    sources = {
        "pipeline.train": ("pipeline/train.py", "def f():\n    from pipeline import tracking\n"),
        "pipeline.tracking": ("pipeline/tracking.py", "from pipeline.infer import InferConfig\n"),
        "pipeline.infer": ("pipeline/infer.py", "import pipeline.train\nimport core.cli\n"),
        "core.cli": ("core/cli.py", "import core\n"),
    }
    imports = project_imports(sources, KNOWN)
    components = strongly_connected_components(_import_graph(imports))
    assert components == [["pipeline.infer", "pipeline.tracking", "pipeline.train"]]
    cycle = one_cycle(components[0], imports)
    assert [edge.source for edge in cycle] == ["pipeline.infer", "pipeline.train", "pipeline.tracking"]
    assert cycle[-1].target == "pipeline.infer"
    # A long chain does not hit a recursion limit.
    chain = {f"m{i}": {f"m{i + 1}"} for i in range(5000)}
    assert strongly_connected_components(chain) == []
    chain["m5000"] = {"m0"}
    assert len(strongly_connected_components(chain)[0]) == 5001


# ----------------------------------------------------------------------------------------------------------
# The repository
# ----------------------------------------------------------------------------------------------------------


def test_every_module_belongs_to_a_layer():
    top_level = sorted(
        path.name
        for path in REPO_ROOT.iterdir()
        if path.is_dir() and (path / "__init__.py").is_file() and path.name != "tests"
    )
    assert set(top_level) <= set(LAYERS), (
        f"packages {sorted(set(top_level) - set(LAYERS))} have no place in LAYERS {LAYERS}: add them where "
        "they belong (and to docs/architecture.md)"
    )


def test_layers_import_only_downwards():
    violations = layer_violations(_repository_imports())
    assert not violations, (
        f"Layer order {' < '.join(LAYERS)}: a module may import its own layer and those below, never one "
        "above. Move what the lower module needs down (to core, or to data_prep/models), then import it "
        "from there. Found:\n" + "\n".join(map(str, violations))
    )


#: Circles known and scheduled for removal: modules → why it is still there and what removes it. The test fails
#: on any other circle, and when a listed one is gone (delete its entry then).
KNOWN_CIRCLES: dict[tuple[str, ...], str] = {}


def test_no_import_circles():
    imports = _repository_imports()
    found = strongly_connected_components(_import_graph(imports))
    components = [component for component in found if tuple(component) not in KNOWN_CIRCLES]
    stale = sorted(set(KNOWN_CIRCLES) - {tuple(component) for component in found})
    assert not stale, f"these circles are gone: delete them from KNOWN_CIRCLES: {stale}"
    report = []
    for component in components:
        cycle = one_cycle(component, imports)
        report.append(
            f"circle of {len(component)} modules ({', '.join(component)}), e.g.\n    "
            + "\n    ".join(map(str, cycle))
        )
    assert not components, (
        "Import circles (lazy imports count: each edge is a coupling). Move the shared thing to where it "
        "belongs so that the imports go one way:\n" + "\n".join(report)
    )


@pytest.mark.parametrize(
    "names",
    [
        sorted(project_modules(packages=["core"])),
        # The packages themselves (what `python -m data_prep.validate --help` loads before its module).
        ["data_prep", "pipeline"],
    ],
    ids=["core", "package-inits"],
)
def test_importing_core_loads_no_heavy_dependency(names):
    code = textwrap.dedent(f"""
        import importlib, json, sys
        for name in {names!r}:
            importlib.import_module(name)
        heavy = set({HEAVY_MODULES!r}) - {{name.split(".")[0] for name in {names!r}}}
        print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in heavy)))
    """)
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing {names} loaded {loaded}"


@pytest.mark.parametrize("package", ["core"])
def test_core_imports_only_the_standard_library_yaml_and_pydantic(package):
    allowed_third_party = {
        "yaml",
        "pydantic",
        "tqdm",
        "numpy",
        "dask",
        "distributed",
    }  # numpy and tqdm: lazily, for json_ready and bars; dask and distributed: lazily, for --scheduler
    problems = []
    for name, path in project_modules(packages=[package]).items():
        for line, candidates in imported_names(ast.parse(path.read_text(encoding="utf-8")), name, False):
            top = candidates[0].split(".")[0]
            if top in sys.stdlib_module_names or top in allowed_third_party or top == "core" or top == "":
                continue
            problems.append(f"{path.relative_to(REPO_ROOT)}:{line}: {candidates[0]}")
    assert not problems, f"core may use the standard library, {sorted(allowed_third_party)} only: {problems}"
