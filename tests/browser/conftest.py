"""Shared by the browser tests: one local stack (moto) and one Debian chromium per test module.

Per module, not per session: moto is process-wide, so a stack left running would collide with the
integration tests' own stacks (the same table names in the same mock)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LIMIT = 300_000  # UploadMaxBytes for this stack: the oversize cases stay small
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT_MS = 20_000
VALID_RISK = {"age": 67, "gender": "Male", "hypertension": 1, "heart_disease": 0, "ever_married": "Yes",
              "work_type": "Private", "Residence_type": "Urban", "avg_glucose_level": 205.5, "bmi": 31.2,
              "smoking_status": "formerly smoked"}


def _unavailable(reason: str) -> None:
    """A missing prerequisite fails under CI (the suite must really run there) and skips elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is an error, not a skip)", pytrace=False)
    pytest.skip(reason)


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack():
    from infra.build_web import build_web_assets
    from strokelens.core.settings import model_dir

    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: install Debian's chromium (make browser) to run the browser tests")
    if not (model_dir() / "manifest.json").is_file():
        _unavailable(f"no model artifacts in {model_dir()}: run `make train` or set MODEL_DIR")
    build_web_assets()
    from infra.run_local import LocalStack

    with LocalStack(port=0, parameters={"UploadMaxBytes": LIMIT}) as running:
        yield running


@pytest.fixture
def received(stack):
    """The bodies S3 accepted during the test, in order: [(key, bytes)]."""
    bodies: list[tuple[str, bytes]] = []
    observe = lambda key, body: bodies.append((key, body))  # noqa: E731
    stack.gateway.upload_observers.append(observe)
    yield bodies
    stack.gateway.upload_observers.remove(observe)


@pytest.fixture(scope="module")
def browser(stack):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


# Counts real XHR upload progress events, so "the bar completed" means the browser reported bytes sent.
PROGRESS_PROBE = """
(() => {
  window.__uploadProgress = [];
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (body) {
    this.upload.addEventListener('progress', (e) => window.__uploadProgress.push([e.loaded, e.total]));
    return send.call(this, body);
  };
  window.__cspViolations = [];
  document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
})();
"""


@pytest.fixture
def page(browser, stack):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(PROGRESS_PROBE)
    pg = context.new_page()
    pg.console_errors = []
    pg.on("console", lambda msg: msg.type == "error" and pg.console_errors.append(msg.text))
    pg.on("pageerror", lambda exc: pg.console_errors.append(str(exc)))
    yield pg
    context.close()
