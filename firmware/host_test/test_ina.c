/*
 * Tests of the INA219 / INA226 register conversions (components/tinysplit_core/src/ts_ina.c)
 * against the datasheets' own numbers: TI SBOS448 (INA219) and SBOS547 (INA226).
 */
#include <stdint.h>

#include "ts_frame.h"
#include "ts_ina.h"
#include "ts_test.h"

static void test_register_byte_order(void)
{
    const uint8_t bytes[2] = {0x41, 0x27};
    TS_CHECK_EQ_INT(ts_ina_reg_from_be(bytes), 0x4127);
    uint8_t out[2] = {0, 0};
    ts_ina_reg_to_be(0x399F, out);
    TS_CHECK_EQ_INT(out[0], 0x39);
    TS_CHECK_EQ_INT(out[1], 0x9F);
    ts_ina_reg_to_be(0x8300, out);
    TS_CHECK_EQ_INT(ts_ina_reg_from_be(out), 0x8300);
}

/* SBOS547 (2011) Table 1 "Configure/Measure/Calculate Example": load 10 A, VBUS 12 V,
 * RSHUNT 2 mΩ; shunt register 1F40h = 20 mV, bus register 2570h = 11.98 V, calibration 2560
 * gives a current register of 10000 x 1 mA = 10 A and power 4792 x 25 mW = 119.8 W. */
static void test_ina226_datasheet_example(void)
{
    TS_CHECK_EQ_INT(ts_ina_shunt_nv(TS_INA226, 0x1F40), 20000000);
    TS_CHECK_EQ_INT(ts_ina_bus_uv(TS_INA226, 0x2570), 11980000);
    ts_ina_sample_t s;
    TS_REQUIRE(ts_ina_decode(TS_INA226, 0x1F40, 0x2570, 2, &s) == TS_OK);
    TS_CHECK_EQ_INT(s.current_ua, 10000000);
    TS_CHECK_EQ_INT(s.power_uw, 119800000);
    TS_CHECK_EQ_INT(s.overflow, 0);
    /* The chip's own current register (shunt x CAL / 2048) says the same: no CAL needed. */
    TS_CHECK_EQ_INT(0x1F40 * 2560 / 2048, 10000);
    TS_CHECK_EQ_INT(4792 * 25, 119800); /* its power register, mW */
}

static void test_ina226_ranges(void)
{
    /* SBOS547 7.1.2 worked example: -80 mV is 8300h; full scale 7FFFh = 81.9175 mV. */
    TS_CHECK_EQ_INT(ts_ina_shunt_nv(TS_INA226, 0x8300), -80000000);
    TS_CHECK_EQ_INT(ts_ina_shunt_nv(TS_INA226, 0x7FFF), 81917500);
    TS_CHECK_EQ_INT(ts_ina_shunt_nv(TS_INA226, 0x8000), -81920000);
    TS_CHECK_EQ_INT(ts_ina_shunt_nv(TS_INA226, 0xFFFF), -2500);
    /* Bus: 1.25 mV LSB, full scale 7FFFh = 40.95875 V, D15 is always 0 (ignored if set). */
    TS_CHECK_EQ_INT(ts_ina_bus_uv(TS_INA226, 0x7FFF), 40958750);
    TS_CHECK_EQ_INT(ts_ina_bus_uv(TS_INA226, 0xFFFF), 40958750);
    TS_CHECK_EQ_INT(ts_ina_bus_uv(TS_INA226, 2640), 3300000); /* a 3V3 rail */
}

static void test_ina219_registers(void)
{
    /* Shunt: 10 µV LSB, sign-extended; +-320 mV at PGA /8 (SBOS448G 8.6.3.1). */
    TS_CHECK_EQ_INT(ts_ina_shunt_nv(TS_INA219, 0x7D00), 320000000);
    TS_CHECK_EQ_INT(ts_ina_shunt_nv(TS_INA219, 0x8300), -320000000);
    TS_CHECK_EQ_INT(ts_ina_shunt_nv(TS_INA219, 0xFFFF), -10000);
    TS_CHECK_EQ_INT(ts_ina_shunt_nv(TS_INA219, 0x0FA0), 40000000); /* PGA /1 full scale */
    /* Bus: BD12..BD0 in bits 15..3, LSB 4 mV: 32 V full scale is 8000 = 1F40h, 16 V is 4000
     * (SBOS448G 8.6.3.2); CNVR and OVF in bits 1 and 0 do not change the voltage. */
    TS_CHECK_EQ_INT(ts_ina_bus_uv(TS_INA219, 0x1F40 << 3), 32000000);
    TS_CHECK_EQ_INT(ts_ina_bus_uv(TS_INA219, 0x0FA0 << 3), 16000000);
    TS_CHECK_EQ_INT(ts_ina_bus_uv(TS_INA219, (825 << 3) | TS_INA219_BUS_CNVR), 3300000);
    TS_CHECK_EQ_INT(ts_ina_bus_uv(TS_INA219, (825 << 3) | 0x7), 3300000);

    ts_ina_sample_t s;
    /* 100 mΩ shunt (common INA219 modules): 1 mV across it is 10 mA. */
    TS_REQUIRE(ts_ina_decode(TS_INA219, 100, 825 << 3, 100, &s) == TS_OK);
    TS_CHECK_EQ_INT(s.shunt_nv, 1000000);
    TS_CHECK_EQ_INT(s.current_ua, 10000);
    TS_CHECK_EQ_INT(s.bus_uv, 3300000);
    TS_CHECK_EQ_INT(s.power_uw, 33000);
    TS_CHECK_EQ_INT(s.overflow, 0);
    TS_REQUIRE(ts_ina_decode(TS_INA219, 100, (825 << 3) | TS_INA219_BUS_OVF, 100, &s) == TS_OK);
    TS_CHECK_EQ_INT(s.overflow, 1);
}

static void test_current_and_power_rounding(void)
{
    TS_CHECK_EQ_INT(ts_ina_current_ua(2500, 3), 833);   /* 833.3 */
    TS_CHECK_EQ_INT(ts_ina_current_ua(-2500, 3), -833);
    TS_CHECK_EQ_INT(ts_ina_current_ua(2500, 2), 1250);
    TS_CHECK_EQ_INT(ts_ina_current_ua(5000, 3), 1667);  /* 1666.7 */
    TS_CHECK_EQ_INT(ts_ina_current_ua(1000, 0), 0);
    /* Full scale through a 1 mΩ shunt stays exact in 64 bits. */
    TS_CHECK_EQ_INT(ts_ina_current_ua(-320000000, 1), -320000000);
    TS_CHECK_EQ_INT(ts_ina_power_uw(40958750, 320000000), 13106800000LL);
    TS_CHECK_EQ_INT(ts_ina_power_uw(3300000, -10000), -33000);
    TS_CHECK_EQ_INT(ts_ina_power_uw(1, 499999), 0);
    TS_CHECK_EQ_INT(ts_ina_power_uw(1, 500000), 1);

    ts_ina_sample_t s;
    TS_CHECK_EQ_INT(ts_ina_decode(TS_INA_NONE, 0, 0, 100, &s), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_ina_decode(TS_INA226, 0, 0, 0, &s), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_ina_decode(TS_INA226, 0, 0, 100, NULL), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_ina_shunt_nv(TS_INA_NONE, 0x1234), 0);
    TS_CHECK_EQ_INT(ts_ina_bus_uv(TS_INA_NONE, 0x1234), 0);
}

static void test_ina226_config(void)
{
    uint16_t cfg = 0;
    /* The power-on value 4127h: 1 average, 1.1 ms bus and shunt, shunt + bus continuous. */
    TS_REQUIRE(ts_ina226_config(1, 1100, 1100, TS_INA_MODE_SHUNT_BUS_CONTINUOUS, &cfg) == TS_OK);
    TS_CHECK_EQ_INT(cfg, TS_INA226_CONFIG_POR);
    TS_CHECK_EQ_INT(ts_ina226_cycle_us(cfg), 2200);
    /* AVG 16 (010), 588 µs (011) both: 0100 0100 1101 1111. */
    TS_REQUIRE(ts_ina226_config(16, 588, 588, 7, &cfg) == TS_OK);
    TS_CHECK_EQ_INT(cfg, 0x44DF);
    TS_CHECK_EQ_INT(ts_ina226_cycle_us(cfg), 16 * 1176);
    /* Extremes: AVG 1024 (111), 8.244 ms (111) and 140 µs (000), power-down. */
    TS_REQUIRE(ts_ina226_config(1024, 8244, 140, TS_INA_MODE_POWER_DOWN, &cfg) == TS_OK);
    TS_CHECK_EQ_INT(cfg, 0x4000 | (7 << 9) | (7 << 6) | (0 << 3) | 0);
    TS_CHECK_EQ_INT(ts_ina226_cycle_us(cfg), 1024u * (8244 + 140));
    /* Each table value maps to its code. */
    static const uint16_t avgs[8] = {1, 4, 16, 64, 128, 256, 512, 1024};
    static const uint32_t cts[8] = {140, 204, 332, 588, 1100, 2116, 4156, 8244};
    for (unsigned i = 0; i < 8; i++) {
        TS_REQUIRE(ts_ina226_config(avgs[i], cts[i], cts[7 - i], 7, &cfg) == TS_OK);
        TS_CHECK_EQ_INT((cfg >> 9) & 7u, i);
        TS_CHECK_EQ_INT((cfg >> 6) & 7u, i);
        TS_CHECK_EQ_INT((cfg >> 3) & 7u, 7 - i);
    }
    TS_CHECK_EQ_INT(ts_ina226_config(2, 1100, 1100, 7, &cfg), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_ina226_config(1, 1000, 1100, 7, &cfg), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_ina226_config(1, 1100, 1101, 7, &cfg), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_ina226_config(1, 1100, 1100, 8, &cfg), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_ina226_config(1, 1100, 1100, 7, NULL), TS_ERR_ARG);
}

static void test_ina219_config(void)
{
    uint16_t cfg = 0;
    /* The power-on value 399Fh: 32 V, PGA /8, 12-bit bus and shunt, continuous. */
    TS_REQUIRE(ts_ina219_config(1, 8, 1, 1, TS_INA_MODE_SHUNT_BUS_CONTINUOUS, &cfg) == TS_OK);
    TS_CHECK_EQ_INT(cfg, TS_INA219_CONFIG_POR);
    TS_CHECK_EQ_INT(ts_ina219_cycle_us(cfg), 532 + 532);
    /* 16 V, PGA /1, 128 samples each (1111): 0000 0111 1111 1111. */
    TS_REQUIRE(ts_ina219_config(0, 1, 128, 128, 7, &cfg) == TS_OK);
    TS_CHECK_EQ_INT(cfg, 0x07FF);
    TS_CHECK_EQ_INT(ts_ina219_cycle_us(cfg), 2 * 68100);
    /* PGA /2 (01), 2 samples bus (1001), 16 samples shunt (1100). */
    TS_REQUIRE(ts_ina219_config(1, 2, 2, 16, 7, &cfg) == TS_OK);
    TS_CHECK_EQ_INT(cfg, 0x2000 | (1 << 11) | (0x9 << 7) | (0xC << 3) | 7);
    TS_CHECK_EQ_INT(ts_ina219_cycle_us(cfg), 1060 + 8510);
    /* 9-bit single conversions (0X00) as a chip may hold them. */
    TS_CHECK_EQ_INT(ts_ina219_cycle_us(0x0000), 84 + 84);
    TS_CHECK_EQ_INT(ts_ina219_config(1, 3, 1, 1, 7, &cfg), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_ina219_config(1, 8, 3, 1, 7, &cfg), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_ina219_config(1, 8, 1, 256, 7, &cfg), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_ina219_config(1, 8, 1, 1, 9, &cfg), TS_ERR_ARG);
}

int main(void)
{
    TS_RUN(test_register_byte_order);
    TS_RUN(test_ina226_datasheet_example);
    TS_RUN(test_ina226_ranges);
    TS_RUN(test_ina219_registers);
    TS_RUN(test_current_and_power_rounding);
    TS_RUN(test_ina226_config);
    TS_RUN(test_ina219_config);
    return TS_RESULT();
}
