"""The main job (`d2lparams compare`), its report, `doctor` and the command line itself."""

import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import d2lparams as d2p
from d2lparams import cli as d2p_cli
from d2lparams import scenarios
from d2lparams.report import _color

FAST = [b for b in ("torch", "paddle") if b in d2p.available_backends()]


def cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-P", "-m", "d2lparams", *args], capture_output=True,
                          text=True, cwd=cwd, stdin=subprocess.DEVNULL, timeout=1800,
                          env=None if env is None else dict(os.environ, **env))


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    proc = cli("compare", "--out", str(out), "--json")
    return proc, out


def test_compare_all_backends_agree(compared):
    proc, out = compared
    assert proc.returncode == 0, proc.stderr[-4000:]
    # --json: the results on stdout, the same as results.json; the human output on stderr
    report = json.loads(proc.stdout)
    assert report == json.load(open(out / "results.json"))
    assert report["ok"] is True and report["failed"] == [] and report["version"] == d2p.__version__
    expected = list(scenarios.SCENARIOS) + [scenarios.PORT]
    assert report["scenarios"] == expected
    for name in d2p.available_backends():
        ran = [r["scenario"] for r in report["backends"][name]["results"]]
        assert [s for s in ran if s != "port: save"] == expected
        assert all(r["ok"] for r in report["backends"][name]["results"]), name
    lines = proc.stderr.splitlines()
    assert lines[-1] == f"all installed backends agree ({', '.join(d2p.available_backends())})"
    header = next(line for line in lines if line.startswith("scenario"))
    assert header.split() == ["scenario", "tolerance", *d2p.list_backends()]
    row = next(line for line in lines if line.startswith("native defaults "))
    assert row.split()[2] == "5e-02"  # the row's tolerance is shown
    for name in expected:  # the legend says what every row compares
        assert re.search(rf"^  {re.escape(name)} +{re.escape(scenarios.MEASURES[name][:30])}",
                         proc.stderr, re.M), name


def test_measures_describe_every_scenario():
    assert list(scenarios.MEASURES) == list(scenarios.SCENARIOS) + [scenarios.PORT]


def test_scenarios_give_the_same_deviations_every_run(backend):
    """Each scenario twice in one process: the framework's own generator has moved on
    in between, so only seeding every scenario gives the same numbers."""
    def once():
        return {name: scenarios.run(name, fn, tol)["deviation"]
                for name, (fn, tol) in scenarios.SCENARIOS.items()}

    first, second = once(), once()
    assert None not in first.values(), first
    assert first == second


def test_hidden_backends_workers_and_bad_names():
    name = FAST[0] if FAST else d2p.available_backends()[0]
    proc = cli("compare", "--backends", name, "--workers", "1")
    assert proc.returncode == 0, proc.stdout[-3000:]
    hidden = [b for b in d2p.list_backends() if b != name]
    assert f"(not requested: {', '.join(hidden)})" in proc.stdout
    count = len(scenarios.SCENARIOS) + 1  # and the save/load check
    assert proc.stdout.startswith(f"d2lparams compare {d2p.__version__}: {count} scenarios on {name} "
                                  "(each backend in its own process, 1 at a time)")
    assert "\x1b[" not in proc.stdout  # not a terminal: plain text
    bad = cli("compare", "--backends", "theano")
    assert bad.returncode == 2 and "--backends: unknown backend 'theano'" in bad.stderr
    zero = cli("compare", "--workers", "0")
    assert zero.returncode == 2 and "expected at least 1 process, got 0" in zero.stderr


# Injected into every process of one run (a sitecustomize module on PYTHONPATH): the second
# backend's scenarios worker crashes with SIGSEGV after printing a line, and the first one's
# "native defaults" gets an impossible tolerance.
INJECT = """
import os, signal, sys
if sys.argv[1:3] == ["_worker", "scenarios"] and sys.argv[3] == {crash!r}:
    print("about to crash on purpose", flush=True)
    os.kill(os.getpid(), signal.SIGSEGV)
import d2lparams.scenarios as s
s.SCENARIOS["native defaults"] = (s.SCENARIOS["native defaults"][0], 1e-12)
"""


def test_a_crash_and_a_failure_are_named(tmp_path):
    if len(FAST) < 2:
        pytest.skip("needs torch and paddle")
    ok, crash = FAST
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(INJECT.format(crash=crash))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    pythonpath = os.pathsep.join(filter(None, [str(inject), os.environ.get("PYTHONPATH")]))
    proc = cli("compare", "--backends", ok, crash, "--out", str(tmp_path / "out"),
               env={"PYTHONPATH": pythonpath, "TMPDIR": str(tmp)})
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert re.search(rf"^  port +{crash} +not run: crashed in the scenarios$", out, re.M)
    assert not re.search(rf"^  port +{crash} +ok", out, re.M)
    assert re.search(r"^native defaults +1e-12 +FAIL \d\.\de-\d\d +crashed$", out, re.M)
    assert (f"{crash} crashed during the scenarios: killed by SIGSEGV (exit code -11)\n"
            "    its output ends with:\n    about to crash on purpose") in out
    assert re.search(rf"^{ok} / native defaults\n    deviation .* exceeds 1e-12$", out, re.M)
    assert out.splitlines()[-1] == f"FAILED: {ok}: native defaults; {crash} crashed (SIGSEGV)"
    report = json.load(open(tmp_path / "out" / "results.json"))
    assert report["backends"][crash]["crashed"]["signal"] == "SIGSEGV"
    assert report["failed"] == [f"{ok}: native defaults", f"{crash} crashed (SIGSEGV)"]
    assert list(tmp.iterdir()) == []  # the temporary directory is gone
    page = (tmp_path / "out" / "report.html").read_text()
    assert '<div class="verdict fail"' in page and '<td class="crashed">crashed</td>' in page
    assert "about to crash on purpose" in page and '<td class="fail">FAIL' in page


def test_rich_output_in_colour_and_no_color(compared, monkeypatch):
    pytest.importorskip("rich")
    _, out = compared
    report = json.load(open(out / "results.json"))
    name = d2p.available_backends()[0]
    report["backends"][name]["results"][0].update(ok=False, error="injected")
    report["ok"], report["failed"] = False, [f"{name}: build"]

    def render(**env):
        for key in ("FORCE_COLOR", "NO_COLOR"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        stream = io.StringIO()
        output = d2p_cli._Output(stream)
        output.table(report)
        output.legend(report, [])
        output.verdict(report, [name])
        return stream.getvalue()

    colour = render(FORCE_COLOR="1")
    assert "\x1b[32mok" in colour and "\x1b[1;31mFAIL" in colour  # green ok, red FAIL
    assert "\x1b[1;31mFAILED: " + f"{name}: build" in colour
    plain_colour = re.sub(r"\x1b\[[0-9;]*m", "", colour)
    assert "scenario" in plain_colour and "tolerance" in plain_colour and "─" in plain_colour
    no_color = render(FORCE_COLOR="1", NO_COLOR="1")
    assert not re.search(r"\x1b\[[0-9;]*3[0-7]m", no_color)  # no colour, whatever else
    assert re.sub(r"\x1b\[[0-9;]*m", "", no_color) == plain_colour
    plain = render()  # not a terminal: plain text, the same table as results.json's
    assert report["table"].splitlines()[0] in plain and "\x1b[" not in plain


def test_version_and_help_read_as_help():
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"d2lparams {d2p.__version__}"
    help_ = cli("--help")
    assert help_.returncode == 0
    assert "Dive into Deep Learning" in help_.stdout and "examples:" in help_.stdout
    assert "``" not in help_.stdout  # not a docstring
    compare_help = cli("compare", "--help")
    for text in ("--backends NAME", "--json", "--workers N", "--out DIR", "exit status: 0"):
        assert text in compare_help.stdout, text


def test_html_report_is_self_contained_with_verdict_cells_and_axes(compared):
    _, out = compared
    page = (out / "report.html").read_text()
    names = d2p.available_backends()
    assert not re.search(r"\b(src|href)\s*=", page) and "<script" not in page and "@import" not in page
    assert f'<div class="verdict ok" id="verdict">All installed backends agree: {", ".join(names)}' in page
    assert page.count('<td class="ok">') == len(names) * (len(scenarios.SCENARIOS) + 1)
    assert page.count('<svg class="plot"') == len(names) + 1  # a histogram each, one training plot
    for text in ("weight value", "weights per bin", "epoch", "|loss - NumPy| / NumPy", ">1e-12<",
                 "tolerance 1e-05"):
        assert text in page, text
    for name in names:  # every backend has a curve and a legend entry in the training plot
        assert f'fill="{_color(name)}">{name}</text>' in page, name
    # the layer-by-layer diff: every other backend against the first, every layer by name
    diffs = json.load(open(out / "results.json"))["diffs"]
    assert diffs["reference"] == names[0] and diffs["missing"] == {}
    assert [d["backends"] for d in diffs["reports"]] == [[names[0], n] for n in names[1:]]
    assert "<h2>Layer-by-layer diff</h2>" in page
    for d in diffs["reports"]:
        assert d["first_divergence"] is None
        assert f'<div class="diff" data-backends="{d["backends"][0]} {d["backends"][1]}">' in page
    if len(names) > 1:
        for layer in ("0", "1", "2", "3", "5", "6", "0.weight", "6.bias"):
            assert f"<td>{layer}</td>" in page, layer
        assert '<tr class="fail">' not in page


def test_histogram_bins_start_and_end_at_the_formulas_bounds(compared):
    """No bin straddles a bound: inside, every bin holds about the formula's count (none at
    part height); outside, none holds anything."""
    _, out = compared
    report = json.load(open(out / "results.json"))
    for name in d2p.available_backends():
        data = next(r["data"] for r in report["backends"][name]["results"]
                    if r["scenario"] == "native defaults")
        edges, counts = data["edges"], data["histogram"]
        within = [data["low"] - 1e-12 <= a and b <= data["high"] + 1e-12
                  for a, b in zip(edges, edges[1:])]
        inside = [c for c, w in zip(counts, within) if w]
        assert len(inside) == 30 and sum(inside) == data["count"] == 90000, name
        # the formula's count per bin: 3000 for a uniform density (a Poisson sd of 55); a
        # truncated normal's (JAX's default) comes with the data
        expected = data.get("expected") or [data["count"] / 30 if w else 0.0 for w in within]
        assert sum(expected) == pytest.approx(90000) and len(expected) == len(counts), name
        assert all(abs(c - e) < 8 * max(e, 1) ** 0.5 for c, e in zip(counts, expected)), (
            name, counts, expected)


def test_a_failing_report_shows_red_cells_and_the_error_text(compared, tmp_path):
    from d2lparams.report import write_html

    _, out = compared
    report = json.load(open(out / "results.json"))
    name = d2p.available_backends()[0]
    build = report["backends"][name]["results"][0]
    build.update(ok=False, deviation=3e-3, error="deviation 3.00e-03 exceeds 1e-05\n<traceback>")
    report["ok"], report["failed"] = False, [f"{name}: build"]
    write_html(str(tmp_path / "report.html"), report)
    page = (tmp_path / "report.html").read_text()
    assert '<div class="verdict fail" id="verdict">FAILED: some backend disagrees' in page
    assert f"<li>{name}: build</li>" in page
    assert '<td class="fail">FAIL 3.0e-03</td>' in page
    assert f"<h3>{name} / build</h3><pre>deviation 3.00e-03 exceeds 1e-05\n&lt;traceback&gt;</pre>" in page


def chromium():
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def test_html_report_opens_in_a_headless_browser_without_console_errors(compared, tmp_path):
    browser = chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); the report was checked "
                    "as text only")
    _, out = compared
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    url = f"file://{out / 'report.html'}"
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "All installed backends agree" in dom.stdout  # the verdict, as the browser parsed it
    assert "Layer-by-layer diff" in dom.stdout and 'id="diffs"' in dom.stdout
    assert dom.stdout.count("<svg") == len(d2p.available_backends()) + 1
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # no script error, no failed load: nothing on the console
    shot = tmp_path / "report.png"
    subprocess.run([*flags, "--hide-scrollbars", "--window-size=1200,1600", f"--screenshot={shot}", url],
                   capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_doctor_lists_frameworks_and_hazards():
    proc = cli("doctor")
    assert proc.returncode == 0, proc.stderr
    for name in d2p.available_backends():
        assert f"  {name}" in proc.stdout
    if {"tensorflow", "paddle"} <= set(d2p.available_backends()):
        assert "preload" in proc.stdout
