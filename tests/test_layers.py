"""src/ is layered: a module imports from its own package or from those below it, and no imports form a cycle.

Layers, lowest first: the root modules (config, cli, preemption, disk_space), files, model, data, tasks, train,
serve. Imports inside functions count too.
"""
from __future__ import annotations

import ast

from tests.helpers import ROOT

LAYERS = ("", "files", "model", "data", "tasks", "train", "serve")


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path) -> set[str]:
    """The src modules a file imports (`import src.x.y`, `from src.x import y`, `from src.x.y import z`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("src.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "src":
            for alias in node.names:  # `from src.model import bert` names a module; `from src.model.bert import X` not
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if (ROOT / candidate.replace(".", "/")).with_suffix(".py").exists()
                          or (ROOT / candidate.replace(".", "/")).is_dir() else node.module)
    return found


def layer(module: str) -> int:
    parts = module.split(".")
    package = parts[1] if len(parts) > 2 or (len(parts) == 2 and (ROOT / "src" / parts[1]).is_dir()) else ""
    return LAYERS.index(package)


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in sorted((ROOT / "src").rglob("*.py"))}


def test_every_package_is_a_known_layer():
    packages = {path.parent.relative_to(ROOT / "src").parts[0] for path in (ROOT / "src").rglob("*/__init__.py")}
    assert packages == set(LAYERS) - {""}


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    return [f"{module} (layer {LAYERS[layer(module)] or 'root'}) imports {target} "
            f"(layer {LAYERS[layer(target)] or 'root'})"
            for module, targets in edges.items() for target in sorted(targets) if layer(target) > layer(module)]


def cycles_in(edges: dict[str, set[str]]) -> list[str]:
    state: dict[str, str] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in edges:
        if module not in state:
            visit(module, [module])
    return cycles


def test_no_module_imports_from_a_higher_layer():
    found = upward_imports(graph())
    assert not found, "\n".join(found)


def test_no_import_cycles():
    found = cycles_in(graph())
    assert not found, "\n".join(found)


def test_the_checks_see_an_upward_import_and_a_cycle():
    """The checker itself, on the real graph plus made-up edges."""
    edges = graph()
    assert "src.config" in edges["src.model.bert"] and "src.model.kernels.linear" in edges["src.model.bert"]
    assert layer("src.serve.backends") > layer("src.model.task_heads") > layer("src.config") == 0
    edges["src.model.crf"] = edges["src.model.crf"] | {"src.train.loop"}
    assert upward_imports(edges) == ["src.model.crf (layer model) imports src.train.loop (layer train)"]
    assert cycles_in({"src.a": {"src.b"}, "src.b": {"src.c"}, "src.c": {"src.a"}, "src.d": set()}) == [
        "src.a -> src.b -> src.c -> src.a"]
