/*
 * INA219 / INA226 register conversions (ts_ina.h; datasheets SBOS448, SBOS547).
 */
#include "ts_ina.h"

#include <stddef.h>

#include "ts_frame.h" /* TS_OK, TS_ERR_ARG */

/* INA226 AVG codes 0..7 (SBOS547B 7.1.1, AVG bit settings table). */
static const uint16_t INA226_AVERAGES[8] = {1, 4, 16, 64, 128, 256, 512, 1024};
/* INA226 VBUSCT / VSHCT codes 0..7 in µs (SBOS547B 7.1.1, conversion time tables). */
static const uint16_t INA226_CT_US[8] = {140, 204, 332, 588, 1100, 2116, 4156, 8244};
/* INA219 BADC / SADC codes 0..15 in µs (SBOS448G 8.6.2.1, ADC settings table): 0X00..0X11 are
 * one 9..12-bit conversion (bit 2 is don't-care), 1000..1111 average 1..128 12-bit samples. */
static const uint32_t INA219_ADC_US[16] = {84,   148,  276,   532,   84,    148,   276,   532,
                                           532,  1060, 2130,  4260,  8510,  17020, 34050, 68100};

static int64_t div_round(int64_t num, int64_t den)
{
    /* Round half away from zero, den > 0. */
    return num >= 0 ? (num + den / 2) / den : -((-num + den / 2) / den);
}

uint16_t ts_ina_reg_from_be(const uint8_t bytes[2])
{
    return (uint16_t)(((uint16_t)bytes[0] << 8) | bytes[1]);
}

void ts_ina_reg_to_be(uint16_t value, uint8_t bytes[2])
{
    bytes[0] = (uint8_t)(value >> 8);
    bytes[1] = (uint8_t)(value & 0xFFu);
}

static int32_t as_int16(uint16_t reg)
{
    /* Two's complement without relying on implementation-defined narrowing. */
    return reg >= 0x8000u ? (int32_t)reg - 65536 : (int32_t)reg;
}

int32_t ts_ina_shunt_nv(ts_ina_chip_t chip, uint16_t reg)
{
    switch (chip) {
    case TS_INA219:
        return as_int16(reg) * TS_INA219_SHUNT_LSB_NV;
    case TS_INA226:
        return as_int16(reg) * TS_INA226_SHUNT_LSB_NV;
    default:
        return 0;
    }
}

int32_t ts_ina_bus_uv(ts_ina_chip_t chip, uint16_t reg)
{
    switch (chip) {
    case TS_INA219:
        return (int32_t)(reg >> 3) * TS_INA219_BUS_LSB_UV;
    case TS_INA226:
        return (int32_t)(reg & 0x7FFFu) * TS_INA226_BUS_LSB_UV;
    default:
        return 0;
    }
}

int64_t ts_ina_current_ua(int64_t shunt_nv, uint32_t shunt_mohm)
{
    if (shunt_mohm == 0) {
        return 0;
    }
    return div_round(shunt_nv, (int64_t)shunt_mohm);
}

int64_t ts_ina_power_uw(int64_t bus_uv, int64_t current_ua)
{
    return div_round(bus_uv * current_ua, 1000000);
}

int ts_ina_decode(ts_ina_chip_t chip, uint16_t shunt_reg, uint16_t bus_reg, uint32_t shunt_mohm,
                  ts_ina_sample_t *out)
{
    if ((chip != TS_INA219 && chip != TS_INA226) || shunt_mohm == 0 || out == NULL) {
        return TS_ERR_ARG;
    }
    out->shunt_nv = ts_ina_shunt_nv(chip, shunt_reg);
    out->bus_uv = ts_ina_bus_uv(chip, bus_reg);
    out->current_ua = ts_ina_current_ua(out->shunt_nv, shunt_mohm);
    out->power_uw = ts_ina_power_uw(out->bus_uv, out->current_ua);
    out->overflow = (uint8_t)(chip == TS_INA219 && (bus_reg & TS_INA219_BUS_OVF) != 0);
    return TS_OK;
}

static int index_of_u16(const uint16_t *table, size_t n, uint32_t value)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i] == value) {
            return (int)i;
        }
    }
    return -1;
}

int ts_ina226_config(uint16_t averages, uint32_t vbus_ct_us, uint32_t vsh_ct_us, uint8_t mode,
                     uint16_t *out)
{
    const int avg = index_of_u16(INA226_AVERAGES, 8, averages);
    const int vbus = index_of_u16(INA226_CT_US, 8, vbus_ct_us);
    const int vsh = index_of_u16(INA226_CT_US, 8, vsh_ct_us);
    if (avg < 0 || vbus < 0 || vsh < 0 || mode > 7 || out == NULL) {
        return TS_ERR_ARG;
    }
    /* D14 reads 1 after power-on; writing it back unchanged keeps the reserved bit as found. */
    *out = (uint16_t)(0x4000u | ((unsigned)avg << 9) | ((unsigned)vbus << 6) |
                      ((unsigned)vsh << 3) | mode);
    return TS_OK;
}

uint32_t ts_ina226_cycle_us(uint16_t config)
{
    const uint32_t avg = INA226_AVERAGES[(config >> 9) & 7u];
    const uint32_t vbus = INA226_CT_US[(config >> 6) & 7u];
    const uint32_t vsh = INA226_CT_US[(config >> 3) & 7u];
    return avg * (vbus + vsh);
}

static int ina219_adc_code(uint16_t samples)
{
    if (samples == 1) {
        return 0x3; /* one 12-bit conversion, the power-on code */
    }
    for (int log2 = 1; log2 <= 7; log2++) {
        if (samples == (1u << log2)) {
            return 0x8 | log2;
        }
    }
    return -1;
}

int ts_ina219_config(int bus_32v, uint8_t pga_div, uint16_t bus_samples, uint16_t shunt_samples,
                     uint8_t mode, uint16_t *out)
{
    int pg;
    switch (pga_div) {
    case 1: pg = 0; break;
    case 2: pg = 1; break;
    case 4: pg = 2; break;
    case 8: pg = 3; break;
    default: pg = -1; break;
    }
    const int badc = ina219_adc_code(bus_samples);
    const int sadc = ina219_adc_code(shunt_samples);
    if (pg < 0 || badc < 0 || sadc < 0 || mode > 7 || out == NULL) {
        return TS_ERR_ARG;
    }
    *out = (uint16_t)((bus_32v ? 0x2000u : 0u) | ((unsigned)pg << 11) | ((unsigned)badc << 7) |
                      ((unsigned)sadc << 3) | mode);
    return TS_OK;
}

uint32_t ts_ina219_cycle_us(uint16_t config)
{
    return INA219_ADC_US[(config >> 7) & 0xFu] + INA219_ADC_US[(config >> 3) & 0xFu];
}
