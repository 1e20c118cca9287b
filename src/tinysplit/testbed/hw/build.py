"""What gets flashed: an ESP-IDF build of a transport firmware and the stages' model slices.

:func:`read_build` reads the build directory ``idf.py build`` leaves in ``firmware/<transport>``:
``flasher_args.json`` (the images ``idf.py flash`` writes and at which offsets, the flash settings
and esptool options) and the partition table binary, to find the ``model`` data partition each
stage's ``.espdl`` slice goes to. :func:`load_slices` finds the slices of a plan
(``stage<k>.espdl``, as ``tinysplit export --format espdl`` names them) and checks them against
the export's ``manifest.json`` when there is one. Everything here is checked before a board is
touched, so bad input fails without writing anything. No esptool here: :mod:`.flash` writes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinysplit.errors import ConfigError
from tinysplit.partition import Plan

__all__ = [
    "CHIP",
    "MODEL_PARTITION",
    "FirmwareBuild",
    "FlashImage",
    "Partition",
    "load_slices",
    "parse_partition_table",
    "read_build",
]

#: The only chip tinysplit's firmware targets (esptool / ESP-IDF spelling).
CHIP = "esp32s3"
#: Label of the data partition holding the stage's ESP-DL slice (``firmware/*/partitions.csv``).
MODEL_PARTITION = "model"

# gen_esp32part.py's binary format: 32-byte entries, then an MD5 entry, then 0xff padding.
_ENTRY = struct.Struct("<2sBBLL16sL")
_ENTRY_MAGIC = b"\xaa\x50"
_MD5_MAGIC = b"\xeb\xeb"
_TABLE_MAX_BYTES = 0xC00
_DATA_TYPE = 0x01


@dataclass(frozen=True, slots=True, kw_only=True)
class Partition:
    """One partition table entry.

    Attributes:
        name: label (``"factory"``, ``"model"``, ...).
        type: 0x00 app, 0x01 data (or a custom type).
        subtype: e.g. 0x00 factory app, 0x02 nvs, 0x82 spiffs.
        offset: first byte in flash.
        size: bytes.
        flags: bit 0 encrypted, bit 1 readonly.
    """

    name: str
    type: int
    subtype: int
    offset: int
    size: int
    flags: int = 0

    @property
    def end(self) -> int:
        """One past the last byte."""
        return self.offset + self.size


@dataclass(frozen=True, slots=True, kw_only=True)
class FlashImage:
    """Bytes to write at one flash offset.

    Attributes:
        offset: flash address of the first byte.
        data: the image.
        name: where it came from, for messages: a path relative to the build directory or the
            slice's file name.
    """

    offset: int
    data: bytes = field(repr=False)
    name: str

    @property
    def size(self) -> int:
        """Length in bytes."""
        return len(self.data)

    @property
    def sha256(self) -> str:
        """sha256 hex digest of :attr:`data`."""
        return hashlib.sha256(self.data).hexdigest()


def parse_partition_table(data: bytes, *, source: str) -> tuple[Partition, ...]:
    """Decode a partition table binary (``partition_table/partition-table.bin``).

    Entries are read up to the first erased (``0xff``) slot; an MD5 entry, when present, must
    match the entries before it (gen_esp32part writes one unless built with ``--disable-md5sum``).

    Args:
        data: the binary (one 4 KiB sector or less).
        source: the file name for error messages.

    Raises:
        ConfigError: a corrupt table (bad magic, MD5 mismatch, no entry at all).
    """
    partitions = []
    end = min(len(data), _TABLE_MAX_BYTES)
    for start in range(0, end - _ENTRY.size + 1, _ENTRY.size):
        raw = data[start : start + _ENTRY.size]
        magic = raw[:2]
        if magic == b"\xff\xff":
            break
        if magic == _MD5_MAGIC:
            if hashlib.md5(data[:start]).digest() != raw[16:]:
                raise ConfigError(f"partition table {source}: MD5 entry does not match the table")
            break
        if magic != _ENTRY_MAGIC:
            raise ConfigError(
                f"partition table {source}: bad entry magic {magic.hex()} at byte {start} "
                "(not a partition table binary?)"
            )
        _, ptype, subtype, offset, size, label, flags = _ENTRY.unpack(raw)
        name = label.split(b"\x00", 1)[0].decode("ascii", errors="replace")
        partitions.append(
            Partition(name=name, type=ptype, subtype=subtype, offset=offset, size=size, flags=flags)
        )
    if not partitions:
        raise ConfigError(f"partition table {source}: no partition entries")
    return tuple(partitions)


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmwareBuild:
    """An ESP-IDF build of one transport firmware, ready to flash.

    Attributes:
        build_dir: the directory holding ``flasher_args.json``.
        project: the ESP-IDF project name (``tinysplit_ble``).
        transport: the transport the project implements (``ble``).
        flash_mode: ``flash_settings.flash_mode`` (``dio``), written into the bootloader header.
        flash_size: ``flash_settings.flash_size`` (``8MB``).
        flash_freq: ``flash_settings.flash_freq`` (``80m``).
        before: esptool's reset before connecting (``default-reset``).
        after: esptool's reset after flashing (``hard-reset``, ``no-reset``, ...).
        stub: whether esptool should upload its flasher stub (faster, compressed writes).
        images: the images ``idf.py flash`` writes (bootloader, partition table, app, ...), by
            offset, without any image inside the model partition.
        partitions: the partition table.
        model: the ``model`` data partition.
    """

    build_dir: Path
    project: str
    transport: str
    flash_mode: str
    flash_size: str
    flash_freq: str
    before: str
    after: str
    stub: bool
    images: tuple[FlashImage, ...]
    partitions: tuple[Partition, ...]
    model: Partition

    def settings(self) -> dict[str, str]:
        """The flash settings esptool writes into the bootloader header."""
        return {
            "flash_mode": self.flash_mode,
            "flash_size": self.flash_size,
            "flash_freq": self.flash_freq,
        }

    def stage_images(self, slice_path: Path, *, stage: int) -> tuple[FlashImage, ...]:
        """Every image of one board: the build's images and the stage's slice in ``model``.

        Raises:
            ConfigError: the slice is missing, empty, or larger than the model partition.
        """
        try:
            data = slice_path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"stage {stage}: model slice {str(slice_path)!r} not found") from None
        except OSError as exc:
            raise ConfigError(
                f"stage {stage}: cannot read model slice {str(slice_path)!r}: {exc.strerror}"
            ) from exc
        if not data:
            raise ConfigError(f"stage {stage}: model slice {str(slice_path)!r} is empty")
        if len(data) > self.model.size:
            raise ConfigError(
                f"stage {stage}: model slice {slice_path.name} is {len(data):,} bytes, larger "
                f"than the {MODEL_PARTITION!r} partition ({self.model.size:,} bytes at "
                f"{self.model.offset:#x}) of {self.project}"
            )
        image = FlashImage(offset=self.model.offset, data=data, name=slice_path.name)
        return tuple(sorted((*self.images, image), key=lambda i: i.offset))


def read_build(build_dir: str | Path, *, transport: str) -> FirmwareBuild:
    """Read and check the ESP-IDF build directory of ``firmware/<transport>``.

    ``build_dir`` may be the build directory itself or the project directory holding ``build/``.
    The project must be ``tinysplit_<transport>`` built for the ESP32-S3, and its partition table
    must have a ``model`` data partition.

    Raises:
        ConfigError: no ``flasher_args.json``, a wrong chip or project, a missing or corrupt
            image or partition table, images overlapping each other or past the flash size.
    """
    directory = Path(build_dir)
    if (
        not (directory / "flasher_args.json").is_file()
        and (directory / "build" / "flasher_args.json").is_file()
    ):
        directory = directory / "build"
    args_path = directory / "flasher_args.json"
    args = _read_json(
        args_path,
        missing=f"no flasher_args.json in {str(directory)!r}: not an ESP-IDF build directory "
        f"(build it with: idf.py -C firmware/{transport} set-target {CHIP} build)",
    )
    description = _read_json(directory / "project_description.json", missing=None)
    extra = _mapping(args.get("extra_esptool_args", {}), "extra_esptool_args", args_path)
    chip = str(extra.get("chip") or description.get("target") or "")
    if chip != CHIP:
        raise ConfigError(
            f"{args_path}: firmware built for chip {chip or 'unknown'!r}, tinysplit boards are "
            f"{CHIP} (idf.py set-target {CHIP})"
        )
    files = _mapping(args.get("flash_files"), "flash_files", args_path)
    app = _mapping(args.get("app", {}), "app", args_path)
    project = str(description.get("project_name") or Path(str(app.get("file", ""))).stem)
    if project != f"tinysplit_{transport}":
        raise ConfigError(
            f"{args_path}: this is the build of {project or 'an unknown project'!r}, not of "
            f"firmware/{transport} (tinysplit_{transport}) as --transport {transport} needs"
        )
    table_entry = _mapping(args.get("partition-table"), "partition-table", args_path)
    table_offset = _offset(table_entry.get("offset"), args_path)
    images = [
        _load_image(directory, _offset(offset, args_path), str(name), args_path)
        for offset, name in files.items()
    ]
    table_image = next((i for i in images if i.offset == table_offset), None)
    if table_image is None:
        raise ConfigError(f"{args_path}: flash_files has no image at the partition table offset")
    partitions = parse_partition_table(table_image.data, source=table_image.name)
    model = next((p for p in partitions if p.name == MODEL_PARTITION), None)
    if model is None or model.type != _DATA_TYPE:
        raise ConfigError(
            f"partition table {table_image.name}: no {MODEL_PARTITION!r} data partition for the "
            "stage's slice (see firmware/*/partitions.csv)"
        )
    settings = _mapping(args.get("flash_settings", {}), "flash_settings", args_path)
    # A default model some builds flash into the model partition is replaced by the stage's slice.
    kept = sorted((i for i in images if not model.offset <= i.offset < model.end), key=_offset_of)
    _check_layout(kept, model, str(settings.get("flash_size", "keep")), args_path)
    return FirmwareBuild(
        build_dir=directory,
        project=project,
        transport=transport,
        flash_mode=str(settings.get("flash_mode", "keep")),
        flash_size=str(settings.get("flash_size", "keep")),
        flash_freq=str(settings.get("flash_freq", "keep")),
        before=str(extra.get("before", "default_reset")).replace("_", "-"),
        after=str(extra.get("after", "hard_reset")).replace("_", "-"),
        stub=bool(extra.get("stub", True)),
        images=tuple(kept),
        partitions=partitions,
        model=model,
    )


def load_slices(
    plan_path: str | Path, espdl_dir: str | Path | None = None
) -> tuple[Plan, tuple[Path, ...]]:
    """The plan and its stages' ``.espdl`` slices, stage 1 first.

    ``plan_path`` is a plan (``partition --out``) or an export's ``manifest.json`` (which embeds
    the plan). The slices are ``stage<k>.espdl`` in ``espdl_dir``, else in the plan file's
    directory. When that directory has a ``manifest.json``, it must be an ``espdl`` export of the
    same plan and every slice must still have the sha256 it was exported with.

    Raises:
        ConfigError: an unreadable plan, a slice missing, or slices from another export.
    """
    plan_path = Path(plan_path)
    data = _read_json(plan_path, missing=f"plan file {str(plan_path)!r} not found")
    manifest: Mapping[str, Any] | None = None
    if _is_manifest(data):
        manifest = data
        try:
            plan = Plan.from_dict(_mapping(data["plan"], "plan", plan_path))
        except ConfigError as exc:
            raise ConfigError(f"export manifest {str(plan_path)!r}: {exc}") from exc
    else:
        plan = Plan.load(plan_path)
    directory = Path(espdl_dir) if espdl_dir is not None else plan_path.parent
    if not directory.is_dir():
        raise ConfigError(f"slice directory {str(directory)!r} does not exist")
    manifest_path = directory / "manifest.json"
    if manifest_path.resolve() != plan_path.resolve() and manifest_path.is_file():
        manifest = _read_json(manifest_path, missing=None)
    slices = tuple(directory / f"stage{k}.espdl" for k in range(1, plan.devices + 1))
    for k, path in enumerate(slices, start=1):
        if not path.is_file():
            raise ConfigError(
                f"stage {k}: model slice {str(path)!r} not found (write the slices with: "
                f"tinysplit export --plan PLAN --out DIR --format espdl, then --espdl-dir DIR)"
            )
    if manifest is not None:
        _check_manifest(manifest, plan, slices, directory)
    return plan, slices


def _is_manifest(data: Mapping[str, Any]) -> bool:
    return isinstance(data.get("plan"), dict) and "format" in data


def _check_manifest(
    manifest: Mapping[str, Any], plan: Plan, slices: tuple[Path, ...], directory: Path
) -> None:
    where = f"export manifest in {str(directory)!r}"
    if manifest.get("format") != "espdl":
        raise ConfigError(
            f"{where}: a {manifest.get('format')!r} export; boards need --format espdl slices"
        )
    try:
        exported = Plan.from_dict(_mapping(manifest.get("plan"), "plan", directory))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    layers = [(s.first_layer, s.last_layer) for s in plan.stages]
    if exported.model_hash != plan.model_hash or layers != [
        (s.first_layer, s.last_layer) for s in exported.stages
    ]:
        raise ConfigError(f"{where}: the slices were exported from another plan than --plan")
    entries = manifest.get("stages")
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: no stages list")
    hashes = {e.get("file"): e.get("sha256") for e in entries if isinstance(e, dict)}
    for path in slices:
        expected = hashes.get(path.name)
        if expected is not None and hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            raise ConfigError(f"{where}: {path.name} changed since it was exported (sha256)")


def _read_json(path: Path, *, missing: str | None) -> dict[str, Any]:
    """A JSON object from ``path``; ``{}`` when absent and ``missing`` is None."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing is None:
            return {}
        raise ConfigError(missing) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{str(path)!r} is not valid JSON (line {exc.lineno}: {exc.msg})"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{str(path)!r}: expected a JSON object")
    return data


def _mapping(value: Any, key: str, where: Path) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key!r} missing or not an object")
    return value


def _offset(value: Any, where: Path) -> int:
    try:
        offset = int(str(value), 0)
    except ValueError:
        raise ConfigError(f"{where}: bad flash offset {value!r}") from None
    if offset < 0:
        raise ConfigError(f"{where}: bad flash offset {value!r}")
    return offset


def _offset_of(image: FlashImage) -> int:
    return image.offset


def _load_image(directory: Path, offset: int, name: str, where: Path) -> FlashImage:
    path = directory / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{where}: image {name!r} at {offset:#x} cannot be read ({exc.strerror}): "
            "is the build complete?"
        ) from exc
    return FlashImage(offset=offset, data=data, name=name)


def _check_layout(images: list[FlashImage], model: Partition, flash_size: str, where: Path) -> None:
    """Images must not overlap, and they and the model partition must fit in the flash."""
    for first, second in itertools.pairwise(images):
        if first.offset + first.size > second.offset:
            raise ConfigError(
                f"{where}: {first.name} at {first.offset:#x} ({first.size:,} bytes) overlaps "
                f"{second.name} at {second.offset:#x}"
            )
    units = {"KB": 1 << 10, "MB": 1 << 20}
    suffix = flash_size[-2:].upper()
    if suffix in units and flash_size[:-2].isdigit():
        limit = int(flash_size[:-2]) * units[suffix]
        for image in images:
            if image.offset + image.size > limit:
                raise ConfigError(
                    f"{where}: {image.name} at {image.offset:#x} ends past the {flash_size} flash"
                )
        if model.end > limit:
            raise ConfigError(
                f"{where}: the {MODEL_PARTITION!r} partition ends at {model.end:#x}, past the "
                f"{flash_size} flash"
            )
