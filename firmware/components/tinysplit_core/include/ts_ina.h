/*
 * INA219 / INA226 current monitor register conversions (portable, no ESP-IDF, no I/O).
 *
 * Sources: TI INA219 datasheet SBOS448 (rev G, Dec 2015) and INA226 datasheet SBOS547 (2011 and
 * rev B, Sep 2024); sections are cited next to each constant.
 *
 * Byte order: every register is 16 bits sent most-significant byte first over I2C, both for
 * reads and writes (SBOS448G 8.5.6 "Writing to and Reading From the INA219"; SBOS547B 7.1
 * "All 16-bit device registers are two 8-bit bytes via the I2C interface", same MSB-first
 * framing in 6.5.5.3). A read is: write the register pointer byte, repeated start, read 2 bytes.
 *
 * Current is computed here from the shunt-voltage register and the shunt resistance, not read
 * from the chip's Current register. The Current register is only the shunt register times the
 * Calibration register, scaled (INA219: /4096, INA226: /2048; SBOS448G 8.5.1, SBOS547B 6.5.1):
 * it carries no information the shunt register lacks, but it truncates to a chosen Current_LSB,
 * can overflow (INA219 OVF), and its calibration must be recomputed and written for every shunt
 * value and after every chip reset (a reset zeroes it and the Current register reads 0). The
 * direct computation is exact to the shunt LSB, keeps the shunt value a runtime setting and
 * needs no state on the chip beyond the configuration register.
 *
 * Units: shunt voltage in nV, bus voltage in µV, current in µA (nV / mΩ = µA), power in µW.
 */
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TS_INA_NONE = 0,
    TS_INA219 = 219,
    TS_INA226 = 226,
} ts_ina_chip_t;

/* Register pointers (SBOS448G 8.6.1; SBOS547B Table 7-1). */
#define TS_INA_REG_CONFIG 0x00u
#define TS_INA_REG_SHUNT 0x01u
#define TS_INA_REG_BUS 0x02u
#define TS_INA_REG_POWER 0x03u
#define TS_INA_REG_CURRENT 0x04u
#define TS_INA_REG_CALIBRATION 0x05u
#define TS_INA226_REG_MASK_ENABLE 0x06u
#define TS_INA226_REG_ALERT_LIMIT 0x07u
#define TS_INA226_REG_MANUFACTURER_ID 0xFEu
#define TS_INA226_REG_DIE_ID 0xFFu

#define TS_INA226_MANUFACTURER_ID 0x5449u /* "TI" (SBOS547B 7.1.9) */
#define TS_INA226_DIE_ID 0x2260u          /* SBOS547B 7.1.10 */

/* Power-on configuration values (SBOS448G 8.6.2.1: 399Fh; SBOS547B 7.1.1: 4127h). */
#define TS_INA219_CONFIG_POR 0x399Fu
#define TS_INA226_CONFIG_POR 0x4127u
#define TS_INA_CONFIG_RESET 0x8000u /* RST, both chips: self-clearing power-on reset */

/* Shunt voltage LSB: INA219 10 µV at every PGA setting, the register sign-extends
 * (SBOS448G 8.6.3.1); INA226 2.5 µV, full scale 81.92 mV (SBOS547B 7.1.2). */
#define TS_INA219_SHUNT_LSB_NV 10000
#define TS_INA226_SHUNT_LSB_NV 2500

/* Bus voltage: INA219 bits 15..3 (BD12..BD0), LSB 4 mV, bit 1 CNVR, bit 0 OVF (SBOS448G
 * 8.6.3.2); INA226 bits 14..0, LSB 1.25 mV, bit 15 always 0 (SBOS547B 7.1.3). */
#define TS_INA219_BUS_LSB_UV 4000
#define TS_INA226_BUS_LSB_UV 1250
#define TS_INA219_BUS_CNVR 0x0002u /* conversion ready */
#define TS_INA219_BUS_OVF 0x0001u  /* math overflow of the chip's current / power */

/* INA226 Mask/Enable flags (SBOS547B 7.1.7). */
#define TS_INA226_MASK_CVRF 0x0008u /* conversion ready */
#define TS_INA226_MASK_OVF 0x0004u  /* math overflow */

/* Operating modes, the same 3-bit codes on both chips (SBOS448G 8.6.2.1, SBOS547B 7.1.1). */
#define TS_INA_MODE_POWER_DOWN 0u
#define TS_INA_MODE_SHUNT_BUS_TRIGGERED 3u
#define TS_INA_MODE_SHUNT_BUS_CONTINUOUS 7u

/** A 16-bit register from the two bytes read over I2C (MSB first). */
uint16_t ts_ina_reg_from_be(const uint8_t bytes[2]);

/** The two bytes to send for a 16-bit register value (MSB first). */
void ts_ina_reg_to_be(uint16_t value, uint8_t bytes[2]);

/** Shunt voltage in nV from the shunt register (two's complement); 0 for an unknown chip. */
int32_t ts_ina_shunt_nv(ts_ina_chip_t chip, uint16_t reg);

/** Bus voltage in µV from the bus register (INA219: reg >> 3; status bits ignored). */
int32_t ts_ina_bus_uv(ts_ina_chip_t chip, uint16_t reg);

/** Current in µA from a shunt voltage in nV and a shunt of `shunt_mohm` mΩ (> 0), rounded to
 *  nearest; 0 if shunt_mohm is 0. */
int64_t ts_ina_current_ua(int64_t shunt_nv, uint32_t shunt_mohm);

/** Power in µW from a bus voltage in µV and a current in µA, rounded to nearest. Computed from
 *  the averaged readings: it differs from the chip's own per-sample power average only when the
 *  voltage and the current vary together within one averaging window. */
int64_t ts_ina_power_uw(int64_t bus_uv, int64_t current_ua);

/** One decoded reading. */
typedef struct {
    int32_t shunt_nv;
    int32_t bus_uv;
    int64_t current_ua;
    int64_t power_uw;
    uint8_t overflow; /* INA219 OVF bit of the bus register (INA226: always 0 here) */
} ts_ina_sample_t;

/** Decode the shunt and bus registers of `chip`. Returns 0 or TS_ERR_ARG (unknown chip,
 *  shunt_mohm 0). */
int ts_ina_decode(ts_ina_chip_t chip, uint16_t shunt_reg, uint16_t bus_reg, uint32_t shunt_mohm,
                  ts_ina_sample_t *out);

/**
 * INA226 configuration register (SBOS547B 7.1.1, tables AVG / VBUSCT / VSHCT / MODE):
 * `averages` one of 1, 4, 16, 64, 128, 256, 512, 1024; conversion times in µs one of 140, 204,
 * 332, 588, 1100, 2116, 4156, 8244; `mode` 0..7. Bit 14 is kept at its power-on value (1), so
 * (1, 1100, 1100, 7) gives the POR value 4127h. Returns 0 or TS_ERR_ARG (value not in a table).
 */
int ts_ina226_config(uint16_t averages, uint32_t vbus_ct_us, uint32_t vsh_ct_us, uint8_t mode,
                     uint16_t *out);

/** Time in µs for one complete averaged shunt + bus result under INA226 configuration `config`
 *  (averages x (bus + shunt conversion time); SBOS547B 6.4.1). */
uint32_t ts_ina226_cycle_us(uint16_t config);

/**
 * INA219 configuration register (SBOS448G 8.6.2.1 and its ADC settings table): bus range 32 V
 * (`bus_32v` 1) or 16 V; PGA divider 1, 2, 4 or 8 (±40, 80, 160, 320 mV); samples averaged per
 * result for bus and shunt, 1..128 in powers of two (1 = a single 12-bit conversion, code 0011 as
 * in the power-on value); `mode` 0..7. (1, 8, 1, 1, 7) gives the POR value 399Fh. Returns 0 or
 * TS_ERR_ARG.
 */
int ts_ina219_config(int bus_32v, uint8_t pga_div, uint16_t bus_samples, uint16_t shunt_samples,
                     uint8_t mode, uint16_t *out);

/** Time in µs for one complete bus + shunt result under INA219 configuration `config`. */
uint32_t ts_ina219_cycle_us(uint16_t config);

#ifdef __cplusplus
}
#endif
