"""The engine's import boundary: iam/jsonapi knows JSON:API and SQLAlchemy, nothing about IAM.

Every module of the package is parsed (not imported) and each import is checked against
the allowed roots: the standard library, flask, werkzeug, sqlalchemy, marshmallow, orjson,
marshmallow_jsonapi and the package's own modules.
"""
import ast
import sys
from pathlib import Path

import pytest

import iam.jsonapi

PACKAGE = "iam.jsonapi"
PACKAGE_DIR = Path(iam.jsonapi.__file__).parent
THIRD_PARTY = {"flask", "werkzeug", "sqlalchemy", "marshmallow", "marshmallow_jsonapi", "orjson"}
MODULES = sorted(PACKAGE_DIR.rglob("*.py"))


def _module_name(path):
    relative = path.relative_to(PACKAGE_DIR).with_suffix("")
    parts = [p for p in relative.parts if p != "__init__"]
    return ".".join([PACKAGE, *parts])


def _imports(path):
    """(absolute module name, "line: source text") of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, f"{node.lineno}: import {alias.name}"))
        elif isinstance(node, ast.ImportFrom):
            names = ", ".join(a.name for a in node.names)
            text = f"{node.lineno}: from {'.' * node.level}{node.module or ''} import {names}"
            if node.level == 0:
                found.append((node.module, text))
                continue
            base = module.split(".") if is_package else module.split(".")[:-1]
            if node.level - 1 > len(base) - 1:
                found.append(("<beyond the top package>", text))
                continue
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            if node.module is None:  # `from . import x`: x is a module of that package
                for alias in node.names:
                    found.append((f"{target}.{alias.name}", text))
            else:
                found.append((target, text))
    return found


def _allowed(name):
    root = name.split(".")[0]
    if name == PACKAGE or name.startswith(PACKAGE + "."):
        return True
    if root == "iam":
        return False
    return root in THIRD_PARTY or root in sys.stdlib_module_names


def test_the_package_has_modules_to_check():
    names = {p.name for p in MODULES}
    assert {"__init__.py", "resource.py", "query.py", "filters.py", "views.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_engine_module_imports_only_allowed_modules(path):
    offending = [f"{path.relative_to(PACKAGE_DIR.parent.parent)}:{text} (resolves to {name})"
                 for name, text in _imports(path) if not _allowed(name)]
    assert not offending, "the engine imports outside its boundary: " + "; ".join(offending)


@pytest.mark.parametrize("source,module_file,bad", [
    ("from ..models import Account", "resource.py", True),
    ("from ..auth.policy import IamPolicy", "views.py", True),
    ("import iam.config", "views.py", True),
    ("from iam.api import api", "views.py", True),
    ("from iam import resources", "views.py", True),
    ("from .. import extensions", "views.py", True),
    ("import requests", "views.py", True),
    ("from . import filters", "resource.py", False),
    ("from .errors import conflict", "__init__.py", False),
    ("from iam.jsonapi.filters import Filter", "views.py", False),
    ("import json", "views.py", False),
    ("from sqlalchemy.orm import selectinload", "views.py", False),
    ("from marshmallow_jsonapi import Schema", "views.py", False),
])
def test_boundary_check_itself_tells_good_from_bad_imports(tmp_path, monkeypatch, source, module_file, bad):
    """The checker is not vacuous: it flags what it must and passes what it may."""
    package = tmp_path / "iam" / "jsonapi"
    package.mkdir(parents=True)
    path = package / module_file
    path.write_text(source + "\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE_DIR", package)
    flagged = [name for name, _ in _imports(path) if not _allowed(name)]
    assert bool(flagged) == bad, flagged
