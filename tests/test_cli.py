"""Issue 6: the main job (`d2lparams compare`), `doctor`, the report, and the pytest plugin."""

import json
import shutil
import subprocess
import sys

import pytest

import d2lparams as d2p
from d2lparams import scenarios


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-P", "-m", "d2lparams", *args], capture_output=True,
                          text=True, cwd=cwd, stdin=subprocess.DEVNULL, timeout=1800)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    proc = cli("compare", "--out", str(out))
    return proc, out


def test_compare_all_backends_agree(compared):
    proc, out = compared
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "all installed backends agree" in proc.stdout
    report = json.load(open(out / "results.json"))
    expected = list(scenarios.SCENARIOS) + [scenarios.PORT]
    assert report["scenarios"] == expected
    for name in d2p.available_backends():
        ran = [r["scenario"] for r in report["backends"][name]["results"]]
        assert [s for s in ran if s != "port: save"] == expected
        assert all(r["ok"] for r in report["backends"][name]["results"]), name
    header = proc.stdout.split("\n")
    assert any(line.startswith("scenario") and all(b in line for b in d2p.available_backends())
               for line in header)


def test_compare_says_when_a_backend_is_hidden():
    name = d2p.available_backends()[0]
    proc = cli("compare", "--backends", name)
    assert proc.returncode == 0, proc.stdout[-3000:]
    hidden = [b for b in d2p.list_backends() if b != name]
    assert f"(not requested: {', '.join(hidden)})" in proc.stdout
    bad = cli("compare", "--backends", "jax")
    assert bad.returncode == 2 and "unknown backend 'jax'" in bad.stderr


def test_html_report_has_plots_and_opens_in_a_browser(compared, tmp_path):
    _, out = compared
    page = (out / "report.html").read_text()
    assert page.count('<svg class="plot"') >= len(d2p.available_backends()) + 1
    assert "Native default initialization" in page and "Training loss" in page
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         f"file://{out / 'report.html'}"], capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("<svg") >= len(d2p.available_backends()) + 1
    assert "d2lparams compare" in proc.stdout


def test_doctor_lists_frameworks_and_hazards():
    proc = cli("doctor")
    assert proc.returncode == 0, proc.stderr
    for name in d2p.available_backends():
        assert f"  {name}" in proc.stdout
    if {"tensorflow", "paddle"} <= set(d2p.available_backends()):
        assert "preload" in proc.stdout
