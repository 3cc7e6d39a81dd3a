"""Check the import-linter contracts (pyproject.toml [tool.importlinter]) on the package as it installs.

import-linter (grimp) reads one package tree from disk, but vitedge's sub-packages live in top-level folders
that setup.py maps to ``vitedge.<folder>``. This lays the installed tree out with symlinks under
build/import-tree/ and runs ``lint-imports`` there. Usage: python scripts/lint_imports.py [lint-imports args]
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT / "build" / "import-tree"


def layer_folders() -> tuple[str, ...]:
    """setup.py's LAYER_FOLDERS, read without running setup.py."""
    for node in ast.parse((ROOT / "setup.py").read_text("utf-8")).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "LAYER_FOLDERS":
            return tuple(ast.literal_eval(node.value))
    raise SystemExit("setup.py has no LAYER_FOLDERS")


def lay_out_tree() -> Path:
    shutil.rmtree(TREE, ignore_errors=True)
    package = TREE / "vitedge"
    package.mkdir(parents=True)
    for entry in (ROOT / "vitedge").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for folder in layer_folders():
        (package / folder).symlink_to(ROOT / folder)
    return TREE


def main() -> int:
    tree = lay_out_tree()
    lint_imports = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [str(lint_imports), "--config", str(ROOT / "pyproject.toml"), *sys.argv[1:]]
    return subprocess.call(command, cwd=tree, env=env)


if __name__ == "__main__":
    sys.exit(main())
