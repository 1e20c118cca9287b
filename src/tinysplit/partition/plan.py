"""Plans: how a model is split over boards, with memory and timing per stage, as versioned JSON.

A :class:`Plan` is what ``tinysplit partition --json`` prints and what pipelines, the simulator and
the firmware exporter consume. Layer numbers in a plan are 1-based and inclusive, like the paper's
Table I. The last stage's outgoing tensor is the model output: it is reported (the board returns
the result) but not sent to another board, so its send time is 0.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tinysplit.errors import ConfigError
from tinysplit.fileio import current_umask
from tinysplit.partition.deployment import Deployment
from tinysplit.partition.profiles import TRANSPORTS, DeviceProfile

#: Version of the plan JSON layout; bumped on any incompatible change.
SCHEMA_VERSION = 1
#: Partitioning strategies.
STRATEGIES = ("paper", "greedy", "optimal")
#: Every strategy a plan can record: the partitioners plus ``manual`` (cuts given by the user).
PLAN_STRATEGIES = (*STRATEGIES, "manual")
#: What the optimal strategy minimises once the device count is fixed.
OBJECTIVES = ("bottleneck", "bytes")

_T = TypeVar("_T")


def _get(data: Mapping[str, Any], key: str, kind: type[_T], where: str) -> _T:
    """``data[key]`` checked to be of ``kind`` (ints accepted for floats, bools never for ints)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"malformed plan: {where} must be an object")
    if key not in data:
        raise ConfigError(f"malformed plan: {where} has no {key!r}")
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(
            f"malformed plan: {where}.{key} must be {kind.__name__}, got {type(value).__name__}"
        )
    return value


def _int_map(data: Mapping[str, Any], key: str, where: str) -> dict[str, int]:
    table = _get(data, key, dict, where)
    return {str(k): _get(table, k, int, f"{where}.{key}") for k in table}


@dataclass(frozen=True, slots=True, kw_only=True)
class OutgoingTensor:
    """The tensor a stage produces for the next board.

    Attributes:
        name: tensor name in the model.
        nhwc_shape: shape in the boards' NHWC order (batch 1).
        size_bytes: int16 size in bytes.
        frames: frames needed to carry it, per transport.
    """

    name: str
    nhwc_shape: tuple[int, ...]
    size_bytes: int
    frames: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "name": self.name,
            "nhwc_shape": list(self.nhwc_shape),
            "size_bytes": self.size_bytes,
            "frames": dict(self.frames),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "outgoing") -> OutgoingTensor:
        """Inverse of :meth:`to_dict`; raises :class:`ConfigError` when malformed."""
        shape = _get(data, "nhwc_shape", list, where)
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise ConfigError(f"malformed plan: {where}.nhwc_shape must hold positive integers")
        return cls(
            name=_get(data, "name", str, where),
            nhwc_shape=tuple(shape),
            size_bytes=_get(data, "size_bytes", int, where),
            frames=_int_map(data, "frames", where),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """One board's slice of the model.

    Attributes:
        device: 1-based position of the board in the pipeline.
        first_layer: first layer on this board (1-based, inclusive).
        last_layer: last layer on this board (1-based, inclusive).
        first_layer_name: node name of ``first_layer``.
        last_layer_name: node name of ``last_layer``.
        weights_bytes: stored parameters in bytes.
        code_bytes: firmware image in bytes.
        peak_activation_bytes: peak activation memory in bytes (see ``partition.memory``).
        transport_buffer_bytes: radio data buffers in bytes.
        total_memory_bytes: the sum of the four parts above.
        memory_by_kind: bytes per memory kind (``flash``/``psram``/``sram``, or ``total``).
        outgoing: the tensor this stage produces.
        estimated_compute_s: modelled compute time in seconds.
        estimated_send_s: modelled time to send ``outgoing`` at the plan's link rate (0 for the
            last stage).
    """

    device: int
    first_layer: int
    last_layer: int
    first_layer_name: str
    last_layer_name: str
    weights_bytes: int
    code_bytes: int
    peak_activation_bytes: int
    transport_buffer_bytes: int
    total_memory_bytes: int
    memory_by_kind: Mapping[str, int]
    outgoing: OutgoingTensor
    estimated_compute_s: float
    estimated_send_s: float

    def __post_init__(self) -> None:
        if not 1 <= self.first_layer <= self.last_layer:
            raise ConfigError(
                f"malformed plan: device {self.device} has layer range "
                f"{self.first_layer}-{self.last_layer}"
            )
        sizes = (self.weights_bytes, self.code_bytes, self.peak_activation_bytes,
                 self.transport_buffer_bytes, self.total_memory_bytes)  # fmt: skip
        if min(sizes) < 0 or min(self.estimated_compute_s, self.estimated_send_s) < 0:
            raise ConfigError(f"malformed plan: device {self.device} has a negative size or time")

    @property
    def stage_s(self) -> float:
        """Compute plus send time in seconds: this stage's share of the pipeline period."""
        return self.estimated_compute_s + self.estimated_send_s

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "device": self.device,
            "first_layer": self.first_layer,
            "last_layer": self.last_layer,
            "first_layer_name": self.first_layer_name,
            "last_layer_name": self.last_layer_name,
            "weights_bytes": self.weights_bytes,
            "code_bytes": self.code_bytes,
            "peak_activation_bytes": self.peak_activation_bytes,
            "transport_buffer_bytes": self.transport_buffer_bytes,
            "total_memory_bytes": self.total_memory_bytes,
            "memory_by_kind": dict(self.memory_by_kind),
            "outgoing": self.outgoing.to_dict(),
            "estimated_compute_s": self.estimated_compute_s,
            "estimated_send_s": self.estimated_send_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "stage") -> Stage:
        """Inverse of :meth:`to_dict`; raises :class:`ConfigError` when malformed."""
        return cls(
            device=_get(data, "device", int, where),
            first_layer=_get(data, "first_layer", int, where),
            last_layer=_get(data, "last_layer", int, where),
            weights_bytes=_get(data, "weights_bytes", int, where),
            code_bytes=_get(data, "code_bytes", int, where),
            peak_activation_bytes=_get(data, "peak_activation_bytes", int, where),
            transport_buffer_bytes=_get(data, "transport_buffer_bytes", int, where),
            total_memory_bytes=_get(data, "total_memory_bytes", int, where),
            first_layer_name=_get(data, "first_layer_name", str, where),
            last_layer_name=_get(data, "last_layer_name", str, where),
            memory_by_kind=_int_map(data, "memory_by_kind", where),
            outgoing=OutgoingTensor.from_dict(
                _get(data, "outgoing", dict, where), f"{where}.outgoing"
            ),
            estimated_compute_s=_get(data, "estimated_compute_s", float, where),
            estimated_send_s=_get(data, "estimated_send_s", float, where),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A model split into contiguous stages, one per board.

    Attributes:
        model: model id, ``Graph.name``: the built-in spec it was loaded from (e.g.
            ``"paper"``, ``"mobilenet_v1:alpha=0.25"``) or the ONNX file stem.
        model_hash: sha256 of the model's ONNX bytes.
        model_layers: number of layers in the model.
        profile: the board profile the memory was checked against.
        transport: transport id the stages send over.
        objective: ``"bottleneck"`` or ``"bytes"``.
        strategy: ``"paper"``, ``"greedy"``, ``"optimal"`` or ``"manual"``.
        link_rate_bps: link rate used for send times, bit/s.
        stages: the stages in pipeline order.
        deployment: boards, replicas and per-link windows chosen by ``partition --optimize``
            (None: stage k runs on board k with the run's window).
    """

    model: str
    model_hash: str
    model_layers: int
    profile: DeviceProfile
    transport: str
    objective: str
    strategy: str
    link_rate_bps: float
    stages: tuple[Stage, ...]
    deployment: Deployment | None = None

    def __post_init__(self) -> None:
        for key, value, valid in (
            ("strategy", self.strategy, PLAN_STRATEGIES),
            ("objective", self.objective, OBJECTIVES),
            ("transport", self.transport, TRANSPORTS),
        ):
            if value not in valid:
                raise ConfigError(f"plan: unknown {key} {value!r} (valid: {', '.join(valid)})")
        if not self.link_rate_bps > 0:
            raise ConfigError("plan: link_rate_bps must be > 0")
        if not self.stages:
            raise ConfigError("malformed plan: no stages")
        expected_first = 1
        for number, stage in enumerate(self.stages, start=1):
            if stage.device != number or stage.first_layer != expected_first:
                raise ConfigError(
                    f"malformed plan: device {stage.device} starts at layer {stage.first_layer}; "
                    f"expected device {number} starting at layer {expected_first}"
                )
            expected_first = stage.last_layer + 1
        if expected_first != self.model_layers + 1:
            raise ConfigError(
                f"malformed plan: the stages end at layer {expected_first - 1}, "
                f"the model has {self.model_layers} layers"
            )
        if self.deployment is not None and len(self.deployment.boards) != len(self.stages):
            raise ConfigError(
                f"malformed plan: the deployment places {len(self.deployment.boards)} stages, "
                f"the plan has {len(self.stages)}"
            )

    @property
    def devices(self) -> int:
        """Number of boards (stages)."""
        return len(self.stages)

    @property
    def cuts(self) -> tuple[int, ...]:
        """0-based layer indices after which the model is cut (as in ``Graph.cut_points``)."""
        return tuple(s.last_layer - 1 for s in self.stages[:-1])

    @property
    def bottleneck_s(self) -> float:
        """Largest per-stage compute + send time in seconds (the pipeline period)."""
        return max(s.stage_s for s in self.stages)

    @property
    def latency_s(self) -> float:
        """Sum of all compute and send times in seconds (one inference end to end)."""
        return sum(s.stage_s for s in self.stages)

    @property
    def max_sent_bytes(self) -> int:
        """Largest tensor sent between boards in bytes (0 for a single board)."""
        return max((s.outgoing.size_bytes for s in self.stages[:-1]), default=0)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (``summary`` is derived and ignored by :meth:`from_dict`)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "model": {"name": self.model, "hash": self.model_hash, "layers": self.model_layers},
            "profile": self.profile.to_dict(),
            "transport": self.transport,
            "objective": self.objective,
            "strategy": self.strategy,
            "link_rate_bps": self.link_rate_bps,
            "summary": {
                "devices": self.devices,
                "bottleneck_s": self.bottleneck_s,
                "latency_s": self.latency_s,
                "max_sent_bytes": self.max_sent_bytes,
            },
            "stages": [s.to_dict() for s in self.stages],
        } | ({} if self.deployment is None else {"deployment": self.deployment.to_dict()})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: a wrong ``schema_version``, a missing or mistyped field, or stages that do
                not cover the model contiguously.
        """
        version = _get(data, "schema_version", int, "plan")
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"plan schema_version {version} is not supported (this tinysplit reads "
                f"{SCHEMA_VERSION})"
            )
        model = _get(data, "model", dict, "plan")
        stages = _get(data, "stages", list, "plan")
        return cls(
            model=_get(model, "name", str, "plan.model"),
            model_hash=_get(model, "hash", str, "plan.model"),
            model_layers=_get(model, "layers", int, "plan.model"),
            profile=DeviceProfile.from_dict(_get(data, "profile", dict, "plan")),
            transport=_get(data, "transport", str, "plan"),
            objective=_get(data, "objective", str, "plan"),
            strategy=_get(data, "strategy", str, "plan"),
            link_rate_bps=_get(data, "link_rate_bps", float, "plan"),
            stages=tuple(Stage.from_dict(s, f"plan.stages[{i}]") for i, s in enumerate(stages)),
            deployment=(Deployment.from_dict(data["deployment"]) if "deployment" in data else None),
        )

    def to_json(self) -> str:
        """The plan as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: str | Path) -> None:
        """Write the plan as JSON atomically (temporary file in the same directory, then rename)."""
        path = Path(path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise ConfigError(f"cannot write plan {str(path)!r}: {exc.strerror}") from exc
        os.fchmod(fd, 0o666 & ~current_umask())
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.to_json())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read a plan written by :meth:`save`.

        Raises:
            ConfigError: the file cannot be read, is not JSON, or is not a valid plan; the message
                names the file.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read plan file {str(path)!r}: {exc.strerror}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"plan file {str(path)!r} is not valid JSON (line {exc.lineno}: {exc.msg})"
            ) from exc
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"plan file {str(path)!r}: {exc}") from exc
