"""Screenshots of the main screens for the README (``docs/screenshots/``), made in Debian's
chromium against the local stack with a synthetic phantom slice: the real CT images are not ours
to redistribute, so no screenshot shows one.

    python -m infra.screenshots [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from infra.template import ROOT

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def phantom_dicom(folder: Path) -> Path:
    from phantoms import make_ct_slice, write_dicom

    return write_dicom(make_ct_slice(np.random.default_rng(3), 512, "hemorrhage"), folder / "phantom-ct.dcm")


def capture(out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    from infra.run_local import LocalStack

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with tempfile.TemporaryDirectory() as tmp, LocalStack(port=0) as stack, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(stack.url + "/")
        page.wait_for_selector("html[data-ready=true]")
        page.check(f"input[name=user][value='{stack.resources.clinicians[0]['username']}']")
        page.click("#signin-local button[type=submit]")
        page.wait_for_selector("#view-scans:not([hidden])")
        page.set_input_files("#file", str(phantom_dicom(Path(tmp))))
        page.select_option("#modality", "CT")
        page.click("#upload-btn")
        page.wait_for_selector("#scan-panel[data-status=DONE], #scan-panel[data-status=FAILED]")
        page.wait_for_timeout(800)  # previews load
        for name, target in (("result-and-viewer", page), ("viewer", page.locator("#viewer"))):
            path = out / f"{name}.png"
            target.screenshot(path=str(path), **({"full_page": True} if target is page else {}))
            shots.append(path)
        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_timeout(300)
        path = out / "phone-result.png"
        page.screenshot(path=str(path))
        shots.append(path)
        browser.close()
    return shots


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    for path in capture(args.out):
        print(path)


if __name__ == "__main__":
    main()
