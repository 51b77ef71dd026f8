"""The package's shape, read from its imports (ast): which folder may import which, no command
module imported outside the entry point, and no import cycles."""
import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "engine"

# folder -> the engine folders it must never import
FORBIDDEN = {
    "signals": {"generators", "render", "patching", "show", "control"},
    "latent": {"generators", "render", "patching", "show", "control"},
    "outputs": {"generators", "render", "patching", "show", "control"},
    "generators": {"signals", "patching", "render", "show", "control"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ENGINE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every engine module this file imports, at any depth (lazy imports inside functions too)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    modules = {module_name(p) for p in ENGINE.rglob("*.py")}
    return {m for m in out if m in modules and m.startswith("engine")}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in ENGINE.rglob("*.py")}


def folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (ENGINE / parts[1]).is_dir()) else ""


def test_folders_import_only_what_their_stage_may_know():
    bad = []
    for mod, deps in graph().items():
        for dep in deps:
            if folder(dep) in FORBIDDEN.get(folder(mod), ()):
                bad.append(f"{mod} imports {dep}")
    assert not bad, "\n".join(sorted(bad))


def test_only_the_entry_point_imports_the_commands():
    bad = [f"{mod} imports {dep}" for mod, deps in graph().items() for dep in deps
           if dep.startswith("engine.commands.") and not mod.startswith("engine.commands")
           and mod != "engine.cli"]
    assert not bad, "\n".join(bad)
    # and commands import no command but their shared helpers
    bad = [f"{mod} imports {dep}" for mod, deps in graph().items() if mod.startswith("engine.commands.")
           for dep in deps if dep.startswith("engine.commands.")]
    assert not bad, "\n".join(bad)
    for mod, deps in graph().items():
        assert "engine.cli" not in deps or mod == "engine.__main__", f"{mod} imports the command line"


def test_no_import_cycles():
    g = graph()
    # a package's __init__ that its own modules import is not a cycle of the design: leave out
    # edges from a module to its own package
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in g.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m, stack):
        state[m] = 1
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2
    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_the_reader_sees_lazy_imports():
    """The checks above are only as good as the import reader: it must see imports inside
    functions and relative ones."""
    g = graph()
    assert "engine.render.display" in g["engine.session"]           # imported inside a method
    assert "engine.control.namespace" in g["engine.control.dispatch"]
