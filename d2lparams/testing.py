"""pytest plugin (entry point ``pytest11``): run tests once per backend, each in its own process.

A test that takes the ``backend`` fixture is collected once per selected backend
(``test_x[torch]``, ``test_x[tensorflow]``, ...). The main pytest process does not run those
items itself: it starts one worker pytest process per backend (two at a time), in which
only that backend's framework is imported, and reports the workers' results as its own. A
framework that crashes its process fails that backend's items only. Tests without the
fixture run in the main process as usual.

Options:
    ``--backends torch,paddle``  the backends to run (default: every available one).

Example (a user's test file)::

    import numpy as np, d2lparams as d2p

    def test_linear(backend):
        net = d2p.nn.Linear(3, 2)          # built on `backend`
        X = np.ones((1, 3), "float32")
        sd = net.state_dict()
        np.testing.assert_allclose(d2p.to_numpy(net(X)), X @ sd["weight"] + sd["bias"], rtol=1e-6)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

WORKER_ENV = "D2LPARAMS_TEST_WORKER"
RESULTS_ENV = "D2LPARAMS_TEST_RESULTS"


def pytest_addoption(parser):
    group = parser.getgroup("d2lparams")
    group.addoption(
        "--backends",
        action="store",
        default=None,
        help="comma-separated d2lparams backends to run `backend` tests on "
        "(default: every available one)",
    )


def _selected(config) -> list[str]:
    from . import _registry

    worker = os.environ.get(WORKER_ENV)
    if worker:
        return [worker]
    option = config.getoption("--backends")
    if not option:
        return _registry.available_backends()
    names = [_registry.canonical_name(n) for n in option.replace(" ", ",").split(",") if n]
    return list(dict.fromkeys(names))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "d2p_backend: internal — the backend an item runs on"
    )


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", _selected(metafunc.config), indirect=True)


@pytest.fixture
def backend(request):
    """The backend this run of the test is on; it is also the current backend."""
    from . import _registry

    name = request.param
    previous = _registry._global_choice
    _registry.set_backend(name)
    try:
        yield name
    finally:
        _registry._global_choice = previous


def _item_backend(item):
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    return callspec.params.get("backend")


class _Workers:
    """One pytest worker process per backend, at most two running at a time."""

    def __init__(self, config, by_backend: dict):
        self.config = config
        self.by_backend = by_backend
        self.dir = tempfile.mkdtemp(prefix="d2lparams-workers-")
        self.pool = ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1)))
        self.futures = {n: self.pool.submit(self._run, n, ids) for n, ids in by_backend.items()}
        self.lock = threading.Lock()

    def _run(self, name, nodeids):
        results = os.path.join(self.dir, f"{name}.json")
        log = os.path.join(self.dir, f"{name}.log")
        env = dict(os.environ, **{WORKER_ENV: name, RESULTS_ENV: results})
        flags = ["-P"] if sys.version_info >= (3, 11) else []
        cmd = [sys.executable, *flags, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "--rootdir", str(self.config.rootpath), *nodeids]
        with open(log, "w") as out:
            proc = subprocess.run(cmd, cwd=str(self.config.rootpath), env=env, stdout=out,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        reports = {}
        if os.path.exists(results):
            with open(results) as fh:
                for rep in json.load(fh):
                    reports.setdefault(rep["nodeid"], []).append(rep)
        with open(log) as fh:
            tail = fh.read()[-4000:]
        return reports, proc.returncode, tail

    def results(self, name):
        return self.futures[name].result()


def pytest_collection_modifyitems(session, config, items):
    if os.environ.get(WORKER_ENV):
        return
    by_backend: dict = {}
    for item in items:
        name = _item_backend(item)
        if name is not None:
            by_backend.setdefault(name, []).append(item.nodeid)
    config._d2p_by_backend = by_backend


def pytest_runtestloop(session):
    config = session.config
    by_backend = getattr(config, "_d2p_by_backend", None)
    if by_backend and not session.config.option.collectonly:
        config._d2p_workers = _Workers(config, by_backend)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    workers = getattr(item.config, "_d2p_workers", None)
    name = _item_backend(item)
    if workers is None or name is None:
        return None
    reports, code, tail = workers.results(name)
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    found = reports.get(item.nodeid)
    if not found:
        found = [{
            "when": "call", "outcome": "failed", "duration": 0.0, "sections": [],
            "longrepr": f"the {name} worker process exited with code {code} without a result "
                        f"for this test (a crash or an import failure). Its output ends:\n{tail}",
        }]
    for data in found:
        longrepr = data.get("longrepr")
        if data["outcome"] == "skipped" and isinstance(longrepr, list):
            longrepr = tuple(longrepr)
        rep = pytest.TestReport(
            nodeid=item.nodeid, location=item.location, keywords={k: 1 for k in item.keywords},
            outcome=data["outcome"], longrepr=longrepr, when=data["when"],
            sections=[tuple(s) for s in data.get("sections", [])], duration=data["duration"],
        )
        if "wasxfail" in data:
            rep.wasxfail = data["wasxfail"]
        item.ihook.pytest_runtest_logreport(report=rep)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    # what pytest's own protocol does after an item: tear down the collectors (modules,
    # classes) that the next item does not need, or a later in-process item fails its setup
    item.session._setupstate.teardown_exact(nextitem)
    return True


def pytest_runtest_logreport(report):
    if not os.environ.get(WORKER_ENV):
        return
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):
        longrepr = list(longrepr)
    elif longrepr is not None:
        longrepr = str(longrepr)
    data = {
        "nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
        "duration": report.duration, "longrepr": longrepr,
        "sections": [list(s) for s in report.sections],
    }
    if hasattr(report, "wasxfail"):
        data["wasxfail"] = report.wasxfail
    _worker_reports.append(data)


_worker_reports: list = []


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get(RESULTS_ENV)
    if os.environ.get(WORKER_ENV) and path:
        with open(path, "w") as fh:
            json.dump(_worker_reports, fh)
    workers = getattr(session.config, "_d2p_workers", None)
    if workers is not None:
        workers.pool.shutdown(wait=True)
