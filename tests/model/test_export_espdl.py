"""``tinysplit export --format espdl`` through Espressif's real esp-ppq quantizer.

Opt-in: skipped unless the ``espdl`` extra (esp-ppq + torch, ~1.2 GB) is installed; run it with
``tox -e espdl``. One module-scoped export of a 3-stage plan is shared by the checks; the
``paper`` strategy cuts this small model inside its conv body (the optimal split puts nearly all
of it on the first board), so every stage gives esp-ppq convolutions to quantize.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from tinysplit.cli import main
from tinysplit.model.graph import hash_bytes

# Imports torch too; esp-ppq prints its banner here, once per process.
pytest.importorskip("esp_ppq")

SMALL = "mobilenet_v1:alpha=0.25,input_size=32"
STAGES = 3
# esp-ppq's ``parser/espdl/helper.py:save``: magic "EDL2", u32 encrypted flag, u32 payload
# length, 4 zero bytes, then the flatbuffer payload.
EDL_HEADER = struct.Struct("<4sII4s")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Export a 3-stage plan once; return the output directory and what ``--json`` printed."""
    work = tmp_path_factory.mktemp("espdl")
    plan = work / "plan.json"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        argv = ["partition", "--model", SMALL, "--strategy", "paper", "--devices", str(STAGES)]
        assert main([*argv, "--out", str(plan), "--json"]) == 0
    out = work / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        argv = ["export", "--plan", str(plan), "--out", str(out), "--format", "espdl"]
        assert main([*argv, "--json"]) == 0
    return out, stdout.getvalue()


@pytest.fixture(scope="module")
def export_dir(exported: tuple[Path, str]) -> Path:
    return exported[0]


@pytest.fixture(scope="module")
def manifest(export_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((export_dir / "manifest.json").read_text())
    return data


def test_json_output_is_only_the_manifest(
    exported: tuple[Path, str], manifest: dict[str, Any]
) -> None:
    # esp-ppq prints a banner, pass logs and snapshots; none of it may reach our stdout.
    assert json.loads(exported[1]) == manifest


def test_manifest_lists_every_stage_of_the_plan(manifest: dict[str, Any]) -> None:
    assert manifest["format"] == "espdl"
    assert manifest["model"] == SMALL
    stages = manifest["stages"]
    assert [s["stage"] for s in stages] == list(range(1, STAGES + 1))
    assert [s["file"] for s in stages] == [f"stage{k}.espdl" for k in range(1, STAGES + 1)]
    assert stages[0]["first_layer"] == 1
    for before, after in itertools.pairwise(stages):
        assert after["first_layer"] == before["last_layer"] + 1
        assert after["input"]["name"] == before["output"]["name"]
    assert [(s["first_layer"], s["last_layer"]) for s in stages] == [
        (s["first_layer"], s["last_layer"]) for s in manifest["plan"]["stages"]
    ]


def test_each_stage_file_has_the_edl2_header_and_manifest_hash(
    export_dir: Path, manifest: dict[str, Any]
) -> None:
    for stage in manifest["stages"]:
        data = (export_dir / stage["file"]).read_bytes()
        magic, encrypted, payload_bytes, pad = EDL_HEADER.unpack_from(data)
        assert magic == b"EDL2"
        assert encrypted == 0
        assert payload_bytes == len(data) - EDL_HEADER.size > 0
        assert pad == bytes(4)
        assert stage["sha256"] == hash_bytes(data)


def test_each_stage_is_the_planned_slice(export_dir: Path, manifest: dict[str, Any]) -> None:
    # esp-ppq's human-readable dump opens with the graph's inputs and names its output in
    # ``return``. (Shapes are not compared: esp-ppq keeps NCHW for an input that feeds no conv.)
    for stage in manifest["stages"]:
        info = (export_dir / stage["file"]).with_suffix(".info").read_text()
        graph_inputs = info.split("\n) ", 1)[0]
        assert f"%{stage['input']['name']}[INT16, " in graph_inputs
        assert f"  return %{stage['output']['name']}\n" in info


def test_only_the_manifest_and_esp_ppq_files_are_written(export_dir: Path) -> None:
    # No private ONNX copy or temporary directory is left behind; esp-ppq adds its .info/.json.
    expected = {"manifest.json"} | {
        f"stage{k}.{ext}" for k in range(1, STAGES + 1) for ext in ("espdl", "info", "json")
    }
    assert {p.name for p in export_dir.iterdir()} == expected
    assert sorted(p.name for p in export_dir.parent.iterdir()) == ["out", "plan.json"]
