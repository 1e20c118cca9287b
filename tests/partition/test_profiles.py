"""Device profiles and transport specs from the packaged data file."""

from __future__ import annotations

import dataclasses

import pytest

from tinysplit.errors import ConfigError
from tinysplit.partition import (
    DEFAULT_PROFILE,
    PROFILE_NAMES,
    TRANSPORTS,
    DeviceProfile,
    load_profile,
    load_transport,
)


def test_builtin_profiles_load_and_round_trip() -> None:
    assert DEFAULT_PROFILE == "esp32s3-n8r8"
    assert {"esp32s3-n8r8", "esp32s3-n16r8", "esp32s3-n4", "paper"} <= set(PROFILE_NAMES)
    for name in PROFILE_NAMES:
        profile = load_profile(name)
        assert profile.name == name
        assert set(profile.code_bytes) == set(TRANSPORTS)
        assert DeviceProfile.from_dict(profile.to_dict()) == profile


def test_profile_values_follow_the_sources() -> None:
    n8r8 = load_profile("esp32s3-n8r8")
    assert (n8r8.flash_bytes, n8r8.psram_bytes) == (8 * 2**20, 8 * 2**20)
    assert (n8r8.weight_bytes, n8r8.bias_bytes, n8r8.param_copy) == (2, 8, True)
    assert n8r8.transport_buffer_bytes["ble"] == 12 * 256 + 24 * 320 + 24 * 255 + 30 * 70
    assert n8r8.capacities() == {"flash": 8 * 2**20, "psram": 8 * 2**20, "sram": 256000}
    n4 = load_profile("esp32s3-n4")
    assert not n4.has_psram
    assert set(n4.capacities()) == {"flash", "sram"}
    paper = load_profile("paper")
    assert paper.accounting == "paper"
    assert paper.capacities() == {"total": 4 * 2**20}
    assert (paper.weight_bytes, paper.bias_bytes) == (2, 2)


def test_transports_match_the_simulated_links() -> None:
    # A 512 B BLE value, a 1440 B TCP segment, a 250 B ESP-NOW v1 frame, each less the 16 B
    # tinysplit header; priced at each default link profile's sourced goodput.
    assert TRANSPORTS == ("ble", "wifi", "espnow")
    ble = load_transport("ble")
    assert ble.payload_bytes == 496
    assert (ble.frames(496), ble.frames(497)) == (1, 2)
    assert load_transport("wifi").frames(1424 * 3) == 3
    assert load_transport("espnow").payload_bytes == 234
    assert ble.link_rate_bps == 90e3  # the paper's BLE
    assert load_transport("espnow").link_rate_bps == pytest.approx((214 + 555) / 2 * 1e3)


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown device profile 'esp32'.*esp32s3-n8r8.*paper"):
        load_profile("esp32")
    with pytest.raises(ConfigError, match=r"unknown transport 'lora'.*ble, wifi, espnow"):
        load_transport("lora")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"accounting": "rough"}, "accounting must be one of"),
        ({"flash_bytes": -1}, "flash_bytes must be an integer >= 0"),
        ({"psram_bytes": 1.5}, "psram_bytes must be an integer"),
        ({"bias_bytes": 0}, "bias_bytes must be an integer >= 1"),
        ({"flash_reserved_bytes": 2**30}, "must exceed flash_reserved_bytes"),
        ({"psram_bytes": 0}, "param_copy needs PSRAM"),
        ({"code_bytes": {"ble": 1}}, r"one entry per transport.*missing \['wifi', 'espnow'\]"),
        ({"transport_buffer_bytes": {"ble": 1, "wifi": 1, "espnow": -3}}, "espnow must be"),
    ],
)
def test_bad_profile_values(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(load_profile("esp32s3-n8r8"), **change)  # type: ignore[arg-type]


def test_from_dict_rejects_unknown_and_missing_fields() -> None:
    data = load_profile("paper").to_dict()
    with pytest.raises(ConfigError, match="unknown field"):
        DeviceProfile.from_dict({**data, "ram": 3})
    del data["flash_bytes"]
    with pytest.raises(ConfigError, match="flash_bytes"):
        DeviceProfile.from_dict(data)
    with pytest.raises(ConfigError, match="must be a table"):
        DeviceProfile.from_dict([1, 2])  # type: ignore[arg-type]
