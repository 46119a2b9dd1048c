"""GET /contract describes what the installed model reads on each modality, in the reader's own words,
so the site names no finding itself; a v1 manifest answers the same shape."""

from __future__ import annotations

from strokelens.core.catalogue import Catalogue
from strokelens.core.contract import model_contract
from strokelens.core.findings import modality_findings, not_assessed_sentence, stroke_type
from strokelens.core.schema import Manifest
from strokelens.core.settings import PACKAGED_MODEL_DIR

V2_RAW = {"version": "abc", "model": "v2", "labels": ["hemorrhage", "normal"], "input_size": 128,
          "modalities": ["CT", "MR"], "positive_label": "hemorrhage",
          "findings": {"CT": {"finding": "hemorrhage", "threshold": 0.6, "not_assessed": ["ischemic"]},
                       "MR-DWI": {"finding": "ischemic", "threshold": 0.4, "not_assessed": ["hemorrhage"]}},
          "aggregation": {"rule": "attention", "params": {}, "study_threshold": 0.3}}


def test_v2_contract_lists_each_modality_with_what_is_and_is_not_assessed():
    model = model_contract(Manifest.from_dict(V2_RAW))
    assert model["generation"] == "v2"
    assert model["findings"] == ["hemorrhage", "ischemic", "normal"]
    reads = {r["modality"]: r for r in model["reads"]}
    assert reads["CT"]["finding"] == "hemorrhage" and reads["CT"]["not_assessed"] == ["ischemic"]
    assert reads["CT"]["stroke_type"] == "haemorrhagic" and reads["MR-DWI"]["stroke_type"] == "ischaemic"
    assert reads["CT"]["not_assessed_sentence"] == (
        "Ischaemic stroke (acute ischaemic lesion) is not assessed on non-contrast head CT by this model.")
    assert reads["MR-DWI"]["not_assessed_sentence"].startswith("Haemorrhage (intracranial haemorrhage) is not assessed on")
    assert model["finding_names"]["hemorrhage"] == "intracranial haemorrhage"
    assert model["aggregation"]["rule"] == "attention" and "attention" in model["aggregation"]["description"]
    assert set(model["stroke_types"].values()) == {"haemorrhagic", "ischaemic", "no finding", "not assessed"}


def test_v1_contract_keeps_its_shape():
    raw = {"version": "v1", "labels": ["hemorrhage", "normal"], "input_size": 128, "positive_label": "hemorrhage"}
    model = model_contract(Manifest.from_dict(raw))
    assert model["generation"] == "v1" and model["findings"] == ["hemorrhage", "normal"]
    assert model["reads"] == modality_findings(raw, ("hemorrhage", "normal"))
    assert model["reads"][0]["modality"] == "CT" and model["reads"][0]["not_assessed"] == []


def test_stroke_type_follows_the_assessed_finding():
    assert stroke_type("hemorrhage", "hemorrhage") == "haemorrhagic"
    assert stroke_type("ischemic", "ischemic") == "ischaemic"
    assert stroke_type("hemorrhage", "normal") == "no finding"
    assert stroke_type(None, None) == stroke_type("hemorrhage", None) == "not assessed"


def test_the_installed_models_contract_says_what_its_reader_says():
    """The contract's sentence is the one the reader attaches to each result (FINDING_NOT_ASSESSED)."""
    manifest = Catalogue(PACKAGED_MODEL_DIR).load_manifest()
    model = model_contract(manifest)
    assert manifest.positive_label in model["findings"] and model["version"] == manifest.version
    if not manifest.raw.get("findings"):
        return
    from strokelens.reader.model.served import ServedModel

    served = ServedModel(PACKAGED_MODEL_DIR)
    assert served.v2 is not None
    for read in model["reads"]:
        spec = served.v2.findings[read["modality"]]
        assert read["finding"] == spec.finding and read["not_assessed"] == list(spec.not_assessed)
        assert read["not_assessed_sentence"] == spec.not_assessed_sentence() == not_assessed_sentence(
            read["modality"], read["not_assessed"])
