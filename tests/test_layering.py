"""The import structure: library modules never import the board application, nothing hides an
import inside a function, and no modules import each other (directly or in a ring)."""

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGES = ("amaranth_nn", "boards", "torch_bridge")
#: The application modules of amaranth_nn: command lines that drive boards.
APPLICATIONS = {"amaranth_nn.build", "amaranth_nn.host", "amaranth_nn.link",
                "amaranth_nn.__main__"}


def modules():
    """``{module name: ast tree}`` of every module of the project's packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = (ast.parse(path.read_text()), path.name == "__init__.py")
    return found


def imports(name, tree, is_package, everything):
    """``[(imported module, node, inside a function)]`` of the project's own modules."""
    base = name if is_package else name.rpartition(".")[0]
    result = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            targets = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                module = child.module or ""
                if child.level:
                    package = base.rsplit(".", child.level - 1)[0] if child.level > 1 else base
                    module = f"{package}.{module}" if module else package
                targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in everything
                           else module for alias in child.names]
            for target in targets:
                if target.split(".")[0] in PACKAGES:
                    result.append((target, child, in_function))
            visit(child, nested)

    visit(tree, False)
    return result


def graph():
    everything = modules()
    return everything, {name: imports(name, tree, is_package, everything)
                        for name, (tree, is_package) in everything.items()}


def test_library_modules_never_import_boards():
    _, edges = graph()
    wrong = [f"{name} imports {target}" for name, found in edges.items()
             if name.startswith("amaranth_nn") and name not in APPLICATIONS
             for target, _, _ in found if target.split(".")[0] == "boards"]
    assert wrong == []


def test_no_function_local_imports_of_the_project():
    _, edges = graph()
    wrong = [f"{name}:{node.lineno} imports {target}" for name, found in edges.items()
             for target, node, local in found if local]
    assert wrong == []


def test_no_import_cycles():
    """Between modules (a package's ``__init__`` re-exporting its modules is not a cycle)."""
    everything, edges = graph()
    modules_only = {name: {target for target, _, _ in found
                           if target in everything and not everything[target][1]}
                    for name, found in edges.items() if not everything[name][1]}
    cycles = []

    def walk(node, path):
        for target in modules_only.get(node, ()):
            if target in path:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif len(path) < 30:
                walk(target, path + [target])

    for name in modules_only:
        walk(name, [name])
    assert cycles == []
