"""Issue 6: every docs example runs on every backend and prints what the docs show."""

import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "docs"))

import examples_runner  # noqa: E402


def test_docs_examples_print_what_the_docs_show(backend):
    """All examples on this backend in a fresh process, as the docs runner runs them (the
    frameworks' global name counters depend on what ran before in a process)."""
    with open(examples_runner.OUTPUTS) as fh:
        shown = json.load(fh)
    proc = subprocess.run([sys.executable, "-P", examples_runner.__file__, "--backend", backend],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(outputs) == examples_runner.example_names()
    for name, text in outputs.items():
        assert backend in shown.get(name, {}), (
            f"docs show no {backend} output for {name}: run python docs/examples_runner.py")
        assert text == shown[name][backend], (
            f"docs example {name} is stale on {backend}: run python docs/examples_runner.py")


def test_every_example_is_on_a_page():
    pages = "".join(open(os.path.join(ROOT, "docs", f)).read()
                    for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))
    for name in examples_runner.example_names():
        assert f"<!-- example: {name} -->" in pages, f"{name} is on no page"


@pytest.mark.skipif(shutil.which("mkdocs") is None, reason="mkdocs is not installed")
def test_mkdocs_build_strict(tmp_path):
    proc = subprocess.run(["mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-4000:]
    page = (tmp_path / "site" / "tying" / "index.html").read_text()
    assert "tabbed-set" in page and "torch" in page


def test_readme_tour_prints_what_the_readme_shows(tmp_path):
    import re

    import d2lparams as d2p

    readme = open(os.path.join(ROOT, "README.md")).read()
    code = re.search(r"## A tour\n\n```python\n(.*?)```", readme, re.S).group(1)
    shown = re.search(r"Output \(paddle.*?\n\n```text\n(.*?)```", readme, re.S).group(1)
    if "paddle" not in d2p.available_backends():
        pytest.skip("the tour runs on paddle")
    proc = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == shown
    assert (tmp_path / "net.safetensors").exists()
