"""The reader package never depends on the training machinery: ``weightzoo`` imports nothing from ``builder``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
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
