"""Run every docs example on every backend, each backend in its own process.

``python docs/examples_runner.py`` rewrites ``docs/examples/outputs.json`` (what the pages
show in their tabs); the test suite runs the same examples on every backend and checks that
their output is still the one the docs show.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "examples")
OUTPUTS = os.path.join(EXAMPLES, "outputs.json")


def example_names() -> list[str]:
    return sorted(f[:-3] for f in os.listdir(EXAMPLES) if f.endswith(".py"))


def run_example(name: str) -> str:
    """Run one example in a fresh namespace on the current backend; return its stdout."""
    import numpy as np

    path = os.path.join(EXAMPLES, f"{name}.py")
    with open(path) as fh:
        code = compile(fh.read(), path, "exec")
    out = io.StringIO()
    with np.printoptions(precision=4, suppress=True), contextlib.redirect_stdout(out):
        exec(code, {"__name__": "__main__", "__file__": path})
    return out.getvalue()


#: run before a backend's examples: what a reader of d2l has in force (every d2l MXNet
#: chapter calls npx.set_np(), NumPy mode)
SETUP = {"mxnet": "from mxnet import npx\nnpx.set_np()"}


def _one_backend(backend: str) -> dict:
    import tempfile

    import d2lparams as d2p

    d2p.set_backend(backend)
    if backend in SETUP:
        d2p.zeros(1)  # the framework imported by d2lparams' adapter first
        exec(SETUP[backend], {})
    os.chdir(tempfile.mkdtemp())
    return {name: run_example(name) for name in example_names()}


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--backend":
        json.dump(_one_backend(sys.argv[2]), sys.stdout)
        return 0
    import d2lparams as d2p

    outputs: dict = {}
    for backend in d2p.available_backends():
        proc = subprocess.run([sys.executable, "-P", __file__, "--backend", backend],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        for name, text in json.loads(proc.stdout.strip().splitlines()[-1]).items():
            outputs.setdefault(name, {})[backend] = text
        print(f"ran {len(outputs)} examples on {backend}")
    with open(OUTPUTS, "w") as fh:
        json.dump(outputs, fh, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
