"""The screenshot of the compare report in the guide (``docs/img/report.png``).

    python docs/report_screenshot.py            run d2lparams compare, keep its results, shoot
    python docs/report_screenshot.py --render   only re-render the kept results and shoot

The results of the last full run are kept in ``docs/img/report-results.json``, so that the
mkdocs build (``docs/hooks.py``) can re-render the page with the current report code and
shoot it again without rerunning every framework. Needs Chromium (Debian: ``apt-get install
chromium``); without it nothing is written and the command says so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "img", "report-results.json")
SCREENSHOT = os.path.join(HERE, "img", "report.png")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str | None:
    return next(filter(None, map(shutil.which, BROWSERS)), None)


def shoot(results: str, png: str) -> bool:
    """Render ``results`` (a results.json) as the report page and screenshot it into ``png``;
    False when no Chromium is installed."""
    exe = browser()
    if exe is None:
        return False
    from d2lparams.report import write_html

    with open(results) as fh:
        report = json.load(fh)
    with tempfile.TemporaryDirectory(prefix="d2lparams-shot-") as tmp:
        page = os.path.join(tmp, "report.html")
        write_html(page, report)
        subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", f"--user-data-dir={os.path.join(tmp, 'profile')}",
                        "--hide-scrollbars", "--window-size=1100,1500", f"--screenshot={png}",
                        f"file://{page}"], check=True, capture_output=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    return True


def main() -> int:
    if "--render" not in sys.argv[1:]:
        proc = subprocess.run([sys.executable, "-P", "-m", "d2lparams", "compare", "--json"],
                              stdout=subprocess.PIPE, text=True)
        if proc.returncode not in (0, 1):
            return proc.returncode
        with open(RESULTS, "w") as fh:
            json.dump(json.loads(proc.stdout), fh, indent=1)
    if not shoot(RESULTS, SCREENSHOT):
        print(f"no Chromium ({', '.join(BROWSERS)}): {SCREENSHOT} not written", file=sys.stderr)
        return 1
    print(f"wrote {SCREENSHOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
