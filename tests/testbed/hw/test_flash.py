"""``tinysplit flash``: the real esptool code path against fake ESP32-S3 ROMs on ptys.

Each test builds a small fake ESP-IDF build directory (``flasher_args.json``, a partition table
binary with a ``model`` partition, a bootloader and an app of arbitrary bytes), a 2-stage plan
with ``stage<k>.espdl`` stand-ins and a ``boards.toml`` pointing at :class:`FakeEsp32S3` ptys.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import struct
import tty
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.testbed.hw.fake_rom import ESP32C3_CHIP_ID, FakeEsp32S3
from tinysplit.cli import main
from tinysplit.errors import BoardError, ConfigError
from tinysplit.model import load_model
from tinysplit.partition import plan_from_cuts
from tinysplit.testbed.hw.build import (
    FirmwareBuild,
    Partition,
    load_slices,
    parse_partition_table,
    read_build,
)
from tinysplit.testbed.hw.flash import STATE_FILE, flash_boards, load_state
from tinysplit.testbed.hw.inventory import load_inventory

MACS = ("24:0a:c4:00:00:10", "24:0a:c4:00:00:20")
TABLE_OFFSET = 0x8000
APP_OFFSET = 0x10000
MODEL = Partition(name="model", type=0x01, subtype=0x82, offset=0x110000, size=0x10000)
PARTITIONS = (
    Partition(name="nvs", type=0x01, subtype=0x02, offset=0x9000, size=0x6000),
    Partition(name="phy_init", type=0x01, subtype=0x01, offset=0xF000, size=0x1000),
    Partition(name="factory", type=0x00, subtype=0x00, offset=APP_OFFSET, size=0x100000),
    MODEL,
)


def partition_table(partitions: Sequence[Partition], *, md5: bool = True) -> bytes:
    """The binary gen_esp32part.py writes: entries, an MD5 entry, 0xff padding to 0xC00."""
    table = b"".join(
        struct.pack(
            "<2sBBLL16sL", b"\xaa\x50", p.type, p.subtype, p.offset, p.size, p.name.encode(), 0
        )
        for p in partitions
    )
    if md5:
        table += b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(table).digest()
    return table + b"\xff" * (0xC00 - len(table))


def blob(size: int, seed: int) -> bytes:
    """Arbitrary bytes that do not start like an ESP image (esptool leaves them alone)."""
    data = random.Random(seed).randbytes(size)
    return b"\x00" + data[1:]


@dataclass
class Bench:
    """A fake build, plan, slices and inventory in ``root``, and the fake boards."""

    root: Path
    roms: list[FakeEsp32S3]
    images: dict[int, bytes]

    @property
    def build(self) -> Path:
        return self.root / "build"

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def espdl(self) -> Path:
        return self.root / "espdl"

    @property
    def inventory(self) -> Path:
        return self.root / "boards.toml"

    def slice_bytes(self, stage: int) -> bytes:
        return (self.espdl / f"stage{stage}.espdl").read_bytes()

    def flasher_args(self, **changes: Any) -> None:
        path = self.build / "flasher_args.json"
        args = json.loads(path.read_text())
        for key, value in changes.items():
            if isinstance(value, dict):
                args[key].update(value)
            else:
                args[key] = value
        path.write_text(json.dumps(args))

    def write_inventory(self, ports: Sequence[str], macs: Sequence[str | None] = ()) -> None:
        lines = ['transport = "ble"']
        for k, port in enumerate(ports, start=1):
            lines += ["[[board]]", f'name = "b{k}"', f"stage = {k}", f'port = "{port}"']
            mac = macs[k - 1] if k <= len(macs) else None
            if mac is not None:
                lines.append(f'mac = "{mac}"')
        self.inventory.write_text("\n".join(lines) + "\n")

    def run(self, *extra: str) -> int:
        return main(
            [
                "flash",
                "--inventory",
                str(self.inventory),
                "--plan",
                str(self.plan),
                "--build-dir",
                str(self.build),
                "--espdl-dir",
                str(self.espdl),
                "--connect-attempts",
                "1",
                *extra,
            ]
        )

    def expected(self, stage: int) -> dict[int, bytes]:
        return {**self.images, MODEL.offset: self.slice_bytes(stage)}


@pytest.fixture(scope="module")
def two_stage_plan_json() -> str:
    plan = plan_from_cuts(load_model("mobilenet_v1:alpha=0.25,input_size=32"), [20])
    return plan.to_json()


@pytest.fixture
def bench(tmp_path: Path, two_stage_plan_json: str) -> Iterator[Bench]:
    build = tmp_path / "build"
    (build / "bootloader").mkdir(parents=True)
    (build / "partition_table").mkdir()
    images = {
        0x0: blob(0x3000, 1),
        TABLE_OFFSET: partition_table(PARTITIONS),
        APP_OFFSET: blob(0x9123, 2),
    }
    names = {
        0x0: "bootloader/bootloader.bin",
        TABLE_OFFSET: "partition_table/partition-table.bin",
        APP_OFFSET: "tinysplit_ble.bin",
    }
    for offset, name in names.items():
        (build / name).write_bytes(images[offset])
    args = {
        "write_flash_args": ["--flash_mode", "dio", "--flash_size", "8MB", "--flash_freq", "80m"],
        "flash_settings": {"flash_mode": "dio", "flash_size": "8MB", "flash_freq": "80m"},
        "flash_files": {f"{offset:#x}": name for offset, name in names.items()},
        "bootloader": {"offset": "0x0", "file": names[0x0], "encrypted": "false"},
        "app": {"offset": f"{APP_OFFSET:#x}", "file": names[APP_OFFSET], "encrypted": "false"},
        "partition-table": {
            "offset": f"{TABLE_OFFSET:#x}",
            "file": names[TABLE_OFFSET],
            "encrypted": "false",
        },
        "extra_esptool_args": {
            "after": "hard_reset",
            "before": "default_reset",
            "stub": True,
            "chip": "esp32s3",
        },
    }
    (build / "flasher_args.json").write_text(json.dumps(args, indent=4))
    (build / "project_description.json").write_text(
        json.dumps({"project_name": "tinysplit_ble", "target": "esp32s3"})
    )
    espdl = tmp_path / "espdl"
    espdl.mkdir()
    for k in (1, 2):
        (espdl / f"stage{k}.espdl").write_bytes(blob(0x1800 + 0x333 * k, 10 + k))
    (tmp_path / "plan.json").write_text(two_stage_plan_json)
    roms = [FakeEsp32S3(mac=mac) for mac in MACS]
    bench = Bench(root=tmp_path, roms=roms, images=images)
    bench.write_inventory([rom.port for rom in roms])
    try:
        yield bench
    finally:
        for rom in roms:
            rom.close()


def flashed(rom: FakeEsp32S3, expected: dict[int, bytes]) -> bool:
    return all(rom.read(offset, len(data)) == data for offset, data in expected.items())


def run_json(bench: Bench, capsys: pytest.CaptureFixture[str], *extra: str) -> list[Any]:
    assert bench.run("--json", *extra) == 0
    out = capsys.readouterr().out
    rows: list[Any] = json.loads(out)  # nothing but JSON: esptool's output was captured
    return rows


# End to end ------------------------------------------------------------------------------------


def test_flashes_both_boards_then_skips_them_until_forced(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = run_json(bench, capsys)
    assert [(r["name"], r["port"], r["mac"], r["status"]) for r in rows] == [
        ("b1", bench.roms[0].port, MACS[0], "flashed"),
        ("b2", bench.roms[1].port, MACS[1], "flashed"),
    ]
    for k, (row, rom) in enumerate(zip(rows, bench.roms, strict=True), start=1):
        expected = bench.expected(k)
        assert row["bytes"] == sum(len(data) for data in expected.values())
        assert flashed(rom, expected)
        assert rom.ops["MEM_END"] == 1  # the stub ran, as flasher_args.json asks
        assert rom.ops["FLASH_DEFL_DATA"] > 0  # and compressed what compresses (the table)
        # Nothing but the images was written: the rest of the flash is still erased.
        ends = sorted((offset, offset + len(data)) for offset, data in expected.items())
        assert rom.flash[: ends[0][0]].count(0xFF) == ends[0][0]
        assert rom.flash[ends[-1][1] :].count(0xFF) == len(rom.flash) - ends[-1][1]
    state = load_state(bench.build / STATE_FILE)
    assert set(state) == set(MACS)
    assert (
        state[MACS[1]]["images"][f"{MODEL.offset:#x}"]
        == hashlib.sha256(bench.slice_bytes(2)).hexdigest()
    )

    sessions = [len(rom.write_sessions) for rom in bench.roms]
    rows = run_json(bench, capsys)
    assert [(r["status"], r["bytes"]) for r in rows] == [("unchanged", 0), ("unchanged", 0)]
    assert [len(rom.write_sessions) for rom in bench.roms] == sessions

    rows = run_json(bench, capsys, "--force")
    assert [r["status"] for r in rows] == ["flashed", "flashed"]
    assert [len(rom.write_sessions) for rom in bench.roms] == [2 * n for n in sessions]


def test_a_changed_slice_reflashes_only_its_board_through_the_rom(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    run_json(bench, capsys, "--no-stub")
    assert all(rom.ops["MEM_END"] == 0 for rom in bench.roms)  # ROM only
    (bench.espdl / "stage2.espdl").write_bytes(blob(0x2000, 99))
    first = [len(rom.write_sessions) for rom in bench.roms]
    rows = run_json(bench, capsys, "--no-stub")
    assert [r["status"] for r in rows] == ["unchanged", "flashed"]
    assert len(bench.roms[0].write_sessions) == first[0]
    assert flashed(bench.roms[1], bench.expected(2))
    assert bench.roms[1].read(MODEL.offset + 0x2000, 0x10) == b"\xff" * 0x10  # old tail erased

    (bench.build / STATE_FILE).write_text("{not json")  # a broken record only costs a reflash
    rows = run_json(bench, capsys, "--no-stub")
    assert [r["status"] for r in rows] == ["flashed", "flashed"]
    assert set(load_state(bench.build / STATE_FILE)) == set(MACS)


def test_the_table_output_names_every_board(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.run() == 0
    out = capsys.readouterr().out
    assert "tinysplit_ble on 2 boards" in out
    for k, mac in enumerate(MACS, start=1):
        assert f"b{k}" in out and mac in out
    assert "esptool" not in out and "Hash of data verified" not in out


def test_progress_bars_on_a_terminal(bench: Bench) -> None:
    inventory = load_inventory(bench.inventory)
    _, slices = load_slices(bench.plan, bench.espdl)
    build = read_build(bench.build, transport="ble")
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    results = flash_boards(inventory.boards, build, slices, connect_attempts=1, console=console)
    assert [str(r.status) for r in results] == ["flashed", "flashed"]
    shown = screen.getvalue()
    assert "b1 (stage 1)" in shown and "b2 (stage 2)" in shown and "flashed" in shown


# Failures --------------------------------------------------------------------------------------


def test_verify_mismatch_fails_and_leaves_the_board_unrecorded(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    run_json(bench, capsys)
    (bench.espdl / "stage2.espdl").write_bytes(blob(0x2000, 99))
    bench.roms[1].corrupt_writes = True
    assert bench.run() == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"board b2 on {bench.roms[1].port}: verify failed" in err
    # b2's record of its old images went too: its flash holds neither version now.
    assert set(load_state(bench.build / STATE_FILE)) == {MACS[0]}

    inventory = load_inventory(bench.inventory)
    _, slices = load_slices(bench.plan, bench.espdl)
    build = read_build(bench.build, transport="ble")
    with pytest.raises(BoardError, match="verify failed") as info:
        flash_boards(inventory.boards, build, slices, connect_attempts=1)
    assert "esptool: " in str(info.value)  # esptool's own lines follow the first one
    assert set(load_state(bench.build / STATE_FILE)) == {MACS[0]}


def test_no_peer_on_the_port_fails_fast(bench: Bench, capsys: pytest.CaptureFixture[str]) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        silent = os.ttyname(slave)
        bench.write_inventory([bench.roms[0].port, silent])
        assert bench.run() == 1
        err = capsys.readouterr().err
        assert err.startswith(f"tinysplit: error: board b2 on {silent}: no ESP32-S3 bootloader")
        assert err.count("\n") == 1
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def test_a_board_that_is_not_an_esp32s3_is_refused(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeEsp32S3(mac="24:0a:c4:00:00:03", chip_id=ESP32C3_CHIP_ID) as c3:
        bench.write_inventory([bench.roms[0].port, c3.port])
        assert bench.run() == 1
        assert f"board b2 on {c3.port}: the chip is an ESP32-C3" in capsys.readouterr().err
        assert not c3.write_sessions


def test_the_inventory_mac_must_match_the_chip(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    ports = [rom.port for rom in bench.roms]
    bench.write_inventory(ports, [MACS[1], MACS[0]])  # boards swapped between ports
    assert bench.run() == 1
    assert (
        f"board b1 on {ports[0]}: the chip's MAC is {MACS[0]}, the inventory says"
        in capsys.readouterr().err
    )
    assert not bench.roms[0].write_sessions
    # The Bluetooth MAC (base + 2) is the chip's too.
    bench.write_inventory(ports, ["24:0a:c4:00:00:12", None])
    assert bench.run() == 0


def _missing_flasher_args(bench: Bench) -> None:
    (bench.build / "flasher_args.json").unlink()


def _missing_slice(bench: Bench) -> None:
    (bench.espdl / "stage2.espdl").unlink()


def _slice_too_large(bench: Bench) -> None:
    (bench.espdl / "stage2.espdl").write_bytes(b"\x01" * (MODEL.size + 1))


def _wrong_chip(bench: Bench) -> None:
    bench.flasher_args(extra_esptool_args={"chip": "esp32"})
    (bench.build / "project_description.json").unlink()


def _wrong_transport(bench: Bench) -> None:
    (bench.build / "project_description.json").write_text(
        json.dumps({"project_name": "tinysplit_wifi", "target": "esp32s3"})
    )


def _no_model_partition(bench: Bench) -> None:
    table = partition_table(PARTITIONS[:3])
    (bench.build / "partition_table" / "partition-table.bin").write_bytes(table)


def _export_of_another_plan(bench: Bench) -> None:
    manifest = {"format": "espdl", "plan": json.loads(bench.plan.read_text()), "stages": []}
    manifest["plan"]["stages"][0]["last_layer"] -= 1
    manifest["plan"]["stages"][1]["first_layer"] -= 1
    (bench.espdl / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (_missing_flasher_args, "no flasher_args.json in"),
        (_missing_slice, "stage 2: model slice"),
        (_slice_too_large, "larger than the 'model' partition (65,536 bytes at 0x110000)"),
        (_wrong_chip, "firmware built for chip 'esp32', tinysplit boards are esp32s3"),
        (_wrong_transport, "build of 'tinysplit_wifi', not of firmware/ble"),
        (_no_model_partition, "no 'model' data partition"),
        (_export_of_another_plan, "exported from another plan"),
    ],
)
def test_bad_input_is_one_line_before_any_board_is_touched(
    bench: Bench, capsys: pytest.CaptureFixture[str], breakage: Any, message: str
) -> None:
    breakage(bench)
    assert bench.run() == 1
    err = capsys.readouterr().err
    assert err.startswith("tinysplit: error: ") and err.count("\n") == 1
    assert message in err
    assert all(not rom.ops for rom in bench.roms)


def test_plan_and_inventory_must_agree_on_the_stage_count(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.write_inventory([bench.roms[0].port])
    assert bench.run() == 1
    assert "the plan has 2 stages" in capsys.readouterr().err


# Inputs ----------------------------------------------------------------------------------------


def test_partition_table_round_trip_and_corruption() -> None:
    assert parse_partition_table(partition_table(PARTITIONS), source="t") == PARTITIONS
    assert parse_partition_table(partition_table(PARTITIONS, md5=False), source="t") == PARTITIONS
    bad = bytearray(partition_table(PARTITIONS))
    bad[40] ^= 1  # inside the second entry
    with pytest.raises(ConfigError, match="MD5 entry does not match"):
        parse_partition_table(bytes(bad), source="t")
    with pytest.raises(ConfigError, match="bad entry magic"):
        parse_partition_table(b"\x00" * 64, source="t")


def test_read_build_finds_the_images_and_the_model_partition(bench: Bench) -> None:
    build = read_build(bench.root, transport="ble")  # the project directory holding build/
    assert isinstance(build, FirmwareBuild)
    assert build.build_dir == bench.build
    assert (build.project, build.model, build.stub) == ("tinysplit_ble", MODEL, True)
    assert (build.before, build.after) == ("default-reset", "hard-reset")
    assert {image.offset: image.data for image in build.images} == bench.images
    images = build.stage_images(bench.espdl / "stage1.espdl", stage=1)
    assert [image.offset for image in images] == [0x0, TABLE_OFFSET, APP_OFFSET, MODEL.offset]


def test_an_export_manifest_is_a_plan_and_checks_the_slices(bench: Bench) -> None:
    stages = [
        {"file": f"stage{k}.espdl", "sha256": hashlib.sha256(bench.slice_bytes(k)).hexdigest()}
        for k in (1, 2)
    ]
    manifest = {"format": "espdl", "plan": json.loads(bench.plan.read_text()), "stages": stages}
    (bench.espdl / "manifest.json").write_text(json.dumps(manifest))
    plan, slices = load_slices(bench.espdl / "manifest.json")
    assert plan.devices == 2
    assert slices == (bench.espdl / "stage1.espdl", bench.espdl / "stage2.espdl")
    (bench.espdl / "stage1.espdl").write_bytes(b"changed")
    with pytest.raises(ConfigError, match=r"stage1\.espdl changed since it was exported"):
        load_slices(bench.plan, bench.espdl)
