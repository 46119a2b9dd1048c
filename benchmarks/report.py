"""report.json -> markdown: the machine, each budget with pass/fail, then the tables."""

from __future__ import annotations

from typing import Any

MB = 1024 * 1024

BUDGETS = {
    "warm_ms": 20.0, "warm_ratio": 10.0, "cold_s": 1.0, "cold_ratio": 5.0,
    "inference_mb": 150.0, "api_mb": 10.0,
}


def _spread(s: dict[str, float] | None, scale: float = 1.0, digits: int = 2) -> str:
    if not s or not s.get("n"):
        return "–"
    f = f"{{:.{digits}f}}"
    return f"{f.format(s['median'] * scale)} ({f.format(s['p5'] * scale)}–{f.format(s['p95'] * scale)})"


def _ok(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def budgets(r: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    warm = r.get("warm")
    if warm:
        ms = warm["litert"]["png"]["core"]["total"]["median"]
        ratio = warm["ratio_tf_over_litert"]["png"]["total_predict"]
        rows.append({"budget": f"Warm inference, PNG ~256 px, decode → probabilities, 1 thread ≤ {BUDGETS['warm_ms']:g} ms median",
                     "measured": f"{ms:.2f} ms", "pass": ms <= BUDGETS["warm_ms"]})
        rows.append({"budget": f"… ≥ {BUDGETS['warm_ratio']:g}× faster than TF `model.predict` (same run)",
                     "measured": f"{ratio:.1f}×", "pass": ratio >= BUDGETS["warm_ratio"]})
    if r.get("routes"):
        from benchmarks.routes import budgets as route_budgets

        rows += route_budgets(r["routes"])
    cold = r.get("cold")
    if cold:
        kinds = (("handler", "handler module import"), ("handler_dicom", "handler module import, first file DICOM"),
                 ("predictor", "Predictor only"))
        for kind, label in ((k, v) for k, v in kinds if k in cold):
            s = cold[kind]["spawn_to_first_prediction_s"]["median"]
            ratio = cold["tensorflow"]["spawn_to_first_prediction_s"]["median"] / s
            rows.append({"budget": f"Cold start to first prediction ({label}) ≤ {BUDGETS['cold_s']:g} s",
                         "measured": f"{s:.2f} s", "pass": s <= BUDGETS["cold_s"]})
            rows.append({"budget": f"… ≥ {BUDGETS['cold_ratio']:g}× faster than a fresh TF process ({label})",
                         "measured": f"{ratio:.1f}×", "pass": ratio >= BUDGETS["cold_ratio"]})
    package = r.get("package")
    if package:
        inf, api = package["inference"]["unzipped_bytes"] / MB, package["api"]["unzipped_bytes"] / MB
        rows.append({"budget": f"Inference package ≤ {BUDGETS['inference_mb']:g} MB unzipped", "measured": f"{inf:.1f} MB",
                     "pass": inf <= BUDGETS["inference_mb"], "floor": True})
        model = package["inference"].get("model")
        if model:
            rows.append({"budget": "Inference package ships every model file its manifest names, and the packaged "
                                   "model's version hash checks out",
                         "measured": f"model {model['version']}, {model['files']} files, {model['bytes'] / 1024:.0f} KB"
                                     + (f"; missing {', '.join(model['missing'])}" if model["missing"] else ""),
                         "pass": model["complete"]})
        rows.append({"budget": f"API package ≤ {BUDGETS['api_mb']:g} MB unzipped", "measured": f"{api:.2f} MB",
                     "pass": api <= BUDGETS["api_mb"]})
    e2e = r.get("e2e")
    if e2e:
        ok = e2e["done"] == e2e["scans"] and e2e["processed_twice"] == 0 and e2e["attempts_eq_1"] == e2e["scans"] \
            and e2e["distinct_scan_ids"] == e2e["scans"] and not e2e["messages_left"]["dead_letter_queue"]
        rows.append({"budget": f"{e2e['scans']} concurrent scans (all in flight at once) on the local stack: all DONE, none processed twice",
                     "measured": f"{e2e['done']}/{e2e['scans']} DONE, {e2e['attempts_eq_1']} with attempts = 1",
                     "pass": ok})
    studies = r.get("studies")
    if studies:
        rows += study_budgets(studies)
    return rows


def study_budgets(st: dict[str, Any]) -> list[dict[str, Any]]:
    from benchmarks.cost import FULL_VCPU_MB, INFERENCE_MEMORY_MB
    from benchmarks.studies import FLOOR_MS_PER_SLICE, FLOOR_SIZE, FLOOR_UPLOAD_TO_RESULT_S

    rows: list[dict[str, Any]] = []
    sizes = st["sizes"]
    n = str(FLOOR_SIZE) if str(FLOOR_SIZE) in sizes else min(sizes, key=int)
    s = sizes[n]
    med = s["upload_to_result_s"]["median"]
    rows.append({"budget": f"A {n}-slice CT study, upload → result on the local stack ≤ {FLOOR_UPLOAD_TO_RESULT_S:g} s median",
                 "measured": f"{med:.2f} s (median of {s['runs']})", "pass": med <= FLOOR_UPLOAD_TO_RESULT_S,
                 "floor": True})
    q = st["quiet"]["per_slice_ms"]
    compute = q["without_previews"]["median"]
    rows.append({"budget": f"Inference compute ≤ {FLOOR_MS_PER_SLICE:g} ms per slice (decode → probabilities + heat map, 1 thread)",
                 "measured": f"{compute:.1f} ms; {q['total']['median']:.1f} ms with the slice's two stack previews; "
                             f"{s['ms_per_slice']['median']:.1f} ms inside the busy local stack",
                 "pass": compute <= FLOOR_MS_PER_SLICE, "floor": True})
    big = str(max(int(k) for k in sizes))
    b = sizes[big]
    ms = b["read_invocation_ms"]["median"]
    scale = max(1.0, FULL_VCPU_MB / INFERENCE_MEMORY_MB)
    rows.append({"budget": f"{big} slices read within one inference invocation, well inside (≤ half of) its "
                           f"{st['inference_timeout_s']} s timeout",
                 "measured": f"{ms / 1e3:.1f} s here (one full core); ≈ {ms * scale / 1e3:.1f} s at "
                             f"{INFERENCE_MEMORY_MB} MB (×{scale:.2f} CPU)",
                 "pass": ms * scale / 1e3 <= st["inference_timeout_s"] / 2})
    c = st["concurrent"]
    for label, c in (("", st["concurrent"]), (" (upload links 840 s)", st.get("concurrent_long_deadline"))):
        if not c:
            continue
        ok = c["done"] == c["studies"] == c["attempts_eq_1"] == c["reads_eq_1"] == c["files_read_all"] and \
            c["read_twice"] == 0 and c["drained"]
        rows.append({"budget": f"{c['studies']} concurrent {c['slices']}-slice studies{label}: all DONE with every file "
                               "read, none read twice, nothing left in the queue or DLQ",
                     "measured": f"{c['done']}/{c['studies']} DONE, {c['attempts_eq_1']} with attempts = 1, "
                                 f"{c['read_twice']} read twice, {c['files_read_all']} with all {c['slices']} files read; "
                                 f"queue {c['queues']['queue']['visible']} visible / {c['queues']['queue']['in_flight']} "
                                 f"in flight, DLQ {c['queues']['dead_letter_queue']['visible']}",
                     "pass": ok})
    return rows


def _budget_table(rows: list[dict[str, Any]]) -> list[str]:
    """The budget table: the issue's floors first (marked), then the project's own budgets."""
    floors = [b for b in rows if b.get("floor")]
    met = sum(1 for b in floors if b["pass"])
    out = [f"Floors set by the issue: **{met} of {len(floors)} met**. Rows marked *floor* are those floors; "
           "the others are the project's own budgets.", "", "| budget | kind | measured | result |", "|---|---|---|---|"]
    for b in sorted(rows, key=lambda b: not b.get("floor")):
        out.append(f"| {b['budget']} | {'floor' if b.get('floor') else 'budget'} | {b['measured']} | {_ok(b['pass'])} |")
    return out


def _machine(m: dict[str, Any]) -> list[str]:
    v = m["versions"]
    lines = [
        f"- CPU: {m['cpu']} ({m['logical_cores']} logical cores; flags: {', '.join(m['cpu_flags']) or 'n/a'}), "
        f"RAM {m['ram_gb']} GB, {m['os']}",
        f"- Python {m['python']}; " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- Threads: {m['threads']}; OPENBLAS_CORETYPE={m['OPENBLAS_CORETYPE'] or 'unset'}",
        f"- Load average (1 min) at start / end: {m['loadavg_start']} / {m.get('loadavg_end', '–')} "
        "(a shared VM: other jobs may have run during the benchmark)",
        f"- Mode: {'quick' if m['quick'] else 'full'}; model {m['model_version']} (input {m['input_size']} px) "
        f"from `{m['model_dir']}`; run took {m.get('elapsed_s', '–')} s",
    ]
    return lines


def _warm(w: dict[str, Any]) -> list[str]:
    lite, tf = w["litert"], w["tensorflow"]
    stages: list[str] = []
    for fmt in ("png", "dicom"):
        for part in ("core", "all_stages"):
            stages += [s for s in lite[fmt][part] if s not in stages and s != "total"]
    cols = [("PNG served", lite["png"]["core"]), ("PNG + optional stages", lite["png"]["all_stages"]),
            ("DICOM served", lite["dicom"]["core"]), ("DICOM + optional stages", lite["dicom"]["all_stages"]),
            ("PNG TF baseline", tf["png"]), ("DICOM TF baseline", tf["dicom"])]
    tf_names = {"cnn": "predict"}
    out = ["| stage (ms, median (p5–p95)) | " + " | ".join(c for c, _ in cols) + " |",
           "|---" * (len(cols) + 1) + "|"]
    for stage in stages + ["direct_call", "total", "total_direct"]:
        cells = []
        for name, data in cols:
            key = tf_names.get(stage, stage) if "TF" in name else stage
            if stage == "head" and "TF" in name:
                cells.append("in predict")
                continue
            cells.append(_spread(data.get(key)))
        if all(c == "–" for c in cells):
            continue
        label = {"direct_call": "TF `model(x, training=False)`", "total": "**total** (decode → probabilities)",
                 "total_direct": "total with the direct TF call", "cnn": "CNN (TF: `model.predict`)"}.get(stage, stage)
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    r = w["ratio_tf_over_litert"]
    out += ["", f"TF / LiteRT, median totals (decode → probabilities): PNG **{r['png']['total_predict']}×** with "
            f"`model.predict` ({r['png']['total_direct']}× with the direct call); DICOM {r['dicom']['total_predict']}× "
            f"({r['dicom']['total_direct']}×). Model only (CNN + head vs `predict`): PNG {r['png']['model_predict']}×, "
            f"direct call {r['png']['model_direct']}×.",
            f"Optional stages offered by `read_scan`: {', '.join(lite['optional_stages']) or 'none'}; "
            f"{w['repeats']} repeats after {w['warmup']} warm-up runs per input. Inputs: PNG = {w['inputs']['png']}; "
            f"DICOM = {w['inputs']['dicom']}. `read_bytes` is a local file read (page cache); S3/DynamoDB are "
            "shown apart under End to end. Baseline (float Keras twin: the served extractor architecture from "
            "training/cnn.py + average pooling + dense softmax): {0}, {1} parameters (extractor {2}; served model "
            "card {3}), TensorFlow {4}.".format(tf["weights"], tf["parameters"], tf.get("extractor_parameters", "–"),
                                                tf.get("served_extractor_parameters", "–"), tf["tensorflow"])]
    return out


def _cold(c: dict[str, Any]) -> list[str]:
    cols = [("Lambda handler import", c["handler"]), ("… first file DICOM", c.get("handler_dicom")),
            ("Predictor only", c["predictor"]), ("TensorFlow + .keras", c["tensorflow"])]
    cols = [(n, d) for n, d in cols if d is not None]
    keys = ["spawn_to_first_prediction_s", "interpreter_start_s", "import_s", "import_boto3_s", "import_powertools_s",
            "model_load_s", "first_inference_s"]
    out = ["| seconds, median (p5–p95) | " + " | ".join(n for n, _ in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for key in keys:
        cells = [_spread(d.get(key), digits=3) for _, d in cols]
        label = key.removesuffix("_s").replace("_", " ")
        out.append(f"| {'**' + label + '**' if key.startswith('spawn') else label} | " + " | ".join(cells) + " |")
    out.append("| peak RSS (MB) | " + " | ".join(_spread(d["maxrss_mb"], digits=0) for _, d in cols) + " |")
    dicom = f"TF / handler, first file DICOM: **{c['ratio_tf_over_handler_dicom']}×** (pydicom is imported " \
        "when the first DICOM arrives, so its import is in that first inference); " if "handler_dicom" in c else ""
    out += ["", f"TF / handler: **{c['ratio_tf_over_handler']}×**; {dicom}TF / Predictor only: **{c['ratio_tf_over_predictor']}×**. "
            f"{c['handler']['spawn_to_first_prediction_s']['n']} starts of each, interleaved. "
            "The handler's import includes boto3 and powertools (split out above, and counted in the import). "
            f"Started from {c.get('started_from', 'this environment')}. Note: {c['note']}."]
    return out


def _package(p: dict[str, Any]) -> list[str]:
    out = ["| package | unzipped | zipped | files |", "|---|---|---|---|"]
    for name in ("inference", "api"):
        s = p[name]
        zipped = f"{s['zipped_bytes'] / MB:.1f} MB" if "zipped_bytes" in s else "–"
        out.append(f"| {name} (infra/package.py, python3.12 x86_64) | {s['unzipped_bytes'] / MB:.1f} MB | {zipped} | {s['files']} |")
    tf = p.get("tensorflow_inference")
    if tf:
        out.append(f"| inference with {tf['requirement']} instead of LiteRT | {tf['unzipped_bytes'] / MB:.0f} MB | "
                   f"{tf['zipped_bytes'] / MB:.0f} MB | {tf['wheels']} wheels |")
        out += ["", f"TF method: {tf['method']}. The tensorflow-cpu wheel alone unpacks to "
                f"{tf['tensorflow_wheel_unzipped_bytes'] / MB:.0f} MB; the TF package is "
                f"{p['ratio_tf_over_inference_unzipped']}× the served one and "
                f"{'fits' if tf['fits_lambda_zip_limit'] else 'does not fit'} Lambda's 250 MB unzipped limit for .zip packages."]
    else:
        out += ["", "TensorFlow package size: skipped in quick mode."]
    model = p["inference"].get("model")
    if model:
        out += ["", f"Model in the inference package (from `{p['artifacts_packaged_from']}`): {model['version']}, "
                f"{model['files']} files, {model['bytes'] / 1024:.0f} KB ({', '.join(model['names'])})"
                + (f"; **missing {', '.join(model['missing'])}**" if model["missing"] else "") + "."]
    out += ["", f"Floor (issue): inference package ≤ {BUDGETS['inference_mb']:g} MB unzipped: "
            f"{_ok(p['inference']['unzipped_bytes'] / MB <= BUDGETS['inference_mb'])}."]
    return out


def _e2e(e: dict[str, Any]) -> list[str]:
    out = [f"{e['scans']} real CT PNGs all in flight at once: created and uploaded (presigned POST) by {e['workers']} "
           "threads, none waiting for its result, while one loop polls every unfinished scan (4 GETs at a time, then "
           f"{e['poll_interval_s']} s) through the HTTP API of the local stack (moto in-process, real handlers; the local "
           "SQS poller is one serial \"container\", so throughput is a floor and latency includes the queue).", "",
           "| metric | value |", "|---|---|",
           f"| all DONE after | {e['all_done_s']} s ({e['throughput_scans_per_s']} scans/s) |",
           f"| upload → result, median (p5–p95) | {_spread(e['upload_to_result_s'])} s |",
           f"| upload → result p95 | {e['upload_to_result_s'].get('p95', 0):.2f} s |",
           f"| upload → DONE written (server side, no polling) | {_spread(e.get('upload_to_done_server_s'))} s |",
           f"| POST /scans, S3 POST, GET /scans/{{id}} (ms) | {_spread(e['create_ms'], digits=0)}, "
           f"{_spread(e['upload_ms'], digits=0)}, {_spread(e['get_ms'], digits=0)} |",
           f"| DONE / attempts = 1 / processed twice | {e['done']} / {e['attempts_eq_1']} / {e['processed_twice']} "
           f"(statuses {e['status_counts']}) |",
           f"| API handler duration in process, under load / quiet GET (ms) | {_spread(e['api_handler_ms_concurrent'])} / "
           f"{_spread(e['api_handler_ms_quiet_get'])} |",
           f"| inference handler invocations (SQS batches) | {e['handler_invocations']} |",
           f"| messages left in the queue / dead-letter queue | {e['messages_left']['queue']} / {e['messages_left']['dead_letter_queue']} |", "",
           "Inference handler stages as recorded in each DynamoDB item (ms, median (p5–p95)); `read` and "
           "`write_previews` are moto S3 calls, shown apart from the model's stages:", "",
           "| " + " | ".join(e["handler_stage_ms"]) + " |", "|---" * len(e["handler_stage_ms"]) + "|",
           "| " + " | ".join(_spread(s) for s in e["handler_stage_ms"].values()) + " |"]
    return out


def _cost(c: dict[str, Any]) -> list[str]:
    scenarios = list(c["per_1000_scans_usd"])
    lines = list(c["per_1000_scans_usd"][scenarios[0]])
    out = ["| USD per 1,000 scans | " + " | ".join(scenarios) + " |", "|---" * (len(scenarios) + 1) + "|"]
    for line in lines:
        cells = [f"{c['per_1000_scans_usd'][s][line]:.4f}" for s in scenarios]
        out.append(f"| {'**total**' if line == 'total' else line} | " + " | ".join(
            f"**{x}**" if line == "total" else x for x in cells) + " |")
    idle = c["idle_per_month_usd"]["1,000 scans/month retained (steady state)"]
    a, x = c["assumptions"], c["inputs"]
    out += ["", f"Idle (nothing runs): $0.00/month with nothing stored; storage at steady state with 1,000 scans/month "
            f"and the template's retention ({a['upload_retention_days']} days uploads, {a['record_retention_days']} days "
            f"records/previews): **${idle['total']:.4f}/month** (S3 uploads {idle['s3_uploads']}, previews "
            f"{idle['s3_previews']}, DynamoDB {idle['dynamodb_items']}). {c['idle_note']}", "",
            f"Inputs: inference {x['inference_warm_ms']:.1f} ms warm compute + {a['aws_io_ms_per_scan']:g} ms assumed AWS I/O, "
            f"init {x['inference_init_ms']:.0f} ms (billed on cold starts), API {x['api_ms']:.1f} ms per call (quiet GET handler time); durations "
            f"scaled by {a['cpu_scale_inference']} (1024 MB) and {a['cpu_scale_api']} (256 MB) for Lambda's share of a "
            f"vCPU; {a['inference_memory_mb']} MB / {a['api_memory_mb']} MB; {a['polls_per_scan']} polls per scan; "
            f"upload {x['upload_bytes'] / 1024:.0f} KB, previews {x['preview_bytes'] / 1024:.0f} KB, item "
            f"{x['item_bytes']:.0f} B. Per-scan calls: " + ", ".join(f"{k} {v:g}" for k, v in c["per_scan_counts"].items()) +
            f". Prices ({c['prices_as_of']}, us-east-1 on-demand, free tier ignored): " +
            "; ".join(f"{k} ${v['usd']:.10g}/{v['unit']} ({v['source']})" for k, v in c["prices"].items()) + "."]
    return out


def _scaling(s: dict[str, Any]) -> list[str]:
    batches = s["batches"]
    out = ["| input size | CNN only (ms) | " + " | ".join(f"{b} slice{'s' if b > 1 else ''}: total ms" for b in batches) +
           " | per slice at " + str(batches[-1]) + " (ms) | int8 model |", "|---" * (len(batches) + 4) + "|"]
    for size, d in s["sizes"].items():
        cells = [_spread(d["batches"][str(b)]["total_ms"]) for b in batches]
        out.append(f"| {size} px | {_spread(d['cnn_ms'])} | " + " | ".join(cells) +
                   f" | {_spread(d['batches'][str(batches[-1])]['per_slice_ms'])} | {d['tflite_bytes'] / 1024:.0f} KB |")
    served = str(s.get("served_input_size"))
    if served in s["sizes"]:
        cnn = {size: d["cnn_ms"]["median"] for size, d in s["sizes"].items()}
        out += ["", f"The served model takes {served} px: its CNN costs {cnn[served]:.2f} ms per slice here; "
                + ", ".join(f"{size} px would cost {ms / cnn[served]:.1f}× that" for size, ms in cnn.items() if size != served)
                + " (CNN time grows about with the pixel count; decode and preprocessing do not change)."]
    if served in s["sizes"] and s.get("served_tflite_bytes"):
        out += ["", f"Architecture check: the untrained int8 twin at {served} px is "
                f"{s['sizes'][served]['tflite_bytes'] / 1024:.0f} KB, the served extractor {s['served_tflite_bytes'] / 1024:.0f} KB."]
    out += ["", f"Weights: {s['weights']} — timings only, not accuracy. {s['inputs']}; "
            f"{s['repeats']} repeats; slices of a batch are read one after another (`read_scan` per slice), 1 thread."]
    return out


def _routes(rt: dict[str, Any]) -> list[str]:
    from benchmarks.routes import markdown as routes_markdown

    return routes_markdown(rt)


def _studies(st: dict[str, Any]) -> list[str]:
    from benchmarks.studies import render

    return render(st)


def _trust(t: dict[str, Any]) -> list[str]:
    from benchmarks.trust import markdown as trust_markdown

    return trust_markdown(t)


def markdown(r: dict[str, Any]) -> str:
    out = ["# StrokeLens benchmarks", "",
           "Generated by `make bench` (`python -m benchmarks`); do not edit by hand. Numbers are medians with the "
           "5th–95th percentile range in parentheses. The benchmark reports; it does not fail on a budget.", "",
           "## Machine", "", *_machine(r["machine"]), "", "## Budgets", "", *_budget_table(r["budgets"])]
    sections = [("Warm read per slice by route, and a 40-slice CT study (1 thread)", "routes", _routes),
                ("Warm inference per scan (1 thread)", "warm", _warm), ("Cold start", "cold", _cold),
                ("Deployment packages", "package", _package), ("Throughput and end to end (local stack)", "e2e", _e2e),
                ("Cost model", "cost", _cost), ("Studies (local stack)", "studies", _studies), ("Scaling: input size and slices per request", "scaling", _scaling),
                ("Out-of-distribution refusal and heat-map faithfulness", "trust", _trust)]
    for title, key, render in sections:
        if r.get(key):
            out += ["", f"## {title}", "", *render(r[key])]
    return "\n".join(out) + "\n"
