"""The house: a third-party backend needs no edit of d2lparams/, modules import alone, the
adapter protocol stays small, and built-in layers never silently ignore a subclass."""

import ast
import json
import math
import pathlib
import sys
import textwrap

import numpy as np
import pytest

import d2lparams as d2p

from conftest import run_python

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A plugin distribution as a user would publish it: a package declaring a backend under the
# entry-point group, built on the torch adapter with another name and default scheme.
PLUGIN_INIT = '''
from d2lparams.backends.torch import TorchBackend
from d2lparams.schemes import Constant, Scheme, VarianceScaling


class GlorotTorchBackend(TorchBackend):
    name = "glorot_torch"
    aliases = ("gtorch",)
    default_priority = 1000
    color = "#7b1fa2"
    default_init = Scheme("glorot_torch",
                          linear=(VarianceScaling(1.0, "fan_avg", "uniform"), Constant(0.0)))
    implementation = "adapter:GlorotTorchAdapter"
'''
PLUGIN_ADAPTER = '''
import torch
from d2lparams.backends.torch.adapter import TorchAdapter

from . import GlorotTorchBackend


class GlorotTorchAdapter(GlorotTorchBackend, TorchAdapter):
    def layer(self, kind, **options):
        native = super().layer(kind, **options)
        if kind == "linear" and options["in_features"] is not None:
            with torch.no_grad():
                torch.nn.init.xavier_uniform_(native.weight)
                if native.bias is not None:
                    native.bias.zero_()
        return native
'''

PLUGIN_SCRIPT = '''
import json, numpy as np, d2lparams as d2p
from d2lparams import init, nn
out = {"listed": d2p.list_backends(), "available": d2p.available_backends()}
d2p.seed(0)
net = nn.mlp(30, 20, 10, backend="gtorch")
out["backend"] = net.backend
out["names"] = list(net.state_dict())
X = np.random.default_rng(1).random((3, 30)).astype(np.float32)
out["forward"] = d2p.to_numpy(net(X)).tolist()
out["state"] = {k: v.tolist() for k, v in net.state_dict().items()}
out["scheme"] = str(init.default_scheme("glorot_torch"))
d2p.seed(5)
init.reset_(net, "glorot_torch")
out["reset"] = {k: v.tolist() for k, v in net.state_dict().items()}
import sys
out["torch_adapter_loaded"] = "d2lparams.backends.torch.adapter" in sys.modules
print(json.dumps(out))
'''


@pytest.fixture
def plugin_path(tmp_path):
    if "torch" not in d2p.available_backends():
        pytest.skip("the example plugin builds on the torch adapter, which needs torch")
    pkg = tmp_path / "glorot_torch_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(PLUGIN_INIT)
    (pkg / "adapter.py").write_text(PLUGIN_ADAPTER)
    info = tmp_path / "glorot_torch_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: glorot-torch-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[d2lparams.backends]\nglorot_torch = glorot_torch_plugin:GlorotTorchBackend\n")
    return str(tmp_path)


def test_a_backend_added_through_the_entry_point_group(plugin_path):
    proc = run_python(PLUGIN_SCRIPT, env_extra={"PYTHONPATH": plugin_path})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "glorot_torch" in out["listed"] and "glorot_torch" in out["available"]
    assert out["backend"] == "glorot_torch"
    assert out["names"] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    sd = {k: np.array(v, np.float32) for k, v in out["state"].items()}
    X = np.random.default_rng(1).random((3, 30)).astype(np.float32)
    ref = np.maximum(X @ sd["0.weight"] + sd["0.bias"], 0) @ sd["2.weight"] + sd["2.bias"]
    np.testing.assert_allclose(np.array(out["forward"]), ref, rtol=1e-5, atol=1e-6)
    # its own default at construction: Glorot weight, zero bias
    assert not sd["0.bias"].any()
    assert np.abs(sd["0.weight"]).max() <= math.sqrt(6 / 50) + 1e-6
    assert out["scheme"].startswith("glorot_torch: weight Glorot uniform")
    # reset_ with the plugin's scheme draws exactly its formula from the portable generator
    rng = np.random.default_rng(5)
    reset = {k: np.array(v, np.float32) for k, v in out["reset"].items()}
    bound0, bound2 = math.sqrt(6 / 50), math.sqrt(6 / 30)
    np.testing.assert_array_equal(
        reset["0.weight"], rng.uniform(-bound0, bound0, (30, 20)).astype(np.float32))
    assert not reset["0.bias"].any()
    np.testing.assert_array_equal(
        reset["2.weight"], rng.uniform(-bound2, bound2, (20, 10)).astype(np.float32))


def test_compare_runs_a_backend_added_through_the_entry_point_group(plugin_path):
    proc = run_python(
        "import sys; from d2lparams.cli import main; sys.exit(main(['compare', '--backends', "
        "'glorot_torch']))", env_extra={"PYTHONPATH": plugin_path}, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "glorot_torch" in proc.stdout
    assert "all installed backends agree" in proc.stdout


NEUTRAL = sorted(
    ".".join(("d2lparams",) + p.relative_to(ROOT / "d2lparams").with_suffix("").parts)
    for p in (ROOT / "d2lparams").rglob("*.py") if p.name != "__main__.py"  # runs the CLI
)


def test_every_module_imports_alone_without_a_framework():
    metadata = [f"d2lparams.backends.{p.name}" for p in (ROOT / "backends").iterdir()
                if (p / "__init__.py").exists()]
    modules = [m.replace(".__init__", "") for m in NEUTRAL + metadata + ["d2lparams.backends.base"]]
    code = textwrap.dedent("""
        import importlib, subprocess, sys
        bad = []
        for name in sys.argv[1:]:
            proc = subprocess.run([sys.executable, "-P", "-c", f'''
        import importlib, sys
        importlib.import_module({name!r})
        heavy = [m for m in ("torch", "tensorflow", "keras", "mxnet", "paddle", "jax") if m in sys.modules]
        assert not heavy or {name!r} == "d2lparams.testing", heavy
        '''], capture_output=True, text=True)
            if proc.returncode:
                bad.append((name, proc.stderr[-800:]))
        print(bad)
        sys.exit(1 if bad else 0)
    """)
    import subprocess

    proc = subprocess.run([sys.executable, "-P", "-c", code, *modules], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_no_import_is_hidden_in_a_function_to_dodge_a_cycle():
    """Function-local imports in d2lparams/ are for laziness only: frameworks, NumPy-free
    start-up, optional or heavy dependencies, and the lazily loaded public names."""
    allowed_roots = {"safetensors", "importlib", "numpy", "signal", "rich", "subprocess",
                     "warnings", "html", "math", "traceback", "shutil", "json", "os",
                     "tempfile", "pytest", "_pytest", "d2lparams"}
    # the CLI's heavy parts (NumPy and the frameworks' neighbours) and the pytest plugin's
    lazy_neutral = {".scenarios", ".report", ".interop", "."}
    found = []
    for path in (ROOT / "d2lparams").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom):
                    target = "." * inner.level + (inner.module or "")
                    if inner.level and target not in lazy_neutral and not target.startswith(
                            tuple(x + "." for x in lazy_neutral if x != ".")):
                        found.append(f"{path.name}:{inner.lineno} from {target}")
                    elif not inner.level and target.partition(".")[0] not in allowed_roots:
                        found.append(f"{path.name}:{inner.lineno} from {target}")
    assert not found, found


def test_the_adapter_protocol_is_small():
    tree = ast.parse((ROOT / "backends" / "base.py").read_text())
    required = [
        f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
        and any(getattr(d, "attr", getattr(d, "id", None)) == "abstractmethod"
                for d in f.decorator_list)
    ]
    assert len(required) <= 30, required
