"""The layers of docs/architecture.md, checked on the code as it is.

import-linter (`make lint`) enforces the contracts in pyproject.toml; these
tests check what its contracts cannot say:

- no import cycle between any two modules of the installed `spean` package,
  through any chain, function-level and TYPE_CHECKING imports included;
- every module at the top of `gateway/` is declared pure in the contract (a new
  top-level module is pure, or it belongs in a subpackage);
- a module whose docstring's summary line says it is pure is declared pure, so
  the claim is checked rather than believed;
- nothing imports the repository folders by their old top-level names.
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
