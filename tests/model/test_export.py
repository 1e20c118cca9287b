"""Exporting a plan: one ONNX per stage, a manifest, atomic output and clear errors."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tinysplit.errors import ConfigError, MissingExtraError
from tinysplit.model import export as export_module
from tinysplit.model import load_model
from tinysplit.model.export import export_plan
from tinysplit.model.quantize import calibrate, sample_inputs
from tinysplit.partition import Plan, partition

SMALL = "mobilenet_v1:alpha=0.25,input_size=32"


@pytest.fixture(scope="module")
def plan() -> Plan:
    return partition(load_model(SMALL), strategy="optimal", devices=3, objective="bytes")


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])


def test_onnx_stages_chain_to_the_whole_model(plan: Plan, tmp_path: Path) -> None:
    out = tmp_path / "stages"
    manifest = export_plan(plan, out, samples=4)
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert [s["file"] for s in manifest["stages"]] == ["stage1.onnx", "stage2.onnx", "stage3.onnx"]
    assert [(s["first_layer"], s["last_layer"]) for s in manifest["stages"]] == [
        (stage.first_layer, stage.last_layer) for stage in plan.stages
    ]
    graph = load_model(SMALL)
    exponents = calibrate(graph, sample_inputs(graph, 4)).exponents
    x = sample_inputs(graph, 1, seed=7)
    value = x
    for stage in manifest["stages"]:
        path = out / stage["file"]
        assert stage["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert stage["input"]["exponent"] == exponents[stage["input"]["name"]]
        assert stage["output"]["exponent"] == exponents[stage["output"]["name"]]
        value = _run(path, value)
    whole = tmp_path / "whole"
    one_stage = partition(graph, strategy="optimal", devices=1)
    export_plan(one_stage, whole, samples=2)
    np.testing.assert_allclose(value, _run(whole / "stage1.onnx", x), rtol=1e-6)
    assert manifest["stages"][-1]["output"]["shape_nhwc"] == [1, 10]


def test_existing_non_empty_directory_is_refused(plan: Plan, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        export_plan(plan, tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "precious"


def test_an_empty_existing_directory_is_used(plan: Plan, tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    export_plan(plan, out, samples=2)
    assert (out / "manifest.json").is_file()


def test_failure_midway_leaves_nothing_behind(
    plan: Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = export_module.slice_onnx
    calls = []

    def failing(graph, first, last):  # type: ignore[no-untyped-def]
        calls.append(first)
        if len(calls) == 2:
            raise ConfigError("disk on fire")
        return real(graph, first, last)

    monkeypatch.setattr(export_module, "slice_onnx", failing)
    with pytest.raises(ConfigError, match="disk on fire"):
        export_plan(plan, tmp_path / "out", samples=2)
    assert list(tmp_path.iterdir()) == []


def test_plan_for_another_model_is_refused(plan: Plan, tmp_path: Path) -> None:
    other = dataclasses.replace(plan, model_hash="0" * 64)
    with pytest.raises(ConfigError, match="model hash mismatch"):
        export_plan(other, tmp_path / "out")


def test_unknown_format(plan: Plan, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown export format 'tflite'"):
        export_plan(plan, tmp_path / "out", fmt="tflite")


@pytest.mark.skipif(
    importlib.util.find_spec("esp_ppq") is not None, reason="esp-ppq is installed here"
)
def test_espdl_without_the_extra_names_it(plan: Plan, tmp_path: Path) -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'tinysplit\[espdl\]'"):
        export_plan(plan, tmp_path / "out", fmt="espdl")
    assert not (tmp_path / "out").exists()
