"""pytest plugin (entry point ``pytest11``): run tests once per backend, each backend in a
process of its own.

A test that takes the ``backend`` fixture is collected once per selected backend
(``test_x[torch]``, ``test_x[tensorflow]``, ...). The main pytest process selects as usual
(``-k``, ``-m``, ``--lf``, ``--deselect``, node ids) and hands each backend's selected items
to a worker pytest process of that backend, in which only that framework is imported; the
workers' reports come back through pytest's own report serialization, so every reporter,
``-r`` and the short summary work as for tests run in-process. A framework that crashes its
process fails the test it was running (with the signal's name and the end of the output);
the backend's remaining tests go on in a fresh worker. Tests without the fixture run in the
main process as usual.

Options:
    ``--backends torch,paddle``  the backends to run (default: every installed one).
    ``--d2p-workers N``  worker processes at a time (default: the number of cores).

Forwarded to the workers: ``-s``/``--capture``, ``-v``/``-q``, ``--tb``, ``-l``,
``--full-trace``, ``-x``/``--maxfail`` (the first failures stop every worker), ``-W``,
``-p``, ``-o``, ``--import-mode``, ``--runxfail``, ``--log-level``, ``--basetemp`` (one
directory per backend). The ini file's own settings apply in the workers too. ``--pdb``
needs the tests of one backend: they then run in the main process, where the debugger can
reach the terminal.

A test that parametrizes ``backend`` itself, or a project with a ``backend`` fixture of its
own, is left alone.

Example (a user's test file)::

    import numpy as np, d2lparams as d2p

    def test_linear(backend):
        net = d2p.nn.Linear(3, 2)          # built on `backend`
        X = np.ones((1, 3), "float32")
        sd = net.state_dict()
        np.testing.assert_allclose(d2p.to_numpy(net(X)), X @ sd["weight"] + sd["bias"], rtol=1e-6)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from typing import TextIO

import pytest

__all__ = ["backend"]

_PLAN = pytest.StashKey[dict]()
_WORKER = pytest.StashKey["_WorkerSide"]()
_MARK = "d2p_backend"


# -- options and parametrization ----------------------------------------------------------
def pytest_addoption(parser):
    group = parser.getgroup("d2lparams", "d2lparams: the `backend` fixture")
    group.addoption(
        "--backends",
        action="store",
        default=None,
        metavar="NAMES",
        help="comma-separated d2lparams backends to run `backend` tests on "
        "(default: every installed one)",
    )
    group.addoption(
        "--d2p-workers",
        action="store",
        type=int,
        default=None,
        metavar="N",
        help="worker processes (one backend each) running at a time "
        "(default: the number of cores)",
    )
    # internal: the file describing this process's job when it is a worker
    group.addoption("--d2p-worker", action="store", default=None, help=argparse.SUPPRESS)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _requested(config) -> list[str]:
    """The backends this run is for; a clear usage error for an unknown or missing one."""
    from . import _registry

    option = config.getoption("--backends")
    if not option:
        return _registry.available_backends()
    names = []
    for raw in option.replace(" ", ",").split(","):
        if not raw:
            continue
        try:
            names.append(_registry.canonical_name(raw))
        except ValueError as exc:
            raise pytest.UsageError(f"--backends {option}: {exc}") from None
    available = _registry.available_backends()
    missing = [n for n in dict.fromkeys(names) if n not in available]
    if missing:
        hints = ", ".join(f'pip install "d2lparams[{_registry.adapter_class(n).extra}]"'
                          for n in missing)
        raise pytest.UsageError(
            f"--backends {option}: {', '.join(missing)} not installed here (installed: "
            f"{', '.join(available) or 'none'}); install with {hints}, or leave "
            f"{'it' if len(missing) == 1 else 'them'} out")
    return list(dict.fromkeys(names))


@pytest.hookimpl(trylast=True)  # a worker replaces the terminal reporter: it must exist
def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"{_MARK}(name): set by d2lparams on the items of the `backend` fixture"
    )
    spec = config.getoption("--d2p-worker")
    if spec:
        with open(spec) as fh:
            job = json.load(fh)
        worker = _WorkerSide(config, job)
        worker.silence(config)
        config.stash[_WORKER] = worker
        config.pluginmanager.register(worker, "d2lparams-worker")
        config._d2p_backends = [job["backend"]]
        return
    workers = config.getoption("--d2p-workers")
    if workers is not None and workers < 1:
        raise pytest.UsageError(
            f"--d2p-workers takes a number of processes >= 1, got {workers}; "
            f"for example --d2p-workers {_cores()}")
    config._d2p_backends = _requested(config)


def _version() -> str:
    from . import __version__

    return __version__


def _own_fixture(metafunc) -> bool:
    """Whether ``backend`` resolves to this plugin's fixture (a project may define its own)."""
    defs = getattr(metafunc, "_arg2fixturedefs", {}).get("backend")
    if not defs:
        return False
    func = getattr(defs[-1], "func", None)
    return getattr(func, "__module__", None) == __name__


def _parametrized_elsewhere(metafunc) -> bool:
    """Whether the test (a marker, or another ``pytest_generate_tests``) parametrizes
    ``backend`` itself: then it is the test's own argument and this plugin stays away."""
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if "backend" in names:
            return True
    calls = getattr(metafunc, "_calls", ())
    return any("backend" in getattr(call, "params", {}) for call in calls)


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc):
    if "backend" not in metafunc.fixturenames or not _own_fixture(metafunc):
        return
    if _parametrized_elsewhere(metafunc):
        return
    names = getattr(metafunc.config, "_d2p_backends", None)
    if names is None:
        names = _requested(metafunc.config)
    if not names:
        params = [pytest.param(None, id="no-backend", marks=pytest.mark.skip(
            reason='no d2lparams backend is installed: pip install "d2lparams[torch]" '
                   "(extras: torch, tensorflow, mxnet, paddle)"))]
    else:
        params = [pytest.param(n, id=n, marks=getattr(pytest.mark, _MARK)(n)) for n in names]
    metafunc.parametrize("backend", params, indirect=True)


@pytest.fixture
def backend(request) -> Iterator[str]:
    """The backend this run of the test is on; it is also the current backend."""
    from . import _registry

    name = request.param
    previous = _registry._global_choice
    _registry.set_backend(name)
    try:
        yield name
    finally:
        _registry._global_choice = previous


def _item_backend(item) -> str | None:
    mark = item.get_closest_marker(_MARK)
    return mark.args[0] if mark is not None and mark.args else None


# -- the main process ---------------------------------------------------------------------
@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    """Plan the workers once selection is final (after -k, -m, --lf, --deselect)."""
    config = session.config
    if config.stash.get(_WORKER, None) is not None or config.option.collectonly:
        return
    by_backend: dict = {}
    for item in session.items:
        name = _item_backend(item)
        if name is not None:
            by_backend.setdefault(name, []).append(item)
    if not by_backend:
        return
    if config.option.usepdb or config.option.trace:
        if len(by_backend) > 1:
            flag = "--pdb" if config.option.usepdb else "--trace"
            raise pytest.UsageError(
                f"{flag} needs the tests of one backend: each backend's tests run in a worker "
                f"process of their own, which no debugger can reach, but the selected tests "
                f"are on {', '.join(by_backend)}. Add --backends {next(iter(by_backend))} (or "
                f"-k to select one backend's tests) to debug them in this process.")
        return  # one backend: run in this process, where pdb can reach the terminal
    config.stash[_PLAN] = by_backend
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and config.option.verbose >= 0:
        workers = min(len(by_backend), config.getoption("--d2p-workers") or _cores())
        count = sum(len(items) for items in by_backend.values())
        reporter.write_line(
            f"d2lparams {_version()}: {count} test{'s' if count != 1 else ''} on "
            f"{', '.join(by_backend)}, one worker process per backend, {workers} at a time")


def _check_stop(session) -> None:
    if session.shouldfail:
        raise session.Failed(session.shouldfail)
    if session.shouldstop:
        raise session.Interrupted(session.shouldstop)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    by_backend = session.config.stash.get(_PLAN, None)
    if not by_backend:
        return None
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        raise session.Interrupted(
            f"{session.testsfailed} error{'s' if session.testsfailed != 1 else ''} during collection")
    remote = {id(item) for items in by_backend.values() for item in items}
    local = [item for item in session.items if id(item) not in remote]
    pool = _WorkerPool(session, by_backend)
    try:
        pool.start()
        for i, item in enumerate(local):
            nextitem = local[i + 1] if i + 1 < len(local) else None
            item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            _check_stop(session)
            pool.deliver(block=False)
        pool.deliver(block=True)
    finally:
        pool.close()
    return True


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _how_it_ended(code: int) -> str:
    return f"was killed by {_signal_name(code)}" if code < 0 else f"exited with code {code}"


def _forwarded_args(config, backend: str) -> list[str]:
    """The worker's command line: the options that change how a test runs or is reported.
    Selection options are not among them: the worker is given its items."""
    opt = config.option
    args = ["-p", "no:cacheprovider", "-o", "addopts=", "--rootdir", str(config.rootpath)]
    if config.inipath:
        args += ["-c", str(config.inipath)]
    args.append(f"--capture={opt.capture}")
    if opt.verbose > 0:
        args.append("-" + "v" * opt.verbose)
    elif opt.verbose < 0:
        args.append("-" + "q" * -opt.verbose)
    args.append(f"--tb={opt.tbstyle}")
    for flag, on in (("--showlocals", opt.showlocals), ("--full-trace", opt.fulltrace),
                     ("--runxfail", opt.runxfail), ("--noconftest", opt.noconftest)):
        if on:
            args.append(flag)
    if opt.maxfail:
        args.append(f"--maxfail={opt.maxfail}")
    for value in opt.pythonwarnings or []:
        args += ["-W", value]
    for value in getattr(opt, "plugins", None) or []:
        args += ["-p", value]
    for value in opt.override_ini or []:
        args += ["-o", value]
    args.append(f"--import-mode={opt.importmode}")
    if getattr(opt, "log_level", None):
        args.append(f"--log-level={opt.log_level}")
    if opt.basetemp:
        args.append(f"--basetemp={opt.basetemp}-{backend}")
    return args


class _WorkerPool:
    """Worker processes, one backend each, at most ``--d2p-workers`` at a time. Threads
    start them and read their events; the main thread alone calls pytest's hooks."""

    def __init__(self, session, by_backend: dict):
        self.session = session
        self.config = session.config
        self.by_backend = by_backend
        self.items = {item.nodeid: item for items in by_backend.values() for item in items}
        self.held: dict = {}  # nodeid -> the events of a test still running
        self.events: queue.Queue = queue.Queue()
        self.workers = self.config.getoption("--d2p-workers") or _cores()
        self.slots = threading.Semaphore(self.workers)
        self.stopping = threading.Event()
        self.procs: dict = {}
        self.lock = threading.Lock()
        self.threads: list = []
        self.pending = len(by_backend)
        self.dir = tempfile.mkdtemp(prefix="d2lparams-pytest-")
        self.config.add_cleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))

    # threads ------------------------------------------------------------------------------
    def start(self) -> None:
        for name in self.by_backend:
            thread = threading.Thread(target=self._backend, args=(name,), daemon=True,
                                      name=f"d2lparams-{name}")
            thread.start()
            self.threads.append(thread)

    def _backend(self, name: str) -> None:
        """Run ``name``'s items; after a crash in a test, the rest in a fresh worker."""
        todo = [item.nodeid for item in self.by_backend[name]]
        attempt = 0
        try:
            with self.slots:
                while todo and not self.stopping.is_set():
                    attempt += 1
                    done, code, tail, crashed_in = self._run_worker(name, todo, attempt)
                    if self.stopping.is_set():
                        break
                    rest = [n for n in todo if n not in done and n != crashed_in]
                    if crashed_in is not None:
                        self.events.put(("crashed", name, code, tail, crashed_in))
                        todo = rest  # each fresh worker gets further: the crashed test is out
                        continue
                    if rest:
                        self.events.put(("not run", name, code, tail, rest))
                    break
        except Exception as exc:  # the main thread must hear of it, or it would wait forever
            self.events.put(("not run", name, None, f"{type(exc).__name__}: {exc}", todo))
        finally:
            self.events.put(("backend done", name))

    def _run_worker(self, name: str, nodeids: list, attempt: int):
        """One worker process over ``nodeids``: its finished tests, exit code, output tail and
        the test it was in when it ended (``None`` when between tests)."""
        base = os.path.join(self.dir, f"{name}-{attempt}")
        events_path, log_path = base + ".events", base + ".log"
        with open(base + ".json", "w") as fh:
            json.dump({"backend": name, "nodeids": nodeids, "events": events_path}, fh)
        open(events_path, "wb").close()
        paths = list(dict.fromkeys(str(self.items[n].path) for n in nodeids))
        flags = ["-P"] if sys.version_info >= (3, 11) else []
        cmd = [sys.executable, *flags, "-m", "pytest", *_forwarded_args(self.config, name),
               "--d2p-worker", base + ".json", *paths]
        env = dict(os.environ)
        env.pop("PYTEST_ADDOPTS", None)  # applied once already, in the main process
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        show = self.config.option.capture == "no"
        with open(os.devnull if show else log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=str(self.config.invocation_params.dir), env=env,
                                    stdin=subprocess.DEVNULL, stdout=None if show else log,
                                    stderr=None if show else subprocess.STDOUT)
        with self.lock:
            self.procs[f"{name}-{attempt}"] = proc
            if self.stopping.is_set():  # close() may have missed it
                proc.kill()
        done: set = set()
        current = None
        buffer = b""
        with open(events_path, "rb") as fh:
            while True:
                exited = proc.poll() is not None
                chunk = fh.read()  # after poll(): an exited worker has written everything
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    event = json.loads(line)
                    if event["kind"] == "start":
                        current = event["nodeid"]
                    elif event["kind"] == "finish":
                        done.add(event["nodeid"])
                        current = None
                    self.events.put(("event", name, event))
                if exited:
                    break
                if not chunk:
                    time.sleep(0.02)
        code = proc.returncode
        if show:
            tail = "(its output is above: with -s the workers write to this terminal)"
        else:
            with open(log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 6000))
                last = fh.read().decode("utf-8", "replace").splitlines()[-40:]
            tail = "\n".join(last).strip() or (
                "(nothing: pytest was capturing the test's output when the process ended; "
                "-s shows it)")
        return done, code, tail, current

    def close(self) -> None:
        """Stop the workers that still run (after -x, an interrupt or an error)."""
        self.stopping.set()
        with self.lock:
            procs = list(self.procs.values())
        for proc in procs:
            if proc.poll() is None:
                proc.kill()  # no state worth a clean exit; paddle answers SIGTERM with a dump
        for proc in procs:
            proc.wait()
        for thread in self.threads:
            thread.join(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

    # the main thread ----------------------------------------------------------------------
    def deliver(self, block: bool) -> None:
        """Report what the workers sent; with ``block``, until every backend is done."""
        while self.pending:
            try:
                event = self.events.get(timeout=0.1) if block else self.events.get_nowait()
            except queue.Empty:
                if block:
                    continue
                return
            self._handle(event)
            _check_stop(self.session)

    def _handle(self, event) -> None:
        kind = event[0]
        if kind == "backend done":
            self.pending -= 1
        elif kind == "event":
            self._event(event[2])
        elif kind == "crashed":
            name, code, tail, nodeid = event[1:]
            self._fail(nodeid, f"the {name} worker process {_how_it_ended(code)} while running "
                               f"this test (its other tests go on in a fresh worker). Its output "
                               f"ends with:\n{tail}")
        else:  # "not run"
            name, code, tail, nodeids = event[1:]
            if code is None:
                why = "could not be started"
            elif code in (0, 1):
                why = ("did not collect this test: a parametrization must give the same ids in "
                       "every process (ids made from object addresses do not)")
            else:
                why = f"{_how_it_ended(code)} before running this test"
            for nodeid in nodeids:
                self._fail(nodeid, f"the {name} worker process {why}. Its output ends "
                                   f"with:\n{tail}")
                _check_stop(self.session)

    def _event(self, data: dict) -> None:
        kind = data["kind"]
        if kind == "warning":
            self.config.hook.pytest_warning_recorded.call_historic(kwargs=dict(
                warning_message=_warning_from(data), when=data["when"],
                nodeid=data["nodeid"], location=None))
        elif kind == "report" and data["report"].get("$report_type") == "CollectReport":
            self.config.hook.pytest_collectreport(report=self._report(data))
        else:
            nodeid = data["report"]["nodeid"] if kind == "report" else data["nodeid"]
            self.held.setdefault(nodeid, []).append(data)
            if kind == "finish":
                self._emit(nodeid)

    def _report(self, data: dict):
        report = self.config.hook.pytest_report_from_serializable(config=self.config,
                                                                  data=data["report"])
        # a skip's location (path, line, reason) is a tuple for pytest's summary; the JSON
        # between the processes turned it into a list
        if isinstance(getattr(report, "longrepr", None), list):
            report.longrepr = tuple(report.longrepr)
        return report

    def _emit(self, nodeid: str, failure=None) -> None:
        """Report one test's events in a row, as pytest reports a test it runs itself, so
        that the tests of two workers never interleave in the output."""
        item = self.items[nodeid]
        item.ihook.pytest_runtest_logstart(nodeid=nodeid, location=item.location)
        for data in self.held.pop(nodeid, []):
            if data["kind"] == "report":
                item.ihook.pytest_runtest_logreport(report=self._report(data))
        if failure is not None:
            item.ihook.pytest_runtest_logreport(report=failure)
        item.ihook.pytest_runtest_logfinish(nodeid=nodeid, location=item.location)

    def _fail(self, nodeid: str, message: str) -> None:
        item = self.items[nodeid]
        # a crash after the test itself passed (in a fixture's teardown) is a teardown error
        called = any(d["kind"] == "report" and d["report"].get("when") == "call"
                     for d in self.held.get(nodeid, []))
        self._emit(nodeid, failure=pytest.TestReport(
            nodeid=nodeid, location=item.location, keywords={k: 1 for k in item.keywords},
            outcome="failed", longrepr=message, when="teardown" if called else "call",
            sections=[], duration=0.0))


def _warning_from(data: dict) -> warnings.WarningMessage:
    category: type[Warning] = UserWarning
    module, _, name = data["category"].rpartition(".")
    try:
        found = getattr(importlib.import_module(module or "builtins"), name)
        if isinstance(found, type) and issubclass(found, Warning):
            category = found
    except (ImportError, AttributeError, ValueError):
        pass
    try:
        message: Warning = category(data["message"])
    except Exception:  # a category whose constructor takes other arguments
        message = UserWarning(data["message"])
    return warnings.WarningMessage(message, category, data["filename"], data["lineno"])


# -- a worker process ---------------------------------------------------------------------
class _WorkerSide:
    """In a worker: keep exactly the items it was given, stay silent on the terminal, and
    stream every report to the main process as pytest serializes it."""

    def __init__(self, config, job: dict):
        self.config = config
        self.nodeids = set(job["nodeids"])
        self.out = open(job["events"], "ab", buffering=0)  # noqa: SIM115 - closed in pytest_unconfigure
        self.devnull: TextIO | None = None

    def _send(self, **event) -> None:
        self.out.write(json.dumps(event, default=str).encode() + b"\n")

    def silence(self, config) -> None:
        """The main process reports; a worker's terminal reporter writes nowhere, so that
        with -s the tests' own prints are all that reaches the terminal."""
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            config.pluginmanager.unregister(reporter)
            self.devnull = open(os.devnull, "w")  # noqa: SIM115 - closed in pytest_unconfigure
            config.pluginmanager.register(pytest.TerminalReporter(config, self.devnull),
                                          "terminalreporter")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items):
        kept = [item for item in items if item.nodeid in self.nodeids]
        dropped = [item for item in items if item.nodeid not in self.nodeids]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = kept

    def pytest_collectreport(self, report):
        if report.failed:
            self._send(kind="report", report=self.config.hook.pytest_report_to_serializable(
                config=self.config, report=report))

    def pytest_runtest_logstart(self, nodeid, location):
        self._send(kind="start", nodeid=nodeid, location=location)

    def pytest_runtest_logreport(self, report):
        self._send(kind="report", report=self.config.hook.pytest_report_to_serializable(
            config=self.config, report=report))

    def pytest_runtest_logfinish(self, nodeid, location):
        self._send(kind="finish", nodeid=nodeid, location=location)

    def pytest_warning_recorded(self, warning_message, when, nodeid, location):
        category = warning_message.category
        self._send(kind="warning", when=when, nodeid=nodeid, message=str(warning_message.message),
                   category=f"{category.__module__}.{category.__qualname__}",
                   filename=warning_message.filename, lineno=warning_message.lineno)

    def pytest_unconfigure(self, config):
        self.out.close()
        if self.devnull is not None:
            self.devnull.close()
