"""The layout rules of docs/architecture.md, checked on the source (AST only, nothing is imported):
no import circle anywhere in verifier/, tools/ and firmware/ (function-level imports count: a circle
hidden in a function is still a circle), no import of another module's private `_name`, the verifier
never imports tools, and no verifier feature imports another feature's routes. And one thing a move
can break that no import shows: a path a module finds from its own file's depth."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# (directory, the package name its files are imported under)
TREES = ((ROOT / "verifier", "verifier"), (ROOT / "tools", "tools"), (ROOT / "firmware" / "janua", "janua"))

# Circles that remain, each one circle as the set of its modules, and why. Both are device modules
# whose only import back is a lazy one inside a function (so nothing is imported twice at load time),
# and breaking them costs code size on every board, which issue #11 forbids: janua.chain's
# Chain.top_up/sync facade defers to janua.chainsync (kept out of the offline path's heap), which needs
# chain's slot constants and ChainError; janua's select_protocol() facade calls janua.select, which
# raises janua.JanuaError. test_allowed_circles_still_exist fails once an entry is stale, so the list
# cannot outlive its circle.
ALLOWED_CIRCLES = [
    frozenset({"janua.chain", "janua.chainsync"}),
    frozenset({"janua", "janua.select"}),
]
# Private names imported from another module: none. Same rule if one is ever added.
ALLOWED_PRIVATE_IMPORTS = [
]


def modules(trees=TREES):
    """{module name: path} for every .py file of the trees."""
    out = {}
    for base, pkg in trees:
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([pkg] + parts)] = path
    return out


def imports(name, path, known):
    """[(imported module, [names imported from it], line)] of one module, resolved against `known`
    (modules outside the trees are kept by their name). `from pkg import mod` is an import of pkg.mod."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((alias.name, [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            plain = []
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                if sub in known:
                    out.append((sub, [], node.lineno))
                else:
                    plain.append(alias.name)
            if plain:
                out.append((mod, plain, node.lineno))
    return out


def graph(mods):
    """{module: {modules of the trees it imports}}"""
    return {name: {m for m, _, _ in imports(name, path, mods) if m in mods and m != name}
            for name, path in mods.items()}


def circles(g):
    """The strongly connected components of more than one module (Tarjan), each as a frozenset."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(frozenset(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def private_imports(mods):
    """["module:line imports _name from other"] for every private name imported from another module."""
    bad = []
    for name, path in mods.items():
        for mod, names, line in imports(name, path, mods):
            for n in names:
                if n.startswith("_") and not (n.startswith("__") and n.endswith("__")) and mod != name:
                    bad.append(f"{name}:{line} imports {n} from {mod}")
    return bad


MODS = modules()


def test_the_trees_are_found():
    # a renamed folder must not make every check below pass on nothing
    for name in ("verifier.app", "verifier.registry.routes", "verifier.binauth.core", "tools.cli", "janua.packet"):
        assert name in MODS


def test_no_import_circle():
    found = set(circles(graph(MODS))) - set(ALLOWED_CIRCLES)
    assert not found, "import circles: " + "; ".join(" <-> ".join(sorted(c)) for c in sorted(found, key=sorted))


def test_allowed_circles_still_exist():
    stale = set(ALLOWED_CIRCLES) - set(circles(graph(MODS)))
    assert not stale, f"remove from ALLOWED_CIRCLES, they are gone: {sorted(map(sorted, stale))}"


def _without_line(entry):
    name, rest = entry.split(":", 1)
    return name + " " + rest.split(" ", 1)[1]


def test_no_private_name_imported_from_another_module():
    assert [e for e in private_imports(MODS) if _without_line(e) not in ALLOWED_PRIVATE_IMPORTS] == []


def test_allowed_private_imports_still_exist():
    found = {_without_line(e) for e in private_imports(MODS)}
    assert [e for e in ALLOWED_PRIVATE_IMPORTS if e not in found] == []


def test_verifier_never_imports_tools():
    bad = [f"{name}:{line} imports {mod}" for name, path in MODS.items() if name.split(".")[0] == "verifier"
           for mod, _, line in imports(name, path, MODS) if mod.split(".")[0] == "tools"]
    assert bad == []


def test_no_feature_imports_another_features_routes():
    """verifier.<feature>.* may import verifier.<other>.core/store/..., never verifier.<other>.routes:
    routes are composed only by the app factory (verifier/app.py)."""
    bad = []
    for name, path in MODS.items():
        parts = name.split(".")
        if parts[0] != "verifier" or len(parts) < 3:
            continue
        for mod, _, line in imports(name, path, MODS):
            m = mod.split(".")
            if m[0] == "verifier" and len(m) == 3 and m[2] == "routes" and m[1] != parts[1]:
                bad.append(f"{name}:{line} imports {mod}")
    assert bad == []


def test_moved_broker_module_still_finds_the_plugin_make_builds():
    # verifier/mqtt/broker.py is one folder deeper than verifier/mqtt_broker.py was: parents[1] of it
    # would be verifier/, and `janua mqtt config` would silently fall back to the client-id override.
    from verifier.mqtt import broker
    assert broker.CLIENTID_PLUGIN == ROOT / ".venv" / "lib" / "janua_clientid.so"


# -- the checks themselves, on a tree made for them ----------------------------------------------------

@pytest.fixture
def toy(tmp_path):
    files = {
        "__init__.py": "",
        "a.py": "from toy import b\n",                      # a -> b -> c -> a: one circle of three
        "b.py": "import toy.c\n",
        "c.py": "def f():\n    from toy.a import thing\n",  # function-level imports count
        "d.py": "from toy import a\nfrom toy.e import _hidden, __version__\n",   # d -> a: no circle
        "e.py": "from toy.e import _self_is_fine\n",
        "sub/__init__.py": "",
        "sub/x.py": "from . import y\n",                     # relative: x <-> y
        "sub/y.py": "from .x import go\n",
    }
    for rel, text in files.items():
        (tmp_path / "toy" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "toy" / rel).write_text(text)
    return modules([(tmp_path / "toy", "toy")])


def test_circles_are_found_also_through_function_and_relative_imports(toy):
    assert sorted(map(sorted, circles(graph(toy)))) == [["toy.a", "toy.b", "toy.c"], ["toy.sub.x", "toy.sub.y"]]


def test_private_imports_are_found_only_across_modules(toy):
    assert private_imports(toy) == ["toy.d:2 imports _hidden from toy.e"]
