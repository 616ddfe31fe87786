"""``d2lparams compare`` (the main job) and ``d2lparams doctor``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from . import _registry


def _python(args: list[str], timeout: float):
    flags = ["-P"] if sys.version_info >= (3, 11) else []
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return subprocess.run([sys.executable, *flags, "-m", "d2lparams.cli", *args],
                          capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


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
    with open(out, "w") as fh:
        json.dump({"backend": backend, "version": _registry.adapter(backend).version(),
                   "results": results}, fh)
    return 0


def _run_backend(phase, backend, directory, extra=()):
    out = os.path.join(directory, f"{phase}-{backend}.json")
    start = time.perf_counter()
    try:
        proc = _python(["_worker", phase, backend, out, directory, *extra], timeout=1800)
        code, tail = proc.returncode, (proc.stderr or "")[-1500:]
    except subprocess.TimeoutExpired:
        code, tail = -1, "timed out after 1800 s"
    seconds = time.perf_counter() - start
    if code == 0 and os.path.exists(out):
        with open(out) as fh:
            data = json.load(fh)
        data["seconds"] = round(seconds, 2)
        return data
    return {"backend": backend, "crashed": f"exit code {code}: {tail.strip()}", "results": [],
            "seconds": round(seconds, 2)}


def compare(backends: list[str] | None, out_dir: str | None, stream=sys.stdout) -> int:
    """Run every scenario on every requested backend, each in its own process; print the
    table; return the exit status (1 if an installed backend disagrees)."""
    from . import scenarios

    registered = _registry.list_backends()
    requested = [_registry.canonical_name(b) for b in backends] if backends else registered
    available = set(_registry.available_backends())
    run_on = [b for b in requested if b in available]
    missing = [b for b in requested if b not in available]
    hidden = [b for b in registered if b not in requested]
    directory = tempfile.mkdtemp(prefix="d2lparams-compare-")
    workers = max(1, min(2, os.cpu_count() or 1))
    print(f"d2lparams compare: {len(scenarios.SCENARIOS) + 1} scenarios on "
          f"{', '.join(run_on) or 'no backend'} ({workers} at a time)", file=stream, flush=True)
    results: dict = {}

    def phase(name, extra_for):
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {b: pool.submit(_run_backend, name, b, directory, extra_for(b)) for b in run_on}
            for b, fut in futures.items():
                data = fut.result()
                status = "crashed" if data.get("crashed") else (
                    "ok" if all(r["ok"] for r in data["results"]) else "DISAGREES")
                print(f"  {name:<9} {b:<11} {status:<9} {data['seconds']:6.1f} s", file=stream,
                      flush=True)
                merged = results.setdefault(b, {"backend": b, "results": []})
                merged["results"] += data["results"]
                for key in ("version", "crashed"):
                    if key in data:
                        merged[key] = data[key]

    phase("scenarios", lambda b: ())
    phase("port", lambda b: (",".join(x for x in run_on if x != b),))

    names = list(scenarios.SCENARIOS) + [scenarios.PORT]
    table = _table(names, requested, results, missing, hidden)
    print(table, file=stream)
    failures = [(b, r) for b in run_on for r in results.get(b, {}).get("results", [])
                if not r["ok"] and r["scenario"] != "port: save"]
    crashed = [b for b in run_on if results.get(b, {}).get("crashed")]
    for b, r in failures:
        print(f"\n{b} / {r['scenario']}: {r['error']}", file=stream)
    for b in crashed:
        print(f"\n{b} crashed: {results[b]['crashed']}", file=stream)
    report = {"backends": {b: results.get(b, {"backend": b, "not_installed": True}) for b in requested},
              "not_installed": missing, "hidden": hidden, "scenarios": names, "table": table}
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "results.json"), "w") as fh:
            json.dump(report, fh, indent=1)
        from .report import write_html

        write_html(os.path.join(out_dir, "report.html"), report)
        print(f"\nwrote {os.path.join(out_dir, 'report.html')} and results.json", file=stream)
    ok = not failures and not crashed and bool(run_on)
    print("\nall installed backends agree" if ok else "\nsome backend disagrees", file=stream)
    return 0 if ok else 1


def _cell(result) -> str:
    if result is None:
        return "-"
    if result["ok"]:
        dev = result["deviation"]
        return "ok " + (f"{dev:.1e}" if dev else "0")
    return "FAIL" if result["deviation"] is None else f"FAIL {result['deviation']:.1e}"


def _table(names, requested, results, missing, hidden) -> str:
    header = ["scenario"] + requested
    rows = [header]
    for name in names:
        row = [name]
        for b in requested:
            if b in missing:
                row.append("not installed")
                continue
            found = [r for r in results.get(b, {}).get("results", []) if r["scenario"] == name]
            row.append("crashed" if results.get(b, {}).get("crashed") else _cell(found[0] if found else None))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    text = "\n".join(lines)
    if hidden:
        text += f"\n(not requested: {', '.join(hidden)})"
    return text


def doctor(stream=sys.stdout) -> int:
    """Installed frameworks, versions and known hazards, each with its fix."""
    from importlib import metadata

    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    print(f"d2lparams {version('d2lparams') or 'source tree'} on Python {sys.version.split()[0]}",
          file=stream)
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_worker"]:
        return _worker(argv[1:])
    parser = argparse.ArgumentParser(prog="d2lparams", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compare", help="run the chapter on every backend and compare")
    p.add_argument("--backends", nargs="+", help="backends to run (default: all)")
    p.add_argument("--out", help="write report.html and results.json here")
    sub.add_parser("doctor", help="installed frameworks, versions and hazards")
    args = parser.parse_args(argv)
    if args.command == "compare":
        names = [n for item in (args.backends or []) for n in item.split(",") if n]
        try:
            return compare(names or None, args.out)
        except ValueError as exc:
            parser.error(str(exc))
    return doctor()


if __name__ == "__main__":
    sys.exit(main())
