"""CI: `nox -s alone` runs the suite once per backend, each in an environment of its own."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import d2lparams as d2p

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_nox_alone_has_a_session_per_backend():
    if shutil.which("nox") is None:
        pytest.skip("nox is not installed (it is in the test extra)")
    proc = subprocess.run(["nox", "--list", "--json"], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 0, proc.stderr
    sessions = json.loads(proc.stdout)
    assert sorted(s["call_spec"]["backend"] for s in sessions if s["name"] == "alone") == \
        d2p.list_backends()
    with open(os.path.join(ROOT, ".ci", "run")) as fh:
        assert "\nnox -s alone\n" in fh.read()


def test_the_alone_check_sees_other_frameworks():
    """The check a session makes before running the suite, run here where every framework is
    installed: for each backend it must name the others."""
    pytest.importorskip("nox")
    sys.path.insert(0, ROOT)
    try:
        import noxfile
    finally:
        sys.path.remove(ROOT)
    installed = d2p.available_backends()
    for backend in installed:
        proc = subprocess.run([sys.executable, "-c", noxfile.OTHER_FRAMEWORKS, backend],
                              capture_output=True, text=True, timeout=60)
        assert proc.stdout.split() == [b for b in noxfile.BACKENDS if b in installed and b != backend]
