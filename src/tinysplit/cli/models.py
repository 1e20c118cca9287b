"""Model and partition commands: ``model show``, ``partition``, ``export``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tinysplit.cli.common import emit_json, mb

log = logging.getLogger(__name__)


def cmd_model_show(args: argparse.Namespace, console: Console) -> int:
    """Print the layers of a model: op, NHWC output, parameters, MACs and cut points."""
    from tinysplit.model import load_model
    from tinysplit.model.graph import nhwc

    graph = load_model(args.model)
    cuts = set(graph.cut_points)
    sqnr = _layer_sqnr(graph, args.sqnr) if args.sqnr else {}
    layers: list[dict[str, Any]] = [
        {
            "layer": layer.index + 1,
            "name": layer.name,
            "op": layer.op,
            "output_shape_nhwc": list(layer.nhwc_shape),
            "output_bytes": layer.output_bytes,
            "params": layer.param_count,
            "param_bytes": layer.param_bytes,
            "macs": layer.macs,
            "cut_after": layer.index in cuts,
        }
        | ({"sqnr_db": sqnr[layer.name]} if sqnr else {})
        for layer in graph.layers
    ]
    summary: dict[str, Any] = {
        "model": graph.name,
        "hash": graph.source_hash,
        "input_shape_nhwc": list(nhwc(graph.input_shape)),
        "layers": len(graph),
        "conv_layers": sum(layer.op == "Conv" for layer in graph.layers),
        "params": graph.param_count,
        "param_bytes": graph.param_bytes,
        "macs": graph.macs,
        "cut_points": len(cuts),
    }
    if args.json:
        emit_json(summary | {"layer_table": layers})
        return 0
    table = Table(title=f"{graph.name}: {len(graph)} layers, {summary['conv_layers']} Conv")
    columns = ["#", "name", "op", "output (NHWC)", "out KB", "params", "MACs", "cut"]
    for column in columns + (["SQNR dB"] if sqnr else []):
        table.add_column(column, justify="left" if column in ("name", "op") else "right")
    for row in layers:
        table.add_row(
            str(row["layer"]),
            row["name"],
            row["op"],
            "x".join(map(str, row["output_shape_nhwc"][1:])),
            f"{row['output_bytes'] / 1e3:.1f}",
            f"{row['params']:,}",
            f"{row['macs']:,}",
            "yes" if row["cut_after"] else "",
            *([f"{row['sqnr_db']:.1f}"] if sqnr else []),
        )
    console.print(table)
    console.print(
        f"input {'x'.join(map(str, summary['input_shape_nhwc'][1:]))} (NHWC) | "
        f"params {graph.param_count:,} ({mb(graph.param_bytes)} MB int16) | "
        f"{graph.macs / 1e6:.1f} M MACs | {len(cuts)} cut points"
    )
    return 0


def _layer_sqnr(graph: Any, samples: int) -> dict[str, float]:
    """Per-layer SQNR (dB) of the int16 model, calibrated on ``samples`` images (seed 0) and
    measured on one held-out image (seed 1)."""
    from tinysplit.model.execute import layer_sqnr
    from tinysplit.model.quantize import calibrate, sample_inputs

    qmodel = calibrate(graph, sample_inputs(graph, samples, seed=0))
    return dict(layer_sqnr(qmodel, sample_inputs(graph, 1, seed=1)))


# ------------------------------------------------------------------------------------ partition


def cmd_partition(args: argparse.Namespace, console: Console) -> int:
    """Split a model into stages and print (and optionally save) the plan.

    With ``--optimize``, also choose placement, windows and replicas for the boards of ``--rssi``
    (:func:`tinysplit.partition.joint.optimize`); the plan then carries a deployment.
    """
    from tinysplit.errors import ConfigError
    from tinysplit.model import load_model
    from tinysplit.partition import partition, plan_from_cuts

    graph = load_model(args.model)
    rate = None if args.link_rate_kbps is None else args.link_rate_kbps * 1e3
    if args.optimize is None:
        given = [flag for flag, value, default in (
            ("--rssi", args.rssi, None), ("--link-profile", args.link_profile, None),
            ("--mode", args.mode, "reliable"), ("--window", args.window, 6),
            ("--replicate-for", args.replicate_for, "throughput"),
        ) if value != default]  # fmt: skip
        if given:
            raise ConfigError(f"{given[0]} applies to --optimize only")
    if args.optimize is not None:
        plan = _optimized_plan(args, graph)
    elif args.cuts is not None:
        plan = plan_from_cuts(
            graph, args.cuts, profile=args.profile, transport=args.transport, link_rate_bps=rate
        )
    else:
        plan = partition(
            graph,
            strategy=args.strategy,
            devices=args.devices,
            profile=args.profile,
            transport=args.transport,
            objective=args.objective,
            link_rate_bps=rate,
        )
    if args.out is not None:
        plan.save(args.out)
        log.info("wrote %s", args.out)
    if args.json:
        emit_json(plan.to_dict())
        return 0
    from tinysplit.partition.render import deployment_table, plan_table

    console.print(plan_table(plan))
    if plan.deployment is not None:
        console.print(deployment_table(plan))
    if args.out is not None:
        console.print(f"plan written to {args.out}")
    return 0


def _optimized_plan(args: argparse.Namespace, graph: Any) -> Any:
    """The plan of ``partition --optimize``: boards from ``--rssi`` (or ``--devices`` on a desk)."""
    from tinysplit.errors import ConfigError
    from tinysplit.partition.joint import optimize
    from tinysplit.partition.rssi import load_rssi_matrix
    from tinysplit.sim.layout import builtin_layouts

    if args.objective != "bottleneck" or args.link_rate_kbps is not None:
        raise ConfigError(
            "--optimize prices every link from its RSSI: drop --objective and --link-rate-kbps"
        )
    # A layout name (or no --rssi: the desk) places --devices boards; a file brings its own.
    layout = args.rssi is None or (args.rssi in builtin_layouts() and not Path(args.rssi).exists())
    if layout and args.devices is None:
        raise ConfigError(
            "--optimize needs the boards: --rssi FILE (their pairwise RSSI), or --devices N "
            "with a layout name (default: N boards 0.5 m apart)"
        )
    rssi = load_rssi_matrix(
        args.rssi or "desk", boards=args.devices if layout else None, transport=args.transport
    )
    return optimize(
        graph,
        rssi,
        optimizations=args.optimize,
        transport=args.transport,
        device_profile=args.profile,
        link_profile=args.link_profile,
        mode=args.mode,
        window=args.window,
        strategy=args.strategy,
        # With a layout, --devices counts the boards: replication may use fewer stages.
        devices=None if layout and "replication" in args.optimize else args.devices,
        cuts=args.cuts,
        replicate_for=args.replicate_for,
    )


# --------------------------------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace, console: Console) -> int:
    """Write one model file per stage of a plan, plus a manifest."""
    from tinysplit.model.export import export_plan
    from tinysplit.partition import Plan

    plan = Plan.load(args.plan)
    manifest = export_plan(
        plan,
        args.out,
        fmt=args.format,
        samples=args.samples,
        seed=args.seed,
        progress=None if args.json else console,
    )
    if args.json:
        emit_json(manifest)
        return 0
    table = Table(title=f"exported {len(manifest['stages'])} stages to {args.out}")
    for column in ("stage", "layers", "file", "input", "in exp", "output", "out exp"):
        table.add_column(column)
    for stage in manifest["stages"]:
        table.add_row(
            str(stage["stage"]),
            f"{stage['first_layer']}-{stage['last_layer']}",
            stage["file"],
            stage["input"]["name"],
            str(stage["input"]["exponent"]),
            stage["output"]["name"],
            str(stage["output"]["exponent"]),
        )
    console.print(table)
    return 0
