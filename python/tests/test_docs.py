"""docs/python.md as a doctest, the type stubs against the module, the installed package, and the
message an interpreter the module was not built for gets."""
import ast
import doctest
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import gmmdiff
from conftest import ROOT

BUILD = pathlib.Path(gmmdiff.__file__).resolve().parents[2]  # build/python/gmmdiff -> build


def test_python_md_examples_run(tmp_path):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        r = doctest.testfile(str(ROOT / "docs" / "python.md"), module_relative=False, verbose=False,
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    finally:
        os.chdir(cwd)
    assert r.attempted > 20
    assert r.failed == 0, f"{r.failed} of {r.attempted} examples of docs/python.md failed (output above)"


# ---- the stubs: every function and method of _core.pyi exists with the same keywords and defaults


def runtime_params(obj):
    """Parameter names and default reprs from pybind11's first signature line."""
    line = obj.__doc__.strip().splitlines()[0]
    inner = line[line.index("(") + 1: line.rindex(") ->") if ") ->" in line else line.rindex(")")]
    params = {}
    depth, cur, quote = 0, "", None
    parts = []
    for ch in inner:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0 and quote is None:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    for p in parts:
        p = p.strip()
        if p in ("*", "self") or p.startswith("self:"):
            continue
        name = p.split(":")[0].split("=")[0].strip()
        default = p.split("=", 1)[1].strip() if "=" in p else None
        params[name] = default
    return params


def stub_functions():
    tree = ast.parse((pathlib.Path(gmmdiff.__file__).parent / "_core.pyi").read_text())
    out = {}

    def collect(nodes, prefix):
        for n in nodes:
            if isinstance(n, ast.FunctionDef):
                if n.name.startswith("__") and n.name not in ("__init__", "__dlpack__"):
                    continue
                if any(isinstance(d, ast.Name) and d.id == "property" for d in n.decorator_list):
                    out[prefix + n.name] = "property"
                    continue
                args = n.args.args + n.args.kwonlyargs
                defaults = [None] * (len(n.args.args) - len(n.args.defaults)) + list(n.args.defaults)
                defaults += list(n.args.kw_defaults)
                params = {}
                for a, dflt in zip(args, defaults):
                    if a.arg == "self":
                        continue
                    params[a.arg] = None if dflt is None else ast.literal_eval(dflt)
                out.setdefault(prefix + n.name, params)
            elif isinstance(n, ast.ClassDef):
                collect(n.body, n.name + ".")

    collect(tree.body, "")
    return out


def normalise_default(text):
    if text is None:
        return None
    if text == "None":
        return None
    if text.startswith("'") or text.startswith('"'):
        return text.strip("'\"")
    if text in ("True", "False"):
        return text == "True"
    if text == "[]":
        return ()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def test_stubs_match_the_module():
    stubs = stub_functions()
    assert len(stubs) > 30
    core = gmmdiff._core
    for name, params in stubs.items():
        owner = core
        for part in name.split(".")[:-1]:
            owner = getattr(owner, part)
        attr = name.split(".")[-1]
        assert hasattr(owner, attr), f"{name} is in _core.pyi but not in the module"
        if params == "property":
            continue
        got = runtime_params(getattr(owner, attr))
        assert list(got) == list(params), f"{name}: module {list(got)} vs stub {list(params)}"
        for p, dflt in params.items():
            assert normalise_default(got[p]) == dflt or (dflt == () and got[p] in ("[]", "()")), (
                f"{name}({p}=...): module default {got[p]!r} vs stub {dflt!r}")
    classes = {k.split(".")[0] for k in stubs if "." in k}
    public = [n for n in dir(core) if not n.startswith("_")]
    for n in public:
        assert n in stubs or n in classes or n in ("ResourceError", "NumericalError"), f"{n} has no stub in _core.pyi"
        assert n in gmmdiff.__all__, f"{n} is not exported by gmmdiff"


def test_help_shows_signatures():
    doc = gmmdiff.sample.__doc__
    assert doc.startswith("sample(mixture: object, *, n: int = 1000, T: int = 1000, sampler: str = 'ddpm'")
    assert "keep_on_device: bool = False" in doc and "bit for bit" in doc
    assert "stats: str = 'means,meansperp,random:8,radial,logp'" in gmmdiff.tv.__doc__


# ---- installing and importing


def run_python(code, env=None, cwd=None, python=sys.executable):
    e = dict(os.environ)
    e.pop("PYTHONPATH", None)
    e.update(env or {})
    return subprocess.run([python, "-c", code], env=e, cwd=cwd, capture_output=True, text=True)


def test_cmake_install_puts_the_package_where_python_finds_it(tmp_path):
    prefix = tmp_path / "prefix"
    r = subprocess.run(["cmake", "--install", str(BUILD), "--prefix", str(prefix)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    found = sorted(prefix.glob("lib/python3*/*-packages/gmmdiff/__init__.py"))
    assert len(found) == 1, list(prefix.rglob("*"))[:20]
    site = found[0].parent.parent
    names = {p.name for p in found[0].parent.iterdir()}
    assert {"__init__.py", "_core.pyi", "py.typed", "_build.py"} <= names
    assert any(n.startswith("_core.") and n.endswith(".so") for n in names)
    code = ("import gmmdiff, numpy as np; m = gmmdiff.Mixture.preset('two-point', d=3); "
            "y = gmmdiff.sample(m, n=300, T=8); print(gmmdiff.__version__, gmmdiff.__file__, y.shape)")
    r = run_python(code, env={"PYTHONPATH": str(site)}, cwd=tmp_path)  # another directory, no build tree
    assert r.returncode == 0, r.stderr
    version, path, shape = r.stdout.split(" ", 2)
    assert version == gmmdiff.__version__ and path.startswith(str(site)) and shape.strip() == "(300, 3)"
    # The installed module loads the installed library (RPATH $ORIGIN/...), not the build tree's.
    r = run_python("import gmmdiff, os; print(open('/proc/self/maps').read())", env={"PYTHONPATH": str(site)})
    libs = {l.split()[-1] for l in r.stdout.splitlines() if "libgmmdiff.so" in l}
    assert libs and all(l.startswith(str(prefix)) for l in libs), libs


def test_an_interpreter_without_numpy_gets_one_clear_line(tmp_path):
    code = "import sys; sys.modules['numpy'] = None; import gmmdiff"
    r = run_python(code, env={"PYTHONPATH": str(BUILD / "python")}, cwd=tmp_path)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: gmmdiff: this Python cannot import NumPy. gmmdiff was built for ")
    assert gmmdiff._build.PYTHON_EXECUTABLE in last and "Use that interpreter" in last


def test_another_python3_on_path_gets_the_message_or_works(tmp_path):
    """The python3 a user types may not be the one the module was built for (pyenv's, first on
    PATH here): it must either import gmmdiff or say in one line what to do."""
    other = shutil.which("python3")
    if other is None or os.path.realpath(other) == os.path.realpath(sys.executable):
        pytest.skip("no other python3 on PATH")
    r = run_python("import gmmdiff; print(gmmdiff.__version__)", env={"PYTHONPATH": str(BUILD / "python")},
                   cwd=tmp_path, python=other)
    if r.returncode == 0:
        assert r.stdout.strip() == gmmdiff.__version__
    else:
        last = r.stderr.strip().splitlines()[-1]
        assert re.match(r"ImportError: gmmdiff: .*gmmdiff was built for ", last), r.stderr
