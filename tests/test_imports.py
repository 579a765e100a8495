"""The package's import graph has no circles (DESIGN.md's dependency rules), read from the
source with ``ast``: every ``import`` and ``from ... import`` of a package module, at module
level or inside a function (a lazy import still makes a circle: it only moves the failure to
the first call that takes it). Plus the layering rules that the graph makes checkable:
``specs/`` imports no Keras, ``pretrained/`` never imports the model factory."""

from __future__ import annotations

import ast
import os

import pytest

import keras_efficientnet

ROOT = os.path.dirname(keras_efficientnet.__file__)
PACKAGE = "keras_efficientnet"


def _modules():
    found = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                module = PACKAGE if rel == "__init__" else f"{PACKAGE}.{rel}"
                module = module[:-len(".__init__")] if module.endswith(".__init__") else module
                found[module] = path
    return found


MODULES = _modules()


def _is_package(module):
    return MODULES[module].endswith("__init__.py")


def _imports(module):
    """Package modules ``module`` imports (targets of ``from pkg import submodule`` are the
    submodules themselves, not the package's ``__init__``)."""
    tree = ast.parse(open(MODULES[module], encoding="utf-8").read())
    base = module if _is_package(module) else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                parent = ".".join(parts[:len(parts) - node.level + 1])
                target = f"{parent}.{node.module}" if node.module else parent
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            if subs:
                out.update(subs)
            if target in MODULES and len(subs) < len(node.names):
                out.add(target)
    out.discard(module)
    return out


GRAPH = {m: _imports(m) for m in MODULES}


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, result, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def _without_package_inits(graph):
    """Edges into a package's ``__init__`` from inside that package are how Python itself
    imports the parent first; they are not circles of the code."""
    return {m: {t for t in targets if not (_is_package(t) and m.startswith(t + "."))}
            for m, targets in graph.items()}


def test_the_reader_sees_imports():
    assert "keras_efficientnet.layers.depthwise_ops" in GRAPH["keras_efficientnet.layers.depthwise"]
    assert "keras_efficientnet.pretrained.cache" in GRAPH["keras_efficientnet.pretrained.offline"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    assert _cycles(_without_package_inits(GRAPH)) == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if ".specs" in m))
def test_specs_import_no_keras(module):
    tree = ast.parse(open(MODULES[module], encoding="utf-8").read())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and not n.level}
    assert not names & {"keras", "tensorflow", "jax", "torch"}, module


def test_pretrained_never_imports_the_model_builders():
    builders = {f"{PACKAGE}.models.factory", f"{PACKAGE}.models.constructors",
                f"{PACKAGE}.models.checkpoint"}
    offenders = {m: GRAPH[m] & builders for m in GRAPH if m.startswith(f"{PACKAGE}.pretrained")}
    assert not any(offenders.values()), offenders
