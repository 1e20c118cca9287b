"""A simulated run as plain JSON and back, so a finished sweep point survives on disk.

Every float is written with Python's shortest round-trip repr (NaN as ``NaN``), so a run read
back is identical to the one simulated: the archive written from resumed points is the archive a
single uninterrupted sweep writes.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from tinysplit.errors import ConfigError
from tinysplit.links import TransferResult
from tinysplit.partition import Plan
from tinysplit.sim.pipeline import LinkEvent, PipelineConfig, SimResult, StageEvent


def config_to_dict(config: PipelineConfig) -> dict[str, Any]:
    """Plain form of a pipeline configuration (the mode as its text)."""
    data = dataclasses.asdict(config)
    data["mode"] = str(config.mode.value)
    return data


def config_from_dict(data: dict[str, Any]) -> PipelineConfig:
    """Inverse of :func:`config_to_dict` (lists become tuples).

    Raises:
        ConfigError: a field this tinysplit's :class:`PipelineConfig` does not have.
    """
    known = {f.name for f in dataclasses.fields(PipelineConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"pipeline configuration field {unknown[0]!r} is unknown to this tinysplit"
        )
    return PipelineConfig(**{k: _tuples(v) for k, v in data.items()})


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def result_to_dict(result: SimResult) -> dict[str, Any]:
    """Plain-JSON form of a run (every field of :class:`SimResult`)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        if f.name == "config":
            out[f.name] = config_to_dict(value)
        elif f.name == "plan":
            out[f.name] = value.to_dict()
        elif f.name == "stage_events":
            out[f.name] = [dataclasses.astuple(e) for e in value]
        elif f.name == "link_events":
            out[f.name] = [[_plain(getattr(e, name)) for name in _LINK_FIELDS] for e in value]
        else:
            out[f.name] = _plain(value)
    return out


_LINK_FIELDS = tuple(f.name for f in dataclasses.fields(LinkEvent))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def result_from_dict(data: dict[str, Any]) -> SimResult:
    """Inverse of :func:`result_to_dict`.

    Raises:
        ConfigError: a record written by another tinysplit version (missing or unknown fields).
    """
    known = {f.name for f in dataclasses.fields(SimResult)}
    if set(data) != known:
        diff = sorted(set(data) ^ known)
        raise ConfigError(f"run record field {diff[0]!r} does not match this tinysplit's runs")
    hints = typing.get_type_hints(SimResult)
    try:
        values = {
            name: _tuples(v) if typing.get_origin(hints[name]) is tuple else v
            for name, v in data.items()
        }
        values["config"] = config_from_dict(data["config"])
        values["plan"] = Plan.from_dict(data["plan"])
        values["stage_events"] = [StageEvent(*e) for e in data["stage_events"]]
        values["link_events"] = [_link_event(e) for e in data["link_events"]]
        return SimResult(**values)
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"damaged run record ({exc})") from exc


def _link_event(values: list[Any]) -> LinkEvent:
    fields = dict(zip(_LINK_FIELDS, values, strict=True))
    fields["result"] = TransferResult(**fields["result"])
    return LinkEvent(**fields)
