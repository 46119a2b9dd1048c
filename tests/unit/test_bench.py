"""The benchmark's quick mode runs end to end and its report is complete and sane (not fast:
speed budgets are reported by `make bench`, never asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from strokelens.core.settings import model_dir
from tests.conftest import CT_DATA, ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    assert (model_dir() / "manifest.json").is_file(), f"no model artifacts in {model_dir()} (the model is committed)"
    assert any(CT_DATA.glob("*/*.png")), f"no CT PNGs under {CT_DATA} (the shared data set)"
    out = tmp_path_factory.mktemp("bench")
    before = (ROOT / "docs" / "benchmarks.md").read_bytes() if (ROOT / "docs" / "benchmarks.md").exists() else None
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env={**os.environ})
    assert proc.returncode == 0, proc.stderr[-6000:]
    after = (ROOT / "docs" / "benchmarks.md").read_bytes() if (ROOT / "docs" / "benchmarks.md").exists() else None
    assert before == after, "quick mode must not overwrite the committed docs/benchmarks.md"
    markdown = (out / "report.md").read_text()
    assert markdown.startswith("# StrokeLens benchmarks")
    return {**json.loads((out / "report.json").read_text()), "markdown_head": markdown[:3000]}


def _positive(summary: dict) -> bool:
    return summary["n"] > 0 and 0 < summary["p5"] <= summary["median"] <= summary["p95"]


def test_every_section_ran(report):
    assert not report.get("errors"), report.get("errors")
    for section in ("machine", "warm", "routes", "cold", "package", "e2e", "cost", "studies", "scaling", "trust", "budgets"):
        assert report[section], section
    assert report["machine"]["logical_cores"] >= 1 and report["machine"]["cpu"]


def test_warm_timings_and_ratios(report):
    warm = report["warm"]
    for fmt in ("png", "dicom"):
        core = warm["litert"][fmt]["core"]
        for stage in ("decode", "preprocess", "cnn", "head", "total"):
            assert _positive(core[stage]), (fmt, stage)
        assert "previews" in warm["litert"][fmt]["all_stages"]
        for stage in ("predict", "direct_call", "total"):
            assert _positive(warm["tensorflow"][fmt][stage]), (fmt, stage)
        ratios = warm["ratio_tf_over_litert"][fmt]
        assert all(value > 0 for value in ratios.values())


def test_routes_per_slice_and_study(report):
    routes = report["routes"]
    ct = routes["routes"]["CT"]
    assert ct["served"] and ct["declared"] == "CT" and ct["refused"] < ct["reads"]
    for stage in ("decode", "preprocess", "cnn", "head", "ood", "heatmap", "total"):
        assert _positive(ct["stages_ms"][stage]), ("CT", stage)
    dwi = routes["routes"]["DWI"]
    if routes["v2"]:  # model v2: DWI read with its own head after the head crop, and every slice routed
        assert dwi["served"] and dwi["declared"] == "MR" and dwi["refused"] < dwi["reads"]
        for name in ("CT", "DWI"):
            for stage in ("route", "crop"):
                assert _positive(routes["routes"][name]["stages_ms"][stage]), (name, stage)
    else:
        assert dwi == {"served": False, "note": dwi["note"]}
    study = routes["study"]
    assert study["slices"] == 40 and _positive(study["total_ms"]) and study["assessed"] > 0
    assert routes["floor_ms_per_slice"] == 10.0


def test_floors_stated(report):
    floors = [b for b in report["budgets"] if b.get("floor")]
    named = " ".join(b["budget"] for b in floors)
    assert "CT slice" in named and "40-slice CT study" in named and "Inference package" in named
    assert ("DWI slice" in named) == report["routes"]["v2"]
    assert all(isinstance(b["pass"], bool) for b in floors)
    assert "Floors set by the issue" in report["markdown_head"]


def test_cold_start_both_stacks(report):
    cold = report["cold"]
    for kind in ("handler", "predictor", "tensorflow"):
        assert _positive(cold[kind]["spawn_to_first_prediction_s"]), kind
        assert cold[kind]["maxrss_mb"]["median"] > 10, kind
    assert cold["ratio_tf_over_handler"] > 0 and cold["ratio_tf_over_predictor"] > 0
    assert cold["started_from"].startswith("the built inference package"), "measured as Lambda loads it"


def test_packages_measured(report):
    package = report["package"]
    for function in ("inference", "api"):
        assert 0 < package[function]["zipped_bytes"] < package[function]["unzipped_bytes"]
    assert package["api"]["unzipped_bytes"] < package["inference"]["unzipped_bytes"]
    assert package["tensorflow_inference"] is None  # skipped in quick mode
    model = package["inference"]["model"]  # every file the manifest names is shipped, version checks out
    assert model["complete"] and not model["missing"] and "manifest.json" in model["names"]


def test_every_scan_done_exactly_once(report):
    e2e = report["e2e"]
    assert e2e["scans"] == 10
    assert e2e["done"] == e2e["scans"] == e2e["attempts_eq_1"] == e2e["distinct_scan_ids"]
    assert e2e["processed_twice"] == 0 and e2e["not_done"] == 0
    assert e2e["messages_left"] == {"queue": 0, "dead_letter_queue": 0}
    assert _positive(e2e["upload_to_result_s"]) and _positive(e2e["upload_to_done_server_s"])


def test_studies_read_once_with_per_slice_times(report):
    studies = report["studies"]
    (size,) = studies["sizes"].values()  # quick mode: one 10-slice study
    assert size["slices"] == 10 and size["statuses"] == {"DONE": size["runs"]}
    assert size["attempts"] == [1] * size["runs"] and size["reads"] == [1] * size["runs"]
    assert size["files_read"] == [10] * size["runs"]
    for stage in ("read", "slices", "key_previews", "write_previews"):
        assert _positive(size["timings_ms"][stage]), stage
    assert _positive(size["ms_per_slice"]) and _positive(size["read_invocation_ms"])
    assert _positive(size["upload_to_result_s"]) and 0 < size["cold_share_model_load"] < 1
    counts = size["requests_per_study"]
    assert counts["client:s3:PutObject"] == 10 and counts["inference:s3:GetObject"] == 10
    assert counts["inference:s3:PutObject"] == size["previews"] + 1  # every preview + the per-slice JSON
    assert _positive(studies["quiet"]["per_slice_ms"]["without_previews"])
    busy = studies["concurrent"]
    assert busy["done"] == busy["studies"] == busy["attempts_eq_1"] == busy["reads_eq_1"] == busy["files_read_all"]
    assert busy["read_twice"] == 0 and busy["drained"] and busy["distinct_study_ids"] == busy["studies"]
    for cost in studies["cost"].values():
        totals = [design["total"] for design in cost["per_1000_studies_usd"].values()]
        assert totals[0] > 0 and all(t <= totals[0] for t in totals)


def test_cost_and_scaling(report):
    for scenario in report["cost"]["per_1000_scans_usd"].values():
        assert scenario["total"] > 0 and all(v >= 0 for v in scenario.values())
    assert report["cost"]["idle_per_month_usd"]["nothing stored"] == 0
    sizes = report["scaling"]["sizes"]
    assert set(sizes) == {"128", "256"}
    for size in sizes.values():
        assert _positive(size["cnn_ms"]) and set(size["batches"]) == {"1", "4"}
    budgets = report["budgets"]
    assert len(budgets) >= 8 and all(isinstance(b["pass"], bool) for b in budgets)


def test_trust_figures(report):
    ood = report["trust"]["ood"]
    assert ood["ood_n"] >= 50 and 0 <= ood["ood_refusal_rate"] <= 1
    assert ood["in_distribution_n"] >= 20 and 0 <= ood["false_refusal_rate"] <= 1
    routes = report["trust"]["routes"]
    assert routes["ct-slices"]["n"] >= 20 and not routes["ct-slices"]["should_refuse"]
    if report["routes"]["v2"]:
        assert routes["dwi"]["n"] >= 20 and routes["mr-other"]["should_refuse"] and routes["mr-other"]["n"] >= 20
    else:
        assert set(routes) == {"ct-slices"}
    assert report["trust"]["faithfulness"] is None  # trains a phantom model: full mode only
