"""Human-readable rendering of a :class:`Plan` (imported lazily by the CLI; needs ``rich``)."""

from __future__ import annotations

from rich.table import Table

from tinysplit.partition.deployment import Deployment
from tinysplit.partition.period import pair_weights
from tinysplit.partition.plan import Plan


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f}"


def plan_table(plan: Plan) -> Table:
    """One row per device: layer range, memory (MB = 10^6 bytes) by part and kind, tensor, times."""
    capacity = plan.profile.capacities()
    kinds = [k for k in capacity if k != "total"]  # the paper's single budget is the total
    table = Table(
        title=(
            f"{plan.model}: {plan.strategy} split on {plan.devices} x {plan.profile.name} "
            f"over {plan.transport} (objective {plan.objective})"
        ),
        caption=(
            f"bottleneck {plan.bottleneck_s:.3f} s | latency {plan.latency_s:.3f} s | largest "
            f"tensor sent {plan.max_sent_bytes:,} B | link {plan.link_rate_bps / 1e3:g} kbit/s\n"
            "memory in MB (10^6 B); capacity "
            + ", ".join(f"{k} {_mb(v)}" for k, v in capacity.items())
            + f"; frames of {plan.transport}"
        ),
    )
    columns = ["dev", "layers", "weights", "activ.", "buffers", "code", "total"]
    columns += kinds
    columns += ["out NHWC", "out B", "frames", "compute s", "send s"]
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True)
    for s in plan.stages:
        table.add_row(
            str(s.device),
            f"{s.first_layer}-{s.last_layer}",
            _mb(s.weights_bytes),
            _mb(s.peak_activation_bytes),
            _mb(s.transport_buffer_bytes),
            _mb(s.code_bytes),
            _mb(s.total_memory_bytes),
            *(_mb(s.memory_by_kind[k]) for k in kinds),
            "x".join(map(str, s.outgoing.nhwc_shape[1:])),
            f"{s.outgoing.size_bytes:,}",
            str(s.outgoing.frames[plan.transport]),
            f"{s.estimated_compute_s:.3f}",
            f"{s.estimated_send_s:.3f}",
        )
    return table


def deployment_table(plan: Plan) -> Table:
    """One row per stage of ``plan.deployment``: boards (replicas), window of its link."""
    deployment = plan.deployment
    assert deployment is not None, "the plan has no deployment"
    names = deployment.board_names
    optimized = ", ".join(deployment.optimized) or "nothing"
    table = Table(
        title=f"deployment on {len(names)} boards (optimized: {optimized})",
        caption=(
            f"modelled period {deployment.period_s:.3f} s per inference "
            f"({1.0 / deployment.period_s:.4f} inf/s); replicas take inferences round-robin"
        ),
    )
    for column in ("stage", "layers", "boards", "replicas", "window out", "RSSI out dBm"):
        table.add_column(column, justify="right", no_wrap=True)
    for k, (stage, group) in enumerate(zip(plan.stages, deployment.boards, strict=True)):
        last = k == len(plan.stages) - 1
        rssi = "" if last else " ".join(f"{v:.0f}" for v in _pair_rssi(deployment, k))
        table.add_row(
            str(stage.device),
            f"{stage.first_layer}-{stage.last_layer}",
            ", ".join(names[b] for b in group),
            str(len(group)),
            "" if last else str(deployment.windows[k]),
            rssi,
        )
    return table


def _pair_rssi(deployment: Deployment, boundary: int) -> list[float]:
    """RSSI of the board pairs that carry tensors across ``boundary`` (round-robin pairs)."""
    senders, receivers = deployment.boards[boundary], deployment.boards[boundary + 1]
    weights = pair_weights(len(senders), len(receivers))
    return [
        deployment.rssi_dbm[a][b]
        for j, a in enumerate(senders)
        for k, b in enumerate(receivers)
        if weights[j, k] > 0
    ]
