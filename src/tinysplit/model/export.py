"""Export a plan: one model file per stage plus ``manifest.json``.

ONNX export writes each stage as built from the graph IR (BatchNormalization folded). The manifest
records, for each stage, its layers, file hash and the int16 exponent of the tensor it receives and
the one it sends, from tinysplit's own ESP-DL-style calibration, so a receiver can requantize when
the two sides of a cut disagree.

``espdl`` export quantizes each stage with Espressif's esp-ppq (the ``espdl`` extra), calibrating
stage k on the float activations that stages before k produce from the same calibration images;
esp-ppq also leaves its ``stageK.info`` and ``stageK.json`` reports beside each ``.espdl``. esp-ppq
keeps a final Softmax in float, so the last ``.espdl`` of a MobileNet outputs float32 probabilities
while the manifest records tinysplit's int16 exponent for that tensor.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from tinysplit import __version__
from tinysplit.errors import ConfigError, MissingExtraError, ModelError
from tinysplit.fileio import current_umask
from tinysplit.model.execute import run_float
from tinysplit.model.graph import Graph, hash_bytes, nhwc
from tinysplit.model.quantize import calibrate, sample_inputs
from tinysplit.model.slicing import slice_onnx
from tinysplit.model.zoo import load_model

if TYPE_CHECKING:
    from rich.console import Console

    from tinysplit.partition import Plan

log = logging.getLogger(__name__)

MANIFEST_SCHEMA_VERSION = 1
FORMATS = ("onnx", "espdl")
#: Default calibration of the exported slices: images of ``sample_inputs`` and their seed. The
#: hardware testbed quantizes its int16 reference (and the emulated boards theirs) the same way.
CALIBRATION_SAMPLES = 16
CALIBRATION_SEED = 0


def export_plan(
    plan: Plan,
    out: str | Path,
    *,
    fmt: str = "onnx",
    samples: int = CALIBRATION_SAMPLES,
    seed: int = CALIBRATION_SEED,
    progress: Console | None = None,
) -> dict[str, Any]:
    """Write every stage of ``plan`` to the new directory ``out`` and return the manifest.

    The directory is written atomically: files go to a temporary sibling that is renamed into
    place at the end, so a failed export leaves nothing behind.

    Args:
        plan: the plan whose model is reloaded (its hash must match the plan's).
        out: output directory; must not exist or be empty.
        fmt: ``"onnx"`` or ``"espdl"``.
        samples: number of calibration images.
        seed: seed of the calibration images.
        progress: console to show a progress bar on, or None.

    Raises:
        ConfigError: bad format, non-empty output directory, model hash mismatch.
        MissingExtraError: ``espdl`` without esp-ppq installed.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"output directory {str(out)!r} exists and is not empty")
    if fmt == "espdl" and samples < 2:
        raise ConfigError("--format espdl needs at least 2 calibration samples (esp-ppq's minimum)")
    quantizer = _espdl_quantizer() if fmt == "espdl" else None
    graph = load_model(plan.model)
    if graph.source_hash != plan.model_hash:
        raise ConfigError(
            f"plan was made for a different {plan.model!r} (model hash mismatch): re-run partition"
        )
    images = sample_inputs(graph, samples, seed)
    qmodel = calibrate(graph, images)
    ranges = [(stage.first_layer - 1, stage.last_layer - 1) for stage in plan.stages]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {str(out.parent)!r}: {exc.strerror}") from exc
    with _atomic_dir(out) as tmp, _progress(progress, len(ranges)) as advance:
        boundary_values = _stage_inputs(graph, images, ranges) if quantizer else None
        stages = []
        for k, (first, last) in enumerate(ranges, start=1):
            model = slice_onnx(graph, first, last)
            name = f"stage{k}.{fmt}"
            if quantizer is None:
                onnx.save(model, tmp / name)
            else:
                assert boundary_values is not None
                quantizer(model, boundary_values[k - 1], tmp / name)
            stages.append(_stage_entry(graph, qmodel.exponents, k, first, last, tmp / name))
            advance()
        manifest = {
            "schema_version": MANIFEST_SCHEMA_VERSION,
            "tinysplit_version": __version__,
            "format": fmt,
            "model": plan.model,
            "model_hash": plan.model_hash,
            "calibration": {"samples": samples, "seed": seed, "scheme": "esp32s3-int16-pow2"},
            "plan": plan.to_dict(),
            "stages": stages,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _stage_entry(
    graph: Graph, exponents: Any, k: int, first: int, last: int, path: Path
) -> dict[str, Any]:
    def tensor(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "shape_nhwc": list(nhwc(graph.shapes[name])),
            "exponent": int(exponents[name]),
        }

    return {
        "stage": k,
        "first_layer": first + 1,
        "last_layer": last + 1,
        "file": path.name,
        "sha256": hash_bytes(path.read_bytes()),
        "input": tensor(graph.boundary_tensor(first - 1)),
        "output": tensor(graph.boundary_tensor(last)),
    }


def _stage_inputs(
    graph: Graph, images: np.ndarray, ranges: list[tuple[int, int]]
) -> list[list[np.ndarray]]:
    """Float activations entering each stage, one per calibration image."""
    per_stage: list[list[np.ndarray]] = [[] for _ in ranges]
    for image in images:
        tensors = run_float(graph, image[None], collect=True)
        assert isinstance(tensors, dict)
        for k, (first, _) in enumerate(ranges):
            per_stage[k].append(np.asarray(tensors[graph.boundary_tensor(first - 1)], np.float32))
    return per_stage


def _espdl_quantizer() -> Any:
    """Return a function quantizing one ONNX stage to ``.espdl`` with esp-ppq (int16, S3)."""
    # esp-ppq prints a banner on import and its pass log, snapshots and logger lines (its logger
    # keeps the sys.stdout of import time) to stdout, and tqdm bars to stderr. Keep all of it off
    # our streams (``export --json`` prints the manifest on stdout) and log it at debug level.
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter):
            import torch
            from esp_ppq.api import espdl_quantize_onnx
    except ImportError as exc:
        raise MissingExtraError(
            "--format espdl needs esp-ppq and torch: pip install 'tinysplit[espdl]'"
        ) from exc

    def quantize(model: onnx.ModelProto, calib: list[np.ndarray], dest: Path) -> None:
        with tempfile.TemporaryDirectory() as work:
            # esp-ppq rewrites the ONNX file it is given, so hand it a private copy.
            src = Path(work) / "stage.onnx"
            onnx.save(model, src)
            # Writable float32 copies: torch.from_numpy warns on read-only arrays.
            batches = [torch.from_numpy(np.array(x, dtype=np.float32)) for x in calib]
            try:
                with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
                    espdl_quantize_onnx(
                        onnx_import_file=str(src),
                        espdl_export_file=str(dest),
                        calib_dataloader=batches,
                        calib_steps=len(batches),
                        input_shape=list(batches[0].shape),
                        target="esp32s3",
                        num_of_bits=16,
                        collate_fn=lambda b: b.to(torch.float32),
                        device="cpu",
                        error_report=False,
                        verbose=0,
                    )
            except Exception as exc:
                raise ModelError(f"esp-ppq failed on {dest.name}: {exc}") from exc
            finally:
                log.debug("esp-ppq output for %s:\n%s", dest.name, chatter.getvalue())
                chatter.seek(0)
                chatter.truncate()

    return quantize


@contextlib.contextmanager
def _atomic_dir(out: Path) -> Iterator[Path]:
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        tmp.chmod(0o777 & ~current_umask())
    except OSError as exc:
        raise ConfigError(f"cannot write to {str(out.parent)!r}: {exc.strerror}") from exc
    try:
        yield tmp
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def _progress(console: Console | None, total: int) -> Iterator[Any]:
    if console is None:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("exporting stages", total=total)
        yield lambda: bar.advance(task)
