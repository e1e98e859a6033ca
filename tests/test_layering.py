"""The reader package never depends on the training machinery: ``weightzoo`` imports nothing from ``builder``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path, *, top_level: bool = False) -> set[str]:
    """Modules a file imports: anywhere in it, or (``top_level``) when it is imported."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in tree.body if top_level else ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_weightzoo_never_imports_builder():
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in _imports(path) if n == "builder" or n.startswith("builder."))
        for path in (ROOT / "weightzoo").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_weightzoo_loads_no_builder_module():
    code = (
        "import sys, weightzoo, weightzoo.zoo, weightzoo.hf, weightzoo.baselines.dmc\n"
        "print(any(m.split('.')[0] == 'builder' for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


#: The reader's layers, lowest first (docs/architecture.md): a module may import its own layer and those below.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "weightzoo.errors",
        "weightzoo.architecture",
        "weightzoo.families",
        "weightzoo.hparams",
        "weightzoo.options",
        "weightzoo.cli",
        "weightzoo.about",
        "weightzoo.progress",
    ),
    ("weightzoo.format", "weightzoo.paths", "weightzoo.hub"),
    ("weightzoo.model", "weightzoo.family_models", "weightzoo.optim"),
    ("weightzoo.zoo",),
    ("weightzoo.hf", "weightzoo.baselines", "weightzoo.__main__"),
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    for level, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    return None


def test_each_layer_imports_only_itself_and_below():
    upward = {}
    for path in (ROOT / "weightzoo").rglob("*.py"):
        here = _layer(_module_name(path))
        if here is None:  # weightzoo/__init__.py: the facade over every layer (and nothing else may be unplaced)
            assert _module_name(path) == "weightzoo", f"{path}: add it to a layer of LAYERS"
            continue
        bad = [n for n in _imports(path) if n.startswith("weightzoo.") and (_layer(n) or 0) > here]
        if bad:
            upward[_module_name(path)] = sorted(bad)
    assert upward == {}


def test_consumers_stay_apart_and_heavy_libraries_stay_in_their_layer():
    hf = [p for p in (ROOT / "weightzoo" / "hf").rglob("*.py")]
    baselines = [p for p in (ROOT / "weightzoo" / "baselines").rglob("*.py")]
    assert not [str(p) for p in hf if any(n.startswith("weightzoo.baselines") for n in _imports(p))]
    assert not [str(p) for p in baselines if any(n.startswith("weightzoo.hf") for n in _imports(p))]
    low = [p for p in (ROOT / "weightzoo").rglob("*.py") if _layer(_module_name(p)) in (0, 1)]
    assert {"weightzoo.format.shards", "weightzoo.hparams"} <= {_module_name(p) for p in low}
    assert not {str(p): n for p in low for n in _imports(p) if n.split(".")[0] in ("torch", "datasets", "sklearn")}
    uses_datasets = {
        _module_name(p)
        for p in (ROOT / "weightzoo").rglob("*.py")
        if "datasets" in {n.split(".")[0] for n in _imports(p, top_level=True)}
    }
    assert uses_datasets == {"weightzoo.hf.builder"}  # imported only when load_dataset runs the builder


def test_the_engine_never_imports_the_tools():
    """builder.engine (the training engine) knows nothing of the tools that make, check and move zoos (the modules
    of builder itself: generate, reproduce, merge, push, convert_nws, card, ...)."""
    tools = {p.stem for p in (ROOT / "builder").glob("*.py") if p.stem not in ("__init__", "__main__")}
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            n for n in _imports(path) if n.split(".")[:2] in [["builder", t] for t in tools]
        )
        for path in (ROOT / "builder" / "engine").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    assert {"generate", "reproduce", "merge", "push", "convert_nws"} <= tools  # the documented entry points


_MUTATORS = {"append", "extend", "update", "pop", "popitem", "clear", "setdefault", "add", "insert", "remove"}
#: Module state that is a process's own by design: the process executor's worker runner exists only in a worker
#: process (made by the pool's initializer); the compiled regions (builder.engine.fused), as torch's own compiled
#: code is per process (Dynamo keeps it on the function's code object), one wrapper per region.
_PROCESS_STATE = {("builder/engine/executors.py", "_WORKER"), ("builder/engine/fused.py", "_COMPILED")}


def _mutated_module_state(path: Path) -> set[str]:
    """Names bound at module level to a dict, list or set that the module's code changes (a cache, a sink)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    containers = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)
    state = set()
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        value = getattr(node, "value", None)
        made = isinstance(value, containers) or (
            isinstance(value, ast.Call) and getattr(value.func, "id", "") in {"dict", "list", "set", "defaultdict"}
        )
        if isinstance(target, ast.Name) and made:
            state.add(target.id)
    changed = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS:
            if isinstance(node.func.value, ast.Name):
                changed.add(node.func.value.id)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            for t in node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]:
                if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name):
                    changed.add(t.value.id)
    return state & changed


def test_no_module_holds_a_cache_or_a_progress_sink():
    """Caches and progress sinks belong to objects (``TaskRunner``, ``Zoo``), not to modules: a module-level
    container that its code changes is hidden process state (issue 24, item 7)."""
    found = {
        (str(path.relative_to(ROOT)), name)
        for package in ("weightzoo", "builder")
        for path in (ROOT / package).rglob("*.py")
        for name in _mutated_module_state(path)
    }
    assert found - _PROCESS_STATE == set()


def test_the_state_check_finds_a_module_cache(tmp_path):
    module = tmp_path / "cached.py"
    module.write_text("_CACHE = {}\n\ndef get(k):\n    _CACHE[k] = 1\n    return _CACHE[k]\n")
    assert _mutated_module_state(module) == {"_CACHE"}
    module.write_text("_SINK = [None]\n\ndef set_sink(f):\n    _SINK[0] = f\n")
    assert _mutated_module_state(module) == {"_SINK"}
