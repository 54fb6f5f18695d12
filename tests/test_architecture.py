"""The layers of docs/architecture.md, checked on the code as it is.

import-linter (`make lint`) enforces the contracts in pyproject.toml; these
tests check what its contracts cannot say:

- no import cycle between any two modules of the installed `spean` package,
  through any chain, function-level and TYPE_CHECKING imports included;
- every module at the top of `gateway/` is declared pure in the contract (a new
  top-level module is pure, or it belongs in a subpackage);
- a module whose docstring's summary line says it is pure is declared pure, so
  the claim is checked rather than believed;
- nothing imports the repository folders by their old top-level names;
- the tests of `gateway/` and `adapters/` mirror the source: `tests/<folder>/
  test_<name>[_<aspect>].py` tests the module or package `<folder>/<name>`;
- no test module imports a conftest: shared helpers live in `tests/support/`.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def test_no_module_imports_itself_through_any_chain() -> None:
    graph = grimp.build_graph("spean", cache_dir=None)
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.append(" -> ".join((importer, *back)))
    assert cycles == []


def test_every_top_level_gateway_module_is_declared_pure() -> None:
    declared = _declared_pure()
    top_level = {
        f"spean.gateway.{path.stem}"
        for path in (REPO / "gateway").glob("*.py")
        if path.name != "__init__.py"
    }
    assert top_level - declared == set(), "a top-level module must be pure (or move it)"


def _declared_pure() -> set[str]:
    pure = next(c for c in _contracts() if str(c["name"]).startswith("Pure rules import no I/O"))
    return set(pure["source_modules"])  # type: ignore[call-overload]


def test_a_module_that_says_it_is_pure_is_declared_pure() -> None:
    claims = set()
    for folder in ("gateway", "adapters"):
        for path in (REPO / folder).rglob("*.py"):
            docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
            summary = docstring.split("\n\n")[0]
            if "(pure" in summary.lower():
                module = ".".join(("spean", *path.relative_to(REPO).with_suffix("").parts))
                claims.add(module.removesuffix(".__init__"))
    assert claims, "the convention is in use"
    assert claims - _declared_pure() == set(), "declare it in pyproject.toml, or drop the claim"


def test_nothing_imports_the_folders_by_their_repository_names() -> None:
    offenders = []
    for folder in ("gateway", "adapters", "tests", "bench", "fuzz"):
        for path in (REPO / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    if name.split(".")[0] in ("gateway", "adapters"):
                        offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert offenders == [], "import spean.gateway / spean.adapters instead"


# Scenario suites, the shared harness and repository-wide tests: not mirrors of one module.
MIRRORED = ("gateway", "adapters")


def _source_names(folder: Path) -> set[str]:
    """Modules and packages directly in `folder`, without a leading underscore."""
    modules = {p.stem for p in folder.glob("*.py") if p.name != "__init__.py"}
    packages = {p.name for p in folder.iterdir() if (p / "__init__.py").is_file()}
    return {name.lstrip("_") for name in modules | packages}


def test_the_tests_of_gateway_and_adapters_mirror_the_source() -> None:
    strays = []
    for top in MIRRORED:
        for path in sorted((REPO / "tests" / top).rglob("test_*.py")):
            folder = REPO / path.parent.relative_to(REPO / "tests")
            name = path.stem.removeprefix("test_")
            names = _source_names(folder) if folder.is_dir() else set()
            if not any(name == n or name.startswith(f"{n}_") for n in names):
                strays.append(str(path.relative_to(REPO)))
    assert strays == [], "tests/<folder>/test_<name>.py must test <folder>/<name>"


def test_no_test_module_imports_a_conftest() -> None:
    offenders = []
    for path in (REPO / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                # `from . import conftest` has no module; its names are the modules.
                module = node.module or ""
                names = [module, *(f"{module}.{a.name}" for a in node.names)]
            if any(name.split(".")[-1] == "conftest" for name in names):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == [], "move what a test imports from a conftest into tests/support/"
