"""``python -m benchmarks [--quick] [--out bench] [--write-docs]`` -> OUT/report.json, OUT/report.md
(and docs/benchmarks.md in full mode or with --write-docs)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

from benchmarks.common import FUNCTIONS, ROOT, THREAD_ENV, Settings, machine

# Measure this checkout's strokelens (as the child processes do, see common.child_env), not
# whichever copy an editable install elsewhere points at.
if sys.path[:1] != [str(FUNCTIONS)]:
    sys.path.insert(0, str(FUNCTIONS))

for _key, _value in THREAD_ENV.items():
    os.environ.setdefault(_key, _value)
# Keep the local stack's request and JSON logs off the console (they are not what is measured).
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

DOCS = ROOT / "docs" / "benchmarks.md"


def _model_dir(arg: str | None) -> Path:
    from strokelens.core.settings import model_dir

    folder = Path(arg) if arg else model_dir()
    if not (folder / "manifest.json").is_file():
        sys.exit(f"no model artifacts in {folder}: run `make train`, or point MODEL_DIR / --model-dir at a model folder")
    return folder.resolve()


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _section(report: dict[str, Any], name: str, fn: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    try:
        report[name] = fn()
    except Exception:  # report what failed and go on; the test asserts there were no errors
        report[name] = None
        report.setdefault("errors", {})[name] = traceback.format_exc()
        print(report["errors"][name], file=sys.stderr, flush=True)
    report.setdefault("section_seconds", {})[name] = round(time.perf_counter() - started, 1)
    print(f"[bench] {name} done in {report['section_seconds'][name]} s", file=sys.stderr, flush=True)
    return report[name]


def _cost_inputs(report: dict[str, Any]):
    from benchmarks.cost import Inputs

    warm, cold, e2e = report["warm"], report["cold"], report["e2e"]
    return Inputs(
        inference_warm_ms=warm["litert"]["png"]["all_stages"]["total"]["median"],
        inference_init_ms=(cold["handler"]["interpreter_start_s"]["median"] + cold["handler"]["import_s"]["median"]) * 1e3,
        api_ms=e2e["api_handler_ms_quiet_get"]["median"],
        upload_bytes=e2e["upload_bytes_mean"], preview_bytes=e2e["preview_bytes_mean"],
        previews_per_scan=e2e["previews_per_scan"], item_bytes=e2e["item_bytes_mean"])


def run(settings: Settings) -> dict[str, Any]:
    from benchmarks import cold, cost, e2e, package, report, routes, scaling, studies, trust, warm
    from strokelens.core.catalogue import Catalogue

    started = time.perf_counter()
    manifest = Catalogue(settings.model_dir).load_manifest()
    result: dict[str, Any] = {"machine": {**machine(), "quick": settings.quick, "model_dir": _shown(settings.model_dir),
                                          "model_version": manifest.version, "input_size": manifest.input_size,
                                          "loadavg_start": round(os.getloadavg()[0], 2)},
                              "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(settings).items()}}
    w = _section(result, "warm", lambda: warm.run(settings))
    keras_path = Path(w["keras_path"]) if w else settings.out / "work" / "baseline.keras"
    _section(result, "routes", lambda: routes.run(settings))
    built = _section(result, "package", lambda: package.run(settings))
    _section(result, "cold", lambda: cold.run(settings, keras_path,
                                              settings.out / "packages" / "inference" if built else None))
    _section(result, "scaling", lambda: scaling.run(settings))
    _section(result, "e2e", lambda: e2e.run(settings))
    _section(result, "cost", lambda: cost.run(_cost_inputs(result)))
    if _section(result, "studies", lambda: studies.run(settings)) and result.get("cold"):
        studies.cold_share(result["studies"], result["cold"])
    _section(result, "trust", lambda: trust.run(settings))
    result["budgets"] = report.budgets(result)
    result["machine"]["loadavg_end"] = round(os.getloadavg()[0], 2)
    result["machine"]["elapsed_s"] = round(time.perf_counter() - started)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="few repeats, 10 scans, one 10-slice study, no TF package (CI smoke run)")
    parser.add_argument("--out", type=Path, default=Path("bench"))
    parser.add_argument("--model-dir", default=None, help="model artifacts (default: MODEL_DIR or the packaged ones)")
    parser.add_argument("--scans", type=int, default=None, help="end-to-end scans, all in flight at once (default 500, quick 10)")
    parser.add_argument("--write-docs", action="store_true", help=f"also write {DOCS.relative_to(ROOT)} (default in full mode)")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    args.out.mkdir(parents=True, exist_ok=True)
    settings = Settings.make(args.quick, args.out.resolve(), _model_dir(args.model_dir), args.scans)

    from benchmarks.report import markdown

    result = run(settings)
    (args.out / "report.json").write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    (args.out / "report.md").write_text(text)
    if args.write_docs or not args.quick:
        DOCS.write_text(text)
    print(text)
    return 1 if result.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
