"""Model v2's card, served-path metrics, split file and charts (plotly JSON) from ``v2_metrics.json``.

The previous model's card numbers are kept under ``history`` (read from the installed card before it
is replaced). ``metrics.json`` keeps the v1 keys (``n_images``, ``positive_class``, ``metrics``) for
the ct-hemorrhage held-out split, measured through the SERVED path (``read_scan``), so
``tests/unit/test_model_card.py`` can reproduce it with the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from training.charts import style, write_charts
from training.v2 import trust


SLICE_NAMES = {"ct-slices": "ct-hemorrhage", "dwi": "mri-dwi"}  # the data sets' own names


def fmt(ci: dict | None) -> str:
    if not ci:
        return "n/a"
    return f"{ci['value']:.3f} [{ci['ci_low']:.3f}, {ci['ci_high']:.3f}]"


def served_ct_slices(out: Path, table, seed: int) -> dict:
    """ct-hemorrhage test slices through ``read_scan`` (no declared modality: the router decides)."""
    from sklearn.metrics import roc_auc_score

    from strokelens.reader.model.served import ServedModel
    from strokelens.reader.reading import read_scan
    from training.v2.fit import auc_ci

    model = ServedModel(out)
    rows = np.flatnonzero((table.source == "ct-slices") & (table.split == "test"))
    y, p, refused, groups = [], [], 0, []
    for i in rows:
        r = read_scan(Path(table.path[i]).read_bytes(), model, None, with_heatmap=False).result
        refused += int(r.out_of_distribution)
        y.append(int(table.label[i] == "hemorrhage"))
        p.append(r.probabilities.get("hemorrhage", 0.0))
        groups.append(table.group[i])
    ci = auc_ci(np.array(y), np.array(p), groups, seed)
    # warm latency of the served reading (1 thread): preprocess + int8 CNN + route + head + OOD + heat map
    import time

    from strokelens.reader.imaging.decode import decode_image

    single = ServedModel(out, num_threads=1)
    decoded = [decode_image(Path(table.path[i]).read_bytes()) for i in rows[:20]]
    single.read(decoded[0], "CT")
    times = []
    for d in decoded:
        t0 = time.perf_counter()
        single.read(d, "CT")
        times.append((time.perf_counter() - t0) * 1000)
    return {"n_images": len(rows), "n_groups": len(set(groups)), "labels": ["hemorrhage", "normal"],
            "positive_class": "hemorrhage", "metrics": {"roc_auc": ci}, "served_refusals": refused,
            "auc_check": float(roc_auc_score(y, p)),
            "latency_ms_served_read_warm_median_1_thread": float(np.median(times)),
            "extractor_bytes": (out / "extractor.tflite").stat().st_size}


def write_split(out: Path, table, sources: dict, seed: int) -> None:
    ct_root = Path(sources["ct-slices"])
    files = [{"file": Path(table.path[i]).relative_to(ct_root).as_posix(), "label": str(table.label[i]),
              "group": str(table.group[i]), "split": str(table.split[i])}
             for i in np.flatnonzero(table.source == "ct-slices")]
    others = {}
    for name in sorted(set(table.source)):
        if name == "ct-slices":
            continue
        root = Path(sources[name])
        others[name] = [{"file": Path(table.path[i]).relative_to(root).as_posix(), "group": str(table.group[i]),
                         "label": str(table.label[i]), "split": str(table.split[i])}
                        for i in np.flatnonzero(table.source == name)]
    (out / "split.json").write_text(json.dumps({"seed": seed, "method": "StratifiedGroupKFold per source",
                                                "test_fraction": 0.25, "files": files, "sources": others}, indent=1))


def charts(m: dict) -> list:
    out = []
    agg = m["aggregation"]
    fig = go.Figure(go.Bar(x=[r["rule"] for r in agg], y=[r["oof_study_roc_auc"] for r in agg]))
    out.append(("aggregation", "Study aggregation (grouped CV)",
                "Out-of-fold study ROC AUC of each slice->study rule on ct-ich training studies (5 folds by study).",
                style(fig, "Study aggregation: grouped-CV ROC AUC on ct-ich", "rule", "ROC AUC")))
    heads = [("CT slices", r) for r in m["heads_ct_slices"]] + [("DWI", r) for r in m["heads_dwi"]]
    fig = go.Figure()
    for task in ("CT slices", "DWI"):
        rows = [r for t, r in heads if t == task]
        fig.add_trace(go.Bar(name=task, x=[r["head"] for r in rows], y=[r["oof_roc_auc"] for r in rows]))
    out.append(("heads", "Heads compared", "Grouped OOF ROC AUC per head on the int8 embeddings (training splits).",
                style(fig, "Classical heads: grouped OOF ROC AUC", "head", "ROC AUC")))
    t = transfer_rows(m)
    names = list(t)
    fig = go.Figure(go.Bar(y=names, x=[t[k]["value"] for k in names], orientation="h",
                           error_x={"type": "data", "symmetric": False,
                                    "array": [t[k]["ci_high"] - t[k]["value"] for k in names],
                                    "arrayminus": [t[k]["value"] - t[k]["ci_low"] for k in names]}))
    fig.update_yaxes(automargin=True, autorange="reversed")
    out.append(("transfer", "CT transfer between sources",
                "CT trained on one source, tested on the other, next to both (test splits, grouped bootstrap 95% CI). "
                "'whole model': its own CNN and head trained on that source alone; 'head only': the shared CNN.",
                style(fig, "CT transfer (test splits)", "ROC AUC", "training source -> test set")))
    return out


def transfer_rows(m: dict) -> dict:
    """Every transfer figure, named "<how>: <training source> -> <test set>" (the whole-model rows when
    ``transfer_cnn`` was measured, then the shared-extractor rows)."""
    rows: dict = {}
    for source, res in (m.get("transfer_cnn") or {}).items():
        for key, value in res.items():
            test = "ct-hemorrhage slices" if key.startswith("ct_hemorrhage") else "ct-ich studies (max)"
            rows[f"whole model: {source} -> {test}"] = value
    rows.update({f"head only: {k}": v for k, v in m["test"]["transfer"].items()})
    return rows


def history_lines(previous: dict | None) -> list[str]:
    """The previous model's identity and test figures (so the gain is visible)."""
    if not previous:
        return []
    lines = ["", "## History", "", f"Previous model `{previous.get('version')}` ({previous.get('name')}), "
             "its own held-out test split:", ""]
    metrics = dict(previous.get("metrics") or {})
    figures = {**metrics.pop("values", {}), **metrics}  # a v1 card keeps its figures under "values"
    for key, value in figures.items():
        if isinstance(value, dict) and "value" in value:
            lines.append(f"- {key}: {fmt(value)}")
        elif isinstance(value, (int, float, str)):
            lines.append(f"- {key}: {value}")
    return lines


def render(out: Path, m: dict, served: dict, previous: dict | None, trust_block: dict | None = None,
           cross_fitted: dict | None = None) -> dict:
    """Write the card (JSON + markdown) and its charts; ``trust_block`` is :func:`training.v2.trust.measure`'s,
    ``cross_fitted`` :func:`training.v2.crossfit.card_block`'s (None when not measured for this build)."""
    t = m["test"]
    card = {
        "name": "StrokeLens image model v2 (CT haemorrhage, DWI ischaemic lesion)",
        "version": m["model_version"], "synthetic": bool(m.get("synthetic", False)),
        "intended_use": "Research demonstrator. Non-contrast head CT is read for intracranial haemorrhage; DWI MRI "
                        "for an acute ischaemic lesion. Ischaemic stroke is not assessed on CT; haemorrhage is not "
                        "assessed on DWI; other MRI sequences are refused. Not a medical device.",
        "labels": ["hemorrhage", "ischemic", "normal"],
        "findings": {"CT": "hemorrhage", "MR-DWI": "ischemic"},
        "data": {"sources": m.get("sources"), "notes": "ct-ich haemorrhage is traumatic (head trauma, Iraq), not "
                 "spontaneous stroke; mri-dwi has no patient ids (groups join near-duplicates only); mri-other "
                 "sequences are used only as examples to refuse."},
        "metrics": {
            "ct_ich_study_roc_auc": t["ct_ich_study_auc"], "ct_hemorrhage_slice_roc_auc": t["ct_hemorrhage_slice_auc"],
            "ct_hemorrhage_slice_roc_auc_served": served["metrics"]["roc_auc"],
            "dwi_slice_roc_auc": t["dwi_slice_auc"], "dwi_size_matched_roc_auc": t.get("dwi_size_matched_auc"),
        },
        "operating_points": m["thresholds"], "operating_points_from": m.get("operating_points_from"), "ct_ich_sens_spec_at_study_threshold": t["ct_ich_study_sens_spec_at_thr"],
        "aggregation": {"table": m["aggregation"], "chosen": m["aggregation_chosen"], "params": m["agg_params"],
                        "chosen_by": m.get("aggregation_chosen_by")},
        "heads_comparison": {"ct_slices": m["heads_ct_slices"], "dwi": m["heads_dwi"]},
        "router": {"oof_accuracy": m["router_oof_accuracy"], "test_accuracy": t["router_test_accuracy"],
                   "classes": ["CT", "MR-DWI", "MR-other"],
                   "note": "no 'not a head scan' class: no such images in the data; colour images are refused by rule"},
        "ood": {"false_refusal_test": t["false_refusal"], "mr_other_refused": t["mr_other_refused_as_dwi"],
                "method": "Ledoit-Wolf Mahalanobis distance of the int8 embedding per modality, threshold at the 99th "
                          "percentile of grouped out-of-fold training distances"},
        "shortcut_audit": {"size_aspect_only_oof_auc": m["shortcut_size_aspect_oof_auc"],
                           "dwi_size_matched": t.get("dwi_size_matched_auc"), "n_size_matched": t["dwi_size_matched_n"],
                           "fix": "every slice is cropped to the head (largest bright object; scale bars, text and "
                                  "canvas removed) before the CNN"},
        "latency_ms_served_read_warm_median_1_thread": served["latency_ms_served_read_warm_median_1_thread"],
        "assessability": {"cut": m.get("assess_cut"), "ct_hemorrhage_pass_rate": m["assess_rule_ct_slices_pass"]},
        "transfer": transfer_rows(m),
        "cnn_training": m.get("extractor_rounds"),
        "heads_served": {"CT": m.get("head_served_ct"), "MR-DWI": m.get("head_served_dwi")},
        "sens_spec_at_operating_points": {"ct_hemorrhage_slices": t["ct_hemorrhage_sens_spec"],
                                          "ct_ich_studies": t["ct_ich_study_sens_spec_at_thr"],
                                          "dwi_slices": t["dwi_sens_spec"]},
        "limitations": [
            "The shared CNN saw every source's training split, so grouped-CV figures used for choices are optimistic; "
            "test splits never reached it.",
            "ct-ich test: few studies, wide CIs.",
            "'head only' transfer rows change the classical head's training source only (shared extractor); the "
            "'whole model' rows train the CNN on one source too (first MIL round only for ct-ich).",
            "ct-ich haemorrhage is traumatic (head trauma), not spontaneous stroke.",
        ],
        "history": previous,
    }
    if trust_block:
        card.update(trust_block)
    if cross_fitted:
        card["cross_fitted"] = cross_fitted
        set_on_it = str(m.get("operating_points_from", "")).startswith("cross-fitted")  # not for older builds
        card["limitations"][0] = ("The shared CNN saw every source's training split, so grouped-CV figures used for "
                                  f"choices are optimistic (ct-ich studies: {cross_fitted['grouped_cv_with_cnn_fixed']:.3f} "
                                  "with the CNN fixed, "
                                  f"{cross_fitted['ct_ich_study_roc_auc']['value']:.3f} with it re-trained per fold); "
                                  + ("the study pooling and the operating points are set on the cross-fitted scores; "
                                     if set_on_it else "") + "test splits never reached it.")
    (out / "model_card.json").write_text(json.dumps(card, indent=1, default=float))
    lines = [f"# {card['name']}", "", f"Version `{card['version']}`.", "", card["intended_use"], "",
             *(["**Trained on synthetic phantom images: these numbers say nothing about real scans.**", ""]
               if card["synthetic"] else []),
             "## Held-out test metrics (grouped bootstrap 95% CI)", ""]
    lines += [f"- {k}: {fmt(v)}" for k, v in card["metrics"].items()]
    if cross_fitted:
        cf = cross_fitted
        lines += ["", "## Cross-fitted ct-ich study estimate (training studies, CNN re-trained per fold)", "",
                  f"- {cf['rule']} (served): study ROC AUC {fmt(cf['ct_ich_study_roc_auc'])} on "
                  f"{cf['ct_ich_study_roc_auc']['n_studies']} studies ({cf['ct_ich_study_roc_auc']['n_hemorrhage']} haemorrhage)",
                  f"- the same rule with the CNN fixed (grouped CV): {cf['grouped_cv_with_cnn_fixed']:.3f}, optimistic",
                  "- other pooling rules: " + ", ".join(f"{k} {v:.3f}" for k, v in cf["by_rule"].items() if k != cf["rule"]),
                  *(f"- {k}: {v:.3f}" for k, v in cf["other_variants"].items()),
                  *(f"- {SLICE_NAMES.get(source, source)} slices: ROC AUC {fmt(v)}"
                    for source, v in sorted(cf.get("slice_roc_auc", {}).items())),
                  f"- {cf['how']}"]
    lines += ["", "## Aggregation (grouped CV on ct-ich training studies, CNN fixed: optimistic)", ""]
    lines += [f"- {r['rule']}: OOF study ROC AUC {r['oof_study_roc_auc']:.3f}" for r in m["aggregation"]]
    lines += [f"- chosen: {m['aggregation_chosen']}, by {m.get('aggregation_chosen_by') or 'the figures above'}",
              "", "## Transfer (CT)", ""]
    lines += [f"- {k}: {fmt(v)}" for k, v in transfer_rows(m).items()]
    lines += ["", "## Operating points (sensitivity targets: CT 0.85, DWI 0.90)", "",
              "Thresholds " + ", ".join(f"{k} {v:.3f}" for k, v in m["thresholds"].items()) + ", set on "
              f"{m.get('operating_points_from') or 'out-of-fold training scores'}. "
              "Test split:", ""]
    lines += [f"- {k}: sensitivity {v[0]:.2f}, specificity {v[1]:.2f}" for k, v in card["sens_spec_at_operating_points"].items()]
    rounds = m.get("extractor_rounds") or {}
    if "round1" in rounds and rounds.get("bag_k"):
        lines += ["", "## CNN training (multiple-instance learning)", "",
                  f"- ct-ich studies learnt as bags: top-{rounds['bag_k']} mean of slice logits against the study "
                  f"label; grouped-CV study ROC AUC with the CNN fixed {rounds['round1']['oof_study_auc']:.3f}"]
    elif "round1" in rounds:
        lines += ["", "## CNN training (multiple-instance learning rounds, chosen on training studies)", "",
                  f"- round 1 ({'share targets' if rounds.get('study_targets') == 'share' else 'naive study labels'}): "
                  f"OOF study ROC AUC {rounds['round1']['oof_study_auc']:.3f}",
                  f"- round 2 (top-n re-labelled): OOF study ROC AUC {rounds['round2']['oof_study_auc']:.3f}",
                  f"- kept: round {rounds['chosen']}"]
    served_heads = [(k, v) for k, v in card["heads_served"].items() if v]
    if served_heads:
        lines += ["", "## Heads served", ""]
        lines += [f"- {k}: {v['served']} (best OOF: {v['best_oof']}, lead {v['lead_of_best']:+.3f}, margin {v['margin']})"
                  for k, v in served_heads]
    lines += ["", "## Router, OOD, shortcut", "",
              f"- router accuracy: OOF {m['router_oof_accuracy']:.3f}, test {t['router_test_accuracy']:.3f}",
              f"- false refusals (test): {t['false_refusal']}", f"- other MRI refused: {t['mr_other_refused_as_dwi']}",
              f"- size/aspect alone predicts the DWI label with OOF AUC {m['shortcut_size_aspect_oof_auc']:.3f}"]
    lines += trust.markdown(trust_block) if trust_block else []
    lines += ["", "## Limitations", ""] + [f"- {x}" for x in card["limitations"]]
    lines += history_lines(previous)
    (out / "model_card.md").write_text("\n".join(lines) + "\n")
    write_charts(out / "charts", charts(m) + (trust.charts(trust_block) if trust_block else []))
    return card
