"""The package keeps its shape: wings whose imports point down only, and one public API at ``stst``."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import stst

PACKAGE = Path(stst.__file__).parent
# Each wing and the wings it may import (besides itself). The root package (stst/__init__.py,
# which every import runs anyway) holds only the version and the lazy public API.
MAY_IMPORT = {
    "base": set(),
    "model": {"base"},
    "infer": {"model", "base"},
    "video": {"infer", "model", "base"},
    "training": {"infer", "model", "base"},
    "stylize": {"video", "infer", "model", "base"},
    "serve": {"stylize", "training", "video", "infer", "model", "base"},
    "cli": {"serve", "stylize", "training", "video", "infer", "model", "base"},
    "__main__": {"cli"},
}


def wing_of(module: str) -> str:
    """``stst.infer.engine`` -> ``infer``; ``stst`` (the root package) -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def stst_imports(path: Path, package_dir: Path) -> list[tuple[int, str]]:
    """Every stst module that ``path`` imports (also inside functions), as absolute dotted names."""
    root = package_dir.parent
    module = ".".join(path.relative_to(root).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] == "stst":
                names = [alias.name for alias in node.names]
                # "from . import distributed" imports a module of that package, "from .. import __version__" a name
                folder = root / target.replace(".", "/")
                subs = [f"{target}.{n}" for n in names if (folder / n).is_dir() or (folder / f"{n}.py").exists()]
                found += [(node.lineno, sub) for sub in subs] or [(node.lineno, target)]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "stst"]
    return found


def wrong_imports(package: Path = PACKAGE) -> list[str]:
    """Imports that point up or sideways between wings, as ``file:line: wing -> wing (module)``."""
    problems = []
    for path in sorted(package.rglob("*.py")):
        own = wing_of(".".join(path.relative_to(package.parent).with_suffix("").parts))
        if own == "":
            continue  # the root package's lazy API imports on demand, never at import time
        for line, target in stst_imports(path, package):
            other = wing_of(target)
            if other not in ("", own) and other not in MAY_IMPORT.get(own, set()):
                problems.append(f"{path.relative_to(package.parent)}:{line}: {own} -> {other} ({target})")
    return problems


def test_every_module_lives_in_a_known_wing():
    tops = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert tops - {"__init__"} == set(MAY_IMPORT)


def test_imports_point_down_only():
    assert wrong_imports() == []


def test_an_upward_import_is_caught(tmp_path):
    """The check itself: a base module importing the engine, and a model module importing cli, are reported."""
    fake = tmp_path / "stst"
    for wing in ("base", "model", "infer"):
        (fake / wing).mkdir(parents=True)
        (fake / wing / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "cli.py").write_text("")
    (fake / "infer" / "engine.py").write_text("from ..base import errors\n")
    (fake / "base" / "errors.py").write_text("def f():\n    from ..infer.engine import Stylizer\n")
    (fake / "model" / "network.py").write_text("import stst.cli\nfrom .. import cli\n")
    assert wrong_imports(fake) == [
        "stst/base/errors.py:2: base -> infer (stst.infer.engine)",
        "stst/model/network.py:1: model -> cli (stst.cli)",
        "stst/model/network.py:2: model -> cli (stst.cli)",
    ]


@pytest.mark.parametrize("name", sorted(stst._API))
def test_public_name_resolves(name):
    assert getattr(stst, name) is not None
    assert name in dir(stst)


def test_train_stays_the_function_after_its_wing_is_imported():
    """``stst.train`` is the function even once ``stst.training.train`` (the module) has been imported."""
    import stst.training.train

    assert callable(stst.train) and stst.train is stst.training.train.train


def test_import_stst_loads_no_torch():
    done = subprocess.run([sys.executable, "-c", "import sys, stst, stst.cli; print('torch' in sys.modules)"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'stylise'"):
        stst.stylise  # noqa: B018
