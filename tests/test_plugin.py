"""The d2lparams pytest plugin as a user meets it: their own test files, run through pytest's
own ``pytester`` in a fresh pytest process each. Backend tests use torch and paddle, the two
frameworks that import fastest; every run checks what really ran (a log the tests write).

A run costs seconds (a pytest process, a worker per backend, a framework import), so one run
checks several things where they do not interfere."""

import json
import os
import re

import pytest

import d2lparams as d2p

pytest_plugins = ["pytester"]

FAST = [b for b in ("torch", "paddle") if b in d2p.available_backends()]
if not FAST:
    pytest.skip("the plugin tests run on torch or paddle", allow_module_level=True)
ONE = FAST[0]
TWO = ",".join(FAST)

# Every test and every import of the module appends a line to ran.log: what really ran, and in
# which process (the plugin is judged on what it made happen, not on what it printed).
USER_TESTS = '''
import json, os, time
import pytest

LOG = os.path.join(os.path.dirname(__file__), "ran.log")


def log(**event):
    with open(LOG, "a") as fh:
        fh.write(json.dumps(dict(event, pid=os.getpid())) + "\\n")


log(kind="import")


def test_one(backend, request):
    log(kind="test", nodeid=request.node.nodeid, start=time.time())
    print("printed by test_one on", backend)
    log(kind="end", nodeid=request.node.nodeid, end=time.time())


@pytest.mark.slow
def test_two(backend, request):
    log(kind="test", nodeid=request.node.nodeid)


def test_fails(backend, request):
    log(kind="test", nodeid=request.node.nodeid)
    value = 41
    assert value == 42, f"the answer on {backend}"


def test_local(request):
    log(kind="test", nodeid=request.node.nodeid)
'''

OTHER_TESTS = '''
import warnings
from test_user import log


def test_kept(backend, request):
    log(kind="test", nodeid=request.node.nodeid)
    warnings.warn("careful on " + backend, UserWarning)


def test_not_named(backend, request):
    log(kind="test", nodeid=request.node.nodeid)
'''


def ran(pytester) -> list[dict]:
    path = pytester.path / "ran.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def ran_tests(pytester) -> set:
    return {e["nodeid"] for e in ran(pytester) if e["kind"] == "test"}


@pytest.fixture
def user(pytester):
    pytester.makeini("[pytest]\nmarkers =\n    slow: a slow test\n")
    pytester.makepyfile(test_user=USER_TESTS, test_other=OTHER_TESTS)
    return pytester


def run(pytester, *args):
    return pytester.runpytest_subprocess(*args, timeout=600)


def esc(text: str) -> str:
    """``text`` as a literal fnmatch pattern (node ids hold brackets)."""
    return "".join({"[": "[[]", "]": "[]]"}.get(c, c) for c in text)


def test_workers_run_exactly_the_selected_items(user, tmp_path, monkeypatch):
    """Every way of selecting at once, each removing something else; and the temporary
    files are gone afterwards."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    result = run(user, "--backends", TWO, "test_user.py", "test_other.py::test_kept",  # node id
                 "-m", "not slow", "-k", "not local", "--deselect", f"test_user.py::test_fails[{ONE}]")
    expected = ({f"test_user.py::test_one[{b}]" for b in FAST}
                | {f"test_other.py::test_kept[{b}]" for b in FAST}
                | {f"test_user.py::test_fails[{b}]" for b in FAST[1:]})
    assert ran_tests(user) == expected, result.stdout.str()
    outcomes = result.parseoutcomes()
    assert (outcomes["passed"], outcomes.get("failed", 0)) == (2 * len(FAST), len(FAST) - 1)
    # warnings raised in a worker are in the summary
    result.stdout.fnmatch_lines_random([f"*UserWarning: careful on {b}*" for b in FAST])
    assert [p.name for p in tmp.iterdir() if p.name.startswith("d2lparams")] == []


def test_a_backend_without_selected_items_starts_no_worker(user):
    result = run(user, "--backends", TWO, "-k", f"one and {ONE}", "test_user.py")
    result.assert_outcomes(passed=1, deselected=3 * len(FAST))
    assert ran_tests(user) == {f"test_user.py::test_one[{ONE}]"}
    # test_user.py is imported by the main process (collection) and by one worker
    assert sum(e["kind"] == "import" for e in ran(user)) == 2


def test_last_failed_reruns_only_the_failures(user):
    first = run(user, "--backends", TWO, "test_user.py")
    first.assert_outcomes(passed=1 + 2 * len(FAST), failed=len(FAST))
    (user.path / "ran.log").unlink()
    again = run(user, "--backends", TWO, "--lf", "test_user.py")
    assert again.parseoutcomes()["failed"] == len(FAST)
    assert "passed" not in again.parseoutcomes(), again.stdout.str()
    assert ran_tests(user) == {f"test_user.py::test_fails[{b}]" for b in FAST}


def test_reports_verbose_tb_line_short_summary_and_junit(user):
    result = run(user, "--backends", ONE, "-v", "--tb=line", "-rA", "--junitxml", "junit.xml",
                 "test_user.py")
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        esc(f"test_user.py::test_one[{ONE}] PASSED") + "*",
        esc(f"test_user.py::test_fails[{ONE}] FAILED") + "*",
        f"*test_user.py:*: AssertionError: the answer on {ONE}",  # --tb=line: one line
        "*Captured stdout call*",  # -rA shows the passed test's output
        f"printed by test_one on {ONE}",
        esc(f"PASSED test_user.py::test_one[{ONE}]"),
        esc(f"FAILED test_user.py::test_fails[{ONE}] - AssertionError: the answer on {ONE}"),
    ])
    assert "def test_fails" not in out  # not the long traceback
    junit = (user.path / "junit.xml").read_text()
    assert f'name="test_fails[{ONE}]"' in junit and f"the answer on {ONE}" in junit


def test_s_shows_the_tests_prints(user):
    result = run(user, "--backends", ONE, "-s", "-k", "one", "test_user.py")
    result.assert_outcomes(passed=1)
    assert f"printed by test_one on {ONE}" in result.stdout.str()


STOPPING = '''
import json, os, time

LOG = os.path.join(os.path.dirname(__file__), "ran.log")


def test_first(backend):
    if backend == "{first}":
        # fail only once the other backend's worker is busy in its slow test
        for _ in range(600):
            if os.path.exists(LOG):
                break
            time.sleep(0.1)
        assert 0, "first"
    with open(LOG, "a") as fh:
        fh.write(json.dumps(dict(kind="slow", pid=os.getpid())) + "\\n")
    time.sleep(120)


def test_second(backend):
    assert 0, "second"
'''


def test_x_stops_every_worker(pytester):
    if len(FAST) < 2:
        pytest.skip("needs torch and paddle")
    pytester.makepyfile(test_stop=STOPPING.format(first=FAST[0]))
    result = run(pytester, "--backends", TWO, "--d2p-workers", "2", "-x")
    result.stdout.fnmatch_lines(["*stopping after 1 failures*"])
    assert result.parseoutcomes() == {"failed": 1}
    # the other backend's worker was in its two-minute test: it has been stopped
    slow = [e for e in ran(pytester) if e["kind"] == "slow"]
    assert len(slow) == 1
    with pytest.raises(ProcessLookupError):
        os.kill(slow[0]["pid"], 0)


def test_W_p_and_maxfail_reach_the_workers(pytester):
    pytester.makepyfile(
        helper_plugin='''
import pytest

@pytest.fixture
def from_plugin():
    return 7
''',
        test_forwarded='''
import warnings

def test_plugin_fixture(backend, from_plugin):
    assert from_plugin == 7

def test_warns(backend):
    warnings.warn("careful on " + backend, UserWarning)

def test_fails_a(backend):
    assert 0

def test_fails_b(backend):
    assert 0
''')
    result = run(pytester, "--backends", ONE, "-p", "helper_plugin", "-W", "error::UserWarning",
                 "--maxfail=2")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [esc(f"FAILED test_forwarded.py::test_warns[{ONE}] - UserWarning: careful on {ONE}")])


def test_pdb_runs_one_backend_in_process_and_explains_several(user):
    # stdin is closed: the debugger opens (in the process whose output we read) and quits
    one = run(user, "--backends", ONE, "--pdb", "-k", "fails", "test_user.py")
    one.stdout.fnmatch_lines(["*PDB post_mortem*", "*assert value == 42*"])
    assert sum(e["kind"] == "import" for e in ran(user)) == 1  # no worker process
    if len(FAST) > 1:
        several = run(user, "--backends", TWO, "--pdb")
        assert several.ret == pytest.ExitCode.USAGE_ERROR
        several.stderr.fnmatch_lines([f"*--pdb needs the tests of one backend*--backends {FAST[0]}*"])


def test_workers_option(user):
    if len(FAST) < 2:
        pytest.skip("needs two backends")
    result = run(user, "--backends", TWO, "--d2p-workers", "1", "-k", "one")
    result.assert_outcomes(passed=2, deselected=4 * len(FAST) + 1)
    result.stdout.fnmatch_lines(["*one worker process per backend, 1 at a time*"])
    # one at a time: the two backends' runs of test_one do not overlap
    events = ran(user)
    spans = sorted((s["start"], e["end"]) for s in events if s["kind"] == "test"
                   for e in events if e["kind"] == "end" and e["nodeid"] == s["nodeid"])
    assert len(spans) == 2 and spans[0][1] <= spans[1][0]


def test_bad_options_are_usage_errors(user):
    bad = run(user, "--d2p-workers", "0")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--d2p-workers takes a number of processes >= 1, got 0*"])
    unknown = run(user, "--backends", "theano")
    assert unknown.ret == pytest.ExitCode.USAGE_ERROR
    unknown.stderr.fnmatch_lines(["*--backends theano: unknown backend 'theano'*"])


def test_a_test_that_parametrizes_backend_itself_is_left_alone(pytester):
    pytester.makepyfile(test_own='''
import pytest

@pytest.mark.parametrize("backend", ["gpu", "cpu"])
def test_own_parameter(backend):
    assert backend in ("gpu", "cpu")

@pytest.mark.parametrize("backend, n", [("a", 1), ("b", 2)])
def test_own_pair(backend, n):
    assert (backend, n) in (("a", 1), ("b", 2))
''')
    pytester.mkpydir("sub").joinpath("conftest.py").write_text('''
import pytest

@pytest.fixture
def backend():
    return "a project's own fixture"
''')
    pytester.path.joinpath("sub", "test_fixture.py").write_text('''
def test_own_fixture(backend):
    assert backend == "a project's own fixture"
''')
    result = run(pytester, "-v")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines_random(["*" + esc("test_own_parameter[gpu] PASSED") + "*",
                                        "*test_own_fixture PASSED*"])
    assert "worker process" not in result.stdout.str()


def test_a_crash_fails_one_test_names_the_signal_and_the_rest_go_on(pytester):
    pytester.makepyfile(test_crash='''
import os, signal
import pytest

@pytest.fixture
def crashes_in_teardown():
    yield
    os.kill(os.getpid(), signal.SIGSEGV)

def test_before(backend):
    pass

def test_crash(backend):
    print("about to crash")
    os.kill(os.getpid(), signal.SIGSEGV)

def test_teardown(backend, crashes_in_teardown):
    pass

def test_after(backend):
    pass
''')
    result = run(pytester, "--backends", ONE)
    # the test whose fixture crashed passed, and its teardown is an error
    result.assert_outcomes(passed=3, failed=1, errors=1)
    result.stdout.fnmatch_lines([esc(f"ERROR test_crash.py::test_teardown[{ONE}] - the {ONE} worker") + "*"])
    result.stdout.fnmatch_lines([
        f"the {ONE} worker process was killed by SIGSEGV while running this test*",
        esc(f"FAILED test_crash.py::test_crash[{ONE}] - the {ONE} worker process") + "*",
    ])
    # the end of its output: Python's fault handler, unless the framework replaced it (paddle
    # does) and the only output was the test's own, which pytest was capturing
    assert re.search(r"Its output ends with:\n(Fatal Python error: Segmentation fault|"
                     r"\(nothing: pytest was capturing the test's output .*-s shows it\))",
                     result.stdout.str()), result.stdout.str()


def test_collect_only_starts_no_worker(user):
    result = run(user, "--backends", TWO, "--collect-only", "-q")
    result.stdout.fnmatch_lines([esc(f"test_user.py::test_one[{b}]") for b in FAST])
    assert sum(e["kind"] == "import" for e in ran(user)) == 1


EVERY_BACKEND = '''
import numpy as np
import d2lparams as d2p


def test_linear_matches_numpy(backend):
    net = d2p.nn.Linear(3, 2)
    assert net.backend == backend
    X = np.ones((1, 3), "float32")
    sd = net.state_dict()
    np.testing.assert_allclose(d2p.to_numpy(net(X)), X @ sd["weight"] + sd["bias"], rtol=1e-6)


def test_no_backend():
    assert True
'''


def test_a_user_test_runs_on_every_installed_backend(pytester):
    pytester.makepyfile(test_every=EVERY_BACKEND)
    result = run(pytester, "-v")
    names = d2p.available_backends()
    result.assert_outcomes(passed=len(names) + 1)
    result.stdout.fnmatch_lines_random(
        [esc(f"test_every.py::test_linear_matches_numpy[{b}] PASSED") + "*" for b in names])
