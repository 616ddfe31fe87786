"""The ``d2lparams`` command: ``compare`` (the main job) and ``doctor``.

``compare`` runs every scenario of ``d2lparams.scenarios`` on every requested backend, each
backend in a process of its own (a framework that crashes takes only its own process down),
checks each against NumPy and prints a table, a legend of what the numbers mean and a last
line that names what failed. The human output is a ``rich`` table in colour on a terminal
when ``rich`` is installed (``NO_COLOR`` is honoured), plain text otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import __version__, _registry
from . import report as _report
from ._errors import D2LParamsError

TAIL_LINES = 25


def _python(args: list[str], timeout: float):
    flags = ["-P"] if sys.version_info >= (3, 11) else []
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return subprocess.run([sys.executable, *flags, "-m", "d2lparams.cli", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def _worker(argv: list[str]) -> int:
    """Run the scenarios on one backend (in its own process) and write JSON results."""
    import warnings

    warnings.filterwarnings("ignore")
    phase, backend, out, port_dir = argv[:4]
    from . import scenarios

    _registry.set_backend(backend)
    if phase == "scenarios":
        results = [scenarios.run(name, fn, tol) for name, (fn, tol) in scenarios.SCENARIOS.items()]

        def save():
            scenarios.port_save(port_dir, backend)
            return 0.0, {}

        results.append(scenarios.run("port: save", save))
    else:
        sources = argv[4].split(",") if len(argv) > 4 and argv[4] else []
        results = [scenarios.run(scenarios.PORT, lambda: scenarios.port_load(port_dir, backend, sources))]
    data = {"backend": backend, "version": _registry.adapter(backend).version(), "results": results}
    if phase == "port" and len(argv) > 5:  # the layer-by-layer diff against the reference
        try:
            scenarios.diff_trace(port_dir, backend, argv[5])
        except Exception as exc:  # noqa: BLE001 - reported in the diff section, not fatal
            data["diff_error"] = f"{type(exc).__name__}: {exc}"
    with open(out, "w") as fh:
        json.dump(data, fh)
    return 0


def _ended(code: int) -> str:
    """How a process ended, in words: ``killed by SIGSEGV (exit code -11)``."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name} (exit code {code})"
    return f"exited with code {code}"


def _run_backend(phase: str, backend: str, directory: str, extra=()) -> dict:
    out = os.path.join(directory, f"{phase}-{backend}.json")
    start = time.perf_counter()
    try:
        proc = _python(["_worker", phase, backend, out, directory, *extra], timeout=1800)
        code, output = proc.returncode, proc.stdout or ""
        how = _ended(code)
    except subprocess.TimeoutExpired as exc:
        code, how = None, "timed out after 1800 s"
        output = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
    seconds = round(time.perf_counter() - start, 2)
    if code == 0 and os.path.exists(out):
        with open(out) as fh:
            data = json.load(fh)
        data["seconds"] = seconds
        return data
    tail = "\n".join(output.strip().splitlines()[-TAIL_LINES:]) or "(no output)"
    signame = how.split()[2] if how.startswith("killed by") else None
    return {"backend": backend, "results": [], "seconds": seconds,
            "crashed": {"phase": phase, "code": code, "signal": signame, "how": how, "tail": tail}}


def compare(backends: list[str] | None, out_dir: str | None, stream=None, *, workers: int | None = None,
            json_stream=None) -> int:
    """Run every scenario on every requested backend, each in its own process; print the
    table; return the exit status (0 when every installed backend agrees, else 1).

    Args:
        backends: names or aliases (default: every registered backend).
        out_dir: where to write ``report.html`` and ``results.json`` (nothing if ``None``).
        stream: where the human output goes (default: stdout).
        workers: backend processes at a time (default: the number of cores).
        json_stream: where to write the results as JSON (``--json``), if anywhere.
    """
    from . import scenarios

    stream = sys.stdout if stream is None else stream
    out = _Output(stream)
    registered = _registry.list_backends()
    requested = list(dict.fromkeys(_registry.canonical_name(b) for b in backends)) if backends else registered
    available = set(_registry.available_backends())
    run_on = [b for b in requested if b in available]
    missing = [b for b in requested if b not in available]
    hidden = [b for b in registered if b not in requested]
    workers = workers or _cores()
    names = list(scenarios.SCENARIOS) + [scenarios.PORT]
    out.line(f"d2lparams compare {__version__}: {len(names)} scenarios on {', '.join(run_on) or 'no backend'} "
             f"(each backend in its own process, {min(workers, max(1, len(run_on)))} at a time)")
    results: dict = {b: {"backend": b, "results": []} for b in run_on}

    with tempfile.TemporaryDirectory(prefix="d2lparams-compare-") as directory:
        def phase(name: str, backends_now: list[str], extra_for) -> None:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = {b: pool.submit(_run_backend, name, b, directory, extra_for(b)) for b in backends_now}
                for b, fut in futures.items():
                    data = fut.result()
                    merged = results[b]
                    merged["results"] += data["results"]
                    merged["seconds"] = round(merged.get("seconds", 0) + data["seconds"], 2)
                    for key in ("version", "crashed", "diff_error"):
                        if key in data:
                            merged[key] = data[key]
                    out.progress(name, b, data)

        phase("scenarios", run_on, lambda b: ())
        # a backend that crashed saved no checkpoint: its port check cannot mean anything
        saved = [b for b in run_on if not results[b].get("crashed")]
        for b in run_on:
            if b not in saved:
                out.skipped("port", b, "not run: crashed in the scenarios")
        reference = saved[0] if saved else None
        phase("port", saved, lambda b: (",".join(x for x in saved if x != b), reference))
        diffs = _layer_diffs(directory, reference, saved, results)

    tolerances = {name: tol for name, (_, tol) in scenarios.SCENARIOS.items()}
    tolerances[scenarios.PORT] = scenarios.TOLERANCE
    report: dict[str, Any] = {
        "version": __version__, "requested": requested, "not_installed": missing, "hidden": hidden,
        "scenarios": names, "tolerances": tolerances, "measures": dict(scenarios.MEASURES),
        "backends": {b: results.get(b, {"backend": b, "not_installed": True}) for b in requested},
    }
    report["diffs"] = diffs
    failed = _report.failures(report)
    report["ok"] = not failed and bool(run_on)
    report["failed"] = [f["summary"] for f in failed]
    report["table"] = _plain_table(report)
    unsaved = [b for b in run_on if results[b].get("crashed")]
    out.table(report)
    out.legend(report, unsaved)
    for f in failed:
        out.failure(f)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "results.json"), "w") as fh:
            json.dump(report, fh, indent=1)
        _report.write_html(os.path.join(out_dir, "report.html"), report)
        out.line(f"\nwrote {os.path.join(out_dir, 'report.html')} and results.json")
    if json_stream is not None:
        json.dump(report, json_stream, indent=1)
        json_stream.write("\n")
    out.verdict(report, run_on)
    return 0 if report["ok"] else 1


def _layer_diffs(directory: str, reference: str | None, saved: list[str], results: dict) -> dict:
    """The layer-by-layer diff of each backend against ``reference`` (the first backend that
    saved its checkpoint): the chapter's tied network with the reference's weights, traced
    in each backend's own process (:func:`d2lparams.scenarios.diff_trace`) and compared here
    as NumPy, so no two frameworks share a process. ``{"reference": name, "reports": [...],
    "missing": {backend: why}}``."""
    from .interop import diff_traces, load_trace

    out: dict = {"reference": reference, "reports": [], "missing": {}}
    if reference is None:
        return out
    traces = {}
    for b in saved:
        path = os.path.join(directory, f"trace-{b}.npz")
        if os.path.exists(path):
            traces[b] = load_trace(path)
        else:
            out["missing"][b] = results[b].get("diff_error") or "no trace written"
    if reference not in traces:
        return out
    for b in saved:
        if b != reference and b in traces:
            out["reports"].append(diff_traces(traces[reference], traces[b]).to_dict())
    return out


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _rows(report: dict) -> list[list[tuple[str, str]]]:
    rows = []
    for name in report["scenarios"]:
        row = [(name, "name"), (f"{report['tolerances'][name]:.0e}", "tol")]
        row += [_report.cell(report, b, name) for b in report["requested"]]
        rows.append(row)
    return rows


def _plain_table(report: dict) -> str:
    header = ["scenario", "tolerance"] + report["requested"]
    rows = [header] + [[text for text, _ in row] for row in _rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    text = "\n".join(lines)
    if report["hidden"]:
        text += f"\n(not requested: {', '.join(report['hidden'])})"
    return text


LEGEND = ("A cell is the verdict and the largest deviation from NumPy, relative: "
          "|backend - NumPy| / max(1, |NumPy|) unless the row says otherwise. A cell is ok when "
          "its deviation is at most the row's tolerance. What each row compares:")


class _Output:
    """The human output: rich (a table in colour) on a terminal when rich is installed,
    plain text otherwise (a file, a pipe, CI logs)."""

    STYLES = {"ok": "green", "fail": "bold red", "crashed": "bold red", "absent": "dim",
              "name": "", "tol": "dim"}

    def __init__(self, stream):
        self.stream = stream
        self.console = None
        isatty = getattr(stream, "isatty", lambda: False)()
        if isatty or os.environ.get("FORCE_COLOR"):
            try:
                from rich.console import Console
            except ImportError:
                pass
            else:  # rich itself honours NO_COLOR
                self.console = Console(file=stream, force_terminal=True, highlight=False,
                                       soft_wrap=False)

    def line(self, text: str, style: str = "", indent: str = "") -> None:
        if self.console is not None:
            from rich.text import Text

            self.console.print(Text(indent + text, style=style))
        elif indent:  # a legend entry, wrapped under its own column
            print(textwrap.fill(text, 96, initial_indent=indent, subsequent_indent=" " * len(indent)),
                  file=self.stream, flush=True)
        else:
            print(text, file=self.stream, flush=True)

    def progress(self, phase: str, backend: str, data: dict) -> None:
        crash = data.get("crashed")
        bad = [r for r in data["results"] if not r["ok"]]
        if crash:
            status, style = f"crashed: {crash['how']}", "bold red"
        elif bad:
            status, style = f"DISAGREES ({len(bad)})", "bold red"
        else:
            status, style = "ok", "green"
        if self.console is None:
            print(f"  {phase:<9} {backend:<11} {status:<9} {data['seconds']:6.1f} s", file=self.stream,
                  flush=True)
            return
        from rich.text import Text

        text = Text(f"  {phase:<9} {backend:<11} ")
        text.append(f"{status:<9}", style=style)
        text.append(f" {data['seconds']:6.1f} s", style="dim")
        self.console.print(text)

    def skipped(self, phase: str, backend: str, why: str) -> None:
        self.line(f"  {phase:<9} {backend:<11} {why}", "bold red")

    def table(self, report: dict) -> None:
        if self.console is None:
            print("\n" + report["table"], file=self.stream, flush=True)
            return
        from rich import box
        from rich.table import Table
        from rich.text import Text

        table = Table(box=box.SIMPLE_HEAD, title="d2lparams compare", title_justify="left")
        table.add_column("scenario")
        table.add_column("tolerance", style="dim")
        for b in report["requested"]:
            table.add_column(b)
        for row in _rows(report):
            table.add_row(*[Text(text, style=self.STYLES[kind]) for text, kind in row])
        self.console.print()
        self.console.print(table)
        if report["hidden"]:
            self.line(f"(not requested: {', '.join(report['hidden'])})", "dim")

    def legend(self, report: dict, unsaved: list[str]) -> None:
        self.line("")
        self.line(LEGEND if self.console else textwrap.fill(LEGEND, 96), "dim")
        if self.console is not None:
            from rich.table import Table

            grid = Table.grid(padding=(0, 2), pad_edge=True)
            grid.add_column(no_wrap=True, style="dim")
            grid.add_column(style="dim")
            for name in report["scenarios"]:
                grid.add_row(name, report["measures"].get(name, ""))
            self.console.print(grid)
        else:
            width = max(len(n) for n in report["scenarios"])
            for name in report["scenarios"]:
                self.line(report["measures"].get(name, ""), indent=f"  {name:<{width}}  ")
        if unsaved:
            self.line(f"  ({', '.join(unsaved)} crashed before saving a checkpoint: the save/load "
                      "row loads the others' only)", "dim")

    def failure(self, failure: dict) -> None:
        self.line("")
        self.line(failure["title"], "bold red")
        self.line(textwrap.indent(failure["detail"], "    "), "red")

    def verdict(self, report: dict, run_on: list[str]) -> None:
        self.line("")
        if report["ok"]:
            self.line(f"all installed backends agree ({', '.join(run_on)})", "bold green")
        elif not run_on:
            self.line("FAILED: no requested backend is installed (d2lparams doctor shows how to "
                      "install one)", "bold red")
        else:
            self.line("FAILED: " + "; ".join(report["failed"]), "bold red")


def doctor(stream=sys.stdout) -> int:
    """Installed frameworks, versions and known hazards, each with its fix."""
    from importlib import metadata

    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    print(f"d2lparams {__version__} on Python {sys.version.split()[0]}", file=stream)
    print(f"numpy {version('numpy') or 'missing'}", file=stream)
    available = set(_registry.available_backends())
    hazards = []
    for name in _registry.list_backends():
        cls = _registry.adapter_class(name)
        found = next(((d, version(d)) for d in cls.distributions if version(d)), None)
        state = f"{found[0]} {found[1]}" if found and name in available else "not installed"
        print(f"  {name:<11} {state}", file=stream)
        if name not in available:
            hazards.append(f'{name} is not installed: pip install "d2lparams[{cls.extra}]"')
            continue
        hazards += cls.hazards()
        for module, message in cls.unsafe_after.items():
            other = _registry.backend_of_module(module)
            if other in available:
                hazards.append(f"{module} then {cls.import_names[0]} in one process: {message}")
    print("hazards:" if hazards else "no hazards found", file=stream)
    for h in hazards:
        print(f"  - {h}", file=stream)
    return 0


DESCRIPTION = """\
Run the "parameter management" chapter of Dive into Deep Learning on PyTorch,
TensorFlow/Keras 3, MXNet Gluon and PaddlePaddle, and check that they agree."""

EPILOG = """\
examples:
  d2lparams compare                              every installed backend
  d2lparams compare --backends torch paddle      some backends only
  d2lparams compare --out report/                also write report.html and results.json
  d2lparams compare --json > results.json        the results as JSON on stdout
  d2lparams doctor                               what is installed, and known hazards"""

COMPARE_DESCRIPTION = """\
Run every scenario of the chapter on each backend, each backend in a process of its own,
compare every result with NumPy and print a table: one row per scenario with its tolerance,
one column per backend. A cell is "ok" or "FAIL" with the largest relative deviation from
NumPy; a legend under the table says what each row compares."""

COMPARE_EPILOG = """\
exit status: 0 when every installed backend agrees, 1 when one disagrees or crashes (the
last line names what failed), 2 for a usage error."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="d2lparams", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"d2lparams {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    p = sub.add_parser("compare", help="run the chapter on every backend and compare with NumPy",
                       description=COMPARE_DESCRIPTION, epilog=COMPARE_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", nargs="+", metavar="NAME",
                   help="backends to run, by name or alias (default: every installed one)")
    p.add_argument("--out", metavar="DIR", help="also write report.html and results.json into DIR")
    p.add_argument("--json", action="store_true",
                   help="write the results as JSON to stdout (the table then goes to stderr)")
    p.add_argument("--workers", type=_positive, metavar="N",
                   help="backend processes at a time (default: the number of cores)")
    d = sub.add_parser("diff", help="compare two checkpoint files tensor by tensor",
                       description="Compare two checkpoints (d2p.save files of any backends) "
                       "tensor by tensor: by name, or by order and shape where the names differ. "
                       "Exit status 1 when a tensor differs beyond tolerance.")
    d.add_argument("a", help="a checkpoint file")
    d.add_argument("b", help="another checkpoint file")
    d.add_argument("--out", metavar="FILE", help="also write the table as a self-contained HTML page")
    sub.add_parser("doctor", help="installed frameworks, versions and known hazards with fixes",
                   description="Installed frameworks and versions, and known hazards, each with its fix.")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of processes, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 process, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_worker"]:
        return _worker(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "compare":
        names = [n for item in (args.backends or []) for n in item.split(",") if n]
        for name in names:
            try:
                _registry.canonical_name(name)
            except ValueError as exc:
                parser.error(f"--backends: {exc}")
        if args.json:
            return compare(names or None, args.out, sys.stderr, workers=args.workers,
                           json_stream=sys.stdout)
        return compare(names or None, args.out, workers=args.workers)
    if args.command == "diff":
        from .interop import diff_checkpoints  # NumPy and safetensors only for this command

        try:
            report = diff_checkpoints(args.a, args.b)
        except D2LParamsError as exc:
            print(f"d2lparams diff: {exc}", file=sys.stderr)
            return 2
        print(report)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as fh:
                fh.write(_report.diff_page(report))
            print(f"wrote {args.out}")
        return 0 if report.first_divergence is None else 1
    return doctor()


if __name__ == "__main__":
    sys.exit(main())
