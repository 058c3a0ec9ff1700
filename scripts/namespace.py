"""Put the project under one namespace, `aig`, without moving a folder (idempotent: run it again, nothing changes).

The folders stay at the repository's top level (pipeline/, labeling/, ...) and are installed as
`aig.pipeline`, `aig.labeling`, ... through setuptools' `package-dir`; `aig/` is the composition root.
Rewrites, in every tracked text file: imports (`from pipeline.x import` -> `from aig.pipeline.x import`;
inside a folder: `from .x import`), module paths in strings (`"pipeline.x.f"`, `python -m generators.tiny_models`,
`resources.files("pipeline")`), pyproject.toml (package-dir, package data, the layers contract).

    python scripts/namespace.py            # rewrite the tree
    python scripts/namespace.py --check    # exit 1 if something is left to rewrite
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

FOLDERS = ("pipeline", "manifests", "generators", "labeling", "training", "evaluation")
TEXT = (".py", ".md", ".toml", ".cfg", ".txt", ".sh", ".yml", ".yaml", ".ini")
SKIP = {"scripts/namespace.py", "benchmarks/RESULTS.md"}  # this script; measured history keeps its names
NAME = "(?:" + "|".join(FOLDERS) + ")"

SOURCE_CHECKOUT = '''

# A source checkout keeps the folders beside aig/ (the installed wheel has them inside): let them be found as
# aig.<folder> when this package is imported from the repository itself (cwd or PYTHONPATH).
def _beside_checkout() -> None:
    from pathlib import Path as _Path

    here = _Path(__file__).resolve().parent
    if not (here / "pipeline").is_dir() and (here.parent / "pipeline" / "__init__.py").is_file():
        __path__.append(str(here.parent))


_beside_checkout()
'''

SETUPTOOLS = '''[tool.setuptools]
# One top-level package, `aig`; its subpackages are the top-level folders of the repository.
package-dir = {{ {mapping} }}
packages = [{packages}]

[tool.setuptools.package-data]
{data}
'''

IMPORTLINTER = '''# The layering, low to high: imports only point down; generators and labeling do not import each other.
[tool.importlinter]
root_packages = ["aig"]

[[tool.importlinter.contracts]]
name = "layers: manifests < pipeline < generators | labeling < training < evaluation < aig"
type = "layers"
containers = ["aig"]
layers = ["cli", "stages", "evaluation", "training", "generators | labeling", "pipeline", "manifests"]
'''


def modules(root: Path) -> dict[str, set[str]]:
    """Folder -> names of its modules and subpackages (what `folder.NAME` may refer to)."""
    return {f: {p.stem for p in (root / f).glob("*.py")} | {p.name for p in (root / f).iterdir()
                                                            if (p / "__init__.py").is_file()}
            for f in FOLDERS}


def packages(root: Path) -> list[tuple[str, str]]:
    """(dotted package, folder) for aig and every package under the folders."""
    out = [("aig", "aig")]
    for f in FOLDERS:
        for init in sorted((root / f).rglob("__init__.py")):
            rel = init.parent.relative_to(root).as_posix()
            out.append(("aig." + rel.replace("/", "."), rel))
    return out


def package_data(root: Path) -> dict[str, list[str]]:
    """Non-Python files shipped with a package: every file under an `assets` folder."""
    data: dict[str, list[str]] = {}
    for f in FOLDERS:
        assets = root / f / "assets"
        if assets.is_dir():
            dirs = sorted({p.parent.relative_to(root / f).as_posix() for p in assets.rglob("*") if p.is_file()})
            data["aig." + f] = [d + "/*" for d in dirs]
    return data


def rewrite_code(text: str, mods: dict[str, set[str]], folder: str | None) -> str:
    """Imports and dotted module paths to aig.<folder>; inside `folder`, its own modules relative."""
    def dotted(m: re.Match) -> str:
        name, rest = m.group(1), m.group(2)
        return f"aig.{name}.{rest}" if rest in mods[name] else m.group(0)

    text = re.sub(rf"(?<![\w./-])({NAME})\.(\w+)", dotted, text)
    text = re.sub(rf"(?<![\w.])(from|import) ({NAME})(?=[ \n,]|$)", r"\1 aig.\2", text, flags=re.M)
    text = re.sub(rf"""(files|import_module)\((["'])({NAME})\2""", r"\1(\2aig.\3\2", text)
    if folder:  # within one folder, its own modules are imported relatively
        text = re.sub(rf"^(\s*)from aig\.{folder}\.(\w+) import", r"\1from .\2 import", text, flags=re.M)
        text = re.sub(rf"^(\s*)from aig\.{folder} import", r"\1from . import", text, flags=re.M)
    return text


def rewrite_pyproject(text: str, root: Path) -> str:
    pkgs = packages(root)
    mapping = ", ".join(f'"{p}" = "{d}"' for p, d in pkgs)
    listed = ", ".join(f'"{p}"' for p, _ in pkgs)
    data = "\n".join(f'"{p}" = [{", ".join(repr(g).replace(chr(39), chr(34)) for g in globs)}]'
                     for p, globs in package_data(root).items())
    block = SETUPTOOLS.format(mapping=mapping, packages=listed, data=data)
    text = re.sub(r"\[tool\.setuptools(?:\.packages\.find)?\]\n.*?\n\n(?=\[)", "", text, flags=re.S)
    text = re.sub(r"\[tool\.setuptools\.package-data\]\n.*?\n\n(?=\[)", "", text, flags=re.S)
    text = re.sub(r"(\[tool\.pytest\.ini_options\])", block.replace("\\", "\\\\") + r"\n\1", text, count=1)
    text = re.sub(r'^aig = "[\w.]+:main"', 'aig = "aig.cli:main"', text, flags=re.M)
    text = re.sub(r"# The layering, low to high.*?\nlayers = \[[^\n]*\]\n", IMPORTLINTER, text, flags=re.S)
    return text


def rewrite_init(text: str) -> str:
    return text if "_beside_checkout" in text else text.rstrip("\n") + "\n" + SOURCE_CHECKOUT


def rewrite(root: Path) -> list[str]:
    """Rewrite the tree at root; returns the files changed."""
    mods = modules(root)
    files = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    changed = []
    for rel in files:
        path = root / rel
        if rel in SKIP or not path.is_file() or not (rel.endswith(TEXT) or Path(rel).name == "Makefile"):
            continue
        old = path.read_text(encoding="utf-8")
        if rel == "pyproject.toml":
            new = rewrite_pyproject(old, root)
        else:
            top = rel.split("/", 1)[0]
            new = rewrite_code(old, mods, top if top in FOLDERS and rel.endswith(".py") else None)
            if rel == "aig/__init__.py":
                new = rewrite_init(new)
        if new != old:
            path.write_text(new, encoding="utf-8")
            changed.append(rel)
    return changed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--check", action="store_true", help="Change nothing; exit 1 if a rewrite is due.")
    args = ap.parse_args()
    if args.check:
        import shutil
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "tree"
            shutil.copytree(args.root, copy, ignore=shutil.ignore_patterns(".venv", "aig-data", "aig-runs", "*.egg-info"))
            changed = rewrite(copy)
        print("\n".join(changed) or "nothing to rewrite")
        return 1 if changed else 0
    changed = rewrite(args.root)
    print(f"{len(changed)} file(s) rewritten" + "".join(f"\n  {c}" for c in changed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
