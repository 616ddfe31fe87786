"""mkdocs hook: ``<!-- example: NAME -->`` becomes the example's code and, in tabs, its real
output on every backend (from ``docs/examples/outputs.json``)."""

import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ORDER = ["torch", "tensorflow", "mxnet", "paddle", "jax"]
#: a tab's title where the output comes from a mode the reader should know of
LABELS = {"mxnet": "mxnet (NumPy mode, npx.set_np())"}


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else "" for line in text.splitlines())


def on_page_markdown(markdown, page, config, files):
    with open(os.path.join(HERE, "examples", "outputs.json")) as fh:
        outputs = json.load(fh)

    def render(match):
        name = match.group(1)
        with open(os.path.join(HERE, "examples", f"{name}.py")) as fh:
            code = fh.read().rstrip()
        parts = [f"```python\n{code}\n```\n"]
        shown = outputs.get(name, {})
        for backend in sorted(shown, key=lambda b: ORDER.index(b) if b in ORDER else 99):
            block = f"```text\n{shown[backend].rstrip()}\n```"
            parts.append(f'=== "{LABELS.get(backend, backend)}"\n\n{_indent(block)}\n')
        return "\n".join(parts)

    return re.sub(r"<!-- example: ([\w-]+) -->", render, markdown)


def on_post_build(config):
    """Shoot the compare report again, as the current report code draws it, into the built
    site (not into docs/, which `mkdocs serve` watches); without Chromium the committed
    screenshot stays."""
    import sys

    sys.path.insert(0, HERE)
    import report_screenshot

    target = os.path.join(config["site_dir"], "img", "report.png")
    if os.path.exists(report_screenshot.RESULTS) and os.path.isdir(os.path.dirname(target)):
        report_screenshot.shoot(report_screenshot.RESULTS, target)
