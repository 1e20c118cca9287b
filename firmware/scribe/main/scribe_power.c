/*
 * Optional INA219 / INA226 current monitors on I2C (new master driver, driver/i2c_master.h):
 * one monitor per measured board, sampled every CONFIG_TINYSPLIT_SCRIBE_POWER_PERIOD_MS while
 * the scribe runs, streamed as `TS1 evt power dev=<n> t_ns=.. bus_mv=.. current_ua=..
 * power_uw=..`. Register arithmetic is the portable ts_ina (host-tested); this file only moves
 * bytes. Current comes from the shunt register and CONFIG_TINYSPLIT_SCRIBE_SHUNT_MOHM, so the
 * Calibration register is never written (ts_ina.h says why).
 */
#include <inttypes.h>

#include "esp_check.h"
#include "esp_log.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "scribe.h"
#include "sdkconfig.h"
#include "ts_ina.h"

static const char *TAG = "scribe_power";

static volatile uint32_t s_samples;
static volatile uint32_t s_errors;

#if CONFIG_TINYSPLIT_SCRIBE_POWER

#include "driver/i2c_master.h"

#if CONFIG_TINYSPLIT_SCRIBE_POWER_INA219
#define CHIP TS_INA219
#define CHIP_NAME "ina219"
#else
#define CHIP TS_INA226
#define CHIP_NAME "ina226"
#endif

#define I2C_TIMEOUT_MS 20
#define TASK_STACK_BYTES 6144
#define TASK_PRIORITY 4

static const uint16_t s_addr[] = {
    CONFIG_TINYSPLIT_SCRIBE_INA_ADDR_1,
#if CONFIG_TINYSPLIT_SCRIBE_INA_COUNT >= 2
    CONFIG_TINYSPLIT_SCRIBE_INA_ADDR_2,
#endif
#if CONFIG_TINYSPLIT_SCRIBE_INA_COUNT >= 3
    CONFIG_TINYSPLIT_SCRIBE_INA_ADDR_3,
#endif
#if CONFIG_TINYSPLIT_SCRIBE_INA_COUNT >= 4
    CONFIG_TINYSPLIT_SCRIBE_INA_ADDR_4,
#endif
#if CONFIG_TINYSPLIT_SCRIBE_INA_COUNT >= 5
    CONFIG_TINYSPLIT_SCRIBE_INA_ADDR_5,
#endif
#if CONFIG_TINYSPLIT_SCRIBE_INA_COUNT >= 6
    CONFIG_TINYSPLIT_SCRIBE_INA_ADDR_6,
#endif
};
#define DEVICES (sizeof(s_addr) / sizeof(s_addr[0]))

static i2c_master_bus_handle_t s_bus;
static i2c_master_dev_handle_t s_dev[DEVICES];

static esp_err_t read_reg(i2c_master_dev_handle_t dev, uint8_t reg, uint16_t *value)
{
    uint8_t raw[2];
    /* Pointer write, repeated start, two bytes MSB first. */
    esp_err_t err = i2c_master_transmit_receive(dev, &reg, 1, raw, sizeof(raw), I2C_TIMEOUT_MS);
    if (err == ESP_OK) {
        *value = ts_ina_reg_from_be(raw);
    }
    return err;
}

static esp_err_t write_reg(i2c_master_dev_handle_t dev, uint8_t reg, uint16_t value)
{
    uint8_t buf[3] = {reg, 0, 0};
    ts_ina_reg_to_be(value, &buf[1]);
    return i2c_master_transmit(dev, buf, sizeof(buf), I2C_TIMEOUT_MS);
}

static esp_err_t chip_config(uint16_t *config, uint32_t *cycle_us)
{
#if CONFIG_TINYSPLIT_SCRIBE_POWER_INA219
    int rc = ts_ina219_config(1, CONFIG_TINYSPLIT_SCRIBE_INA219_PGA,
                              CONFIG_TINYSPLIT_SCRIBE_INA_AVERAGES,
                              CONFIG_TINYSPLIT_SCRIBE_INA_AVERAGES,
                              TS_INA_MODE_SHUNT_BUS_CONTINUOUS, config);
    *cycle_us = ts_ina219_cycle_us(*config);
#else
    int rc = ts_ina226_config(CONFIG_TINYSPLIT_SCRIBE_INA_AVERAGES,
                              CONFIG_TINYSPLIT_SCRIBE_INA226_CONV_US,
                              CONFIG_TINYSPLIT_SCRIBE_INA226_CONV_US,
                              TS_INA_MODE_SHUNT_BUS_CONTINUOUS, config);
    *cycle_us = ts_ina226_cycle_us(*config);
#endif
    return rc == 0 ? ESP_OK : ESP_ERR_INVALID_ARG;
}

/* Reset one monitor and write its configuration; a missing monitor is logged, not fatal (it
 * shows up as read errors in `status`). */
static void setup_device(size_t i, uint16_t config)
{
    esp_err_t err = write_reg(s_dev[i], TS_INA_REG_CONFIG, TS_INA_CONFIG_RESET);
    if (err == ESP_OK) {
        vTaskDelay(pdMS_TO_TICKS(2) + 1); /* reset completes well within this */
        err = write_reg(s_dev[i], TS_INA_REG_CONFIG, config);
    }
#if !CONFIG_TINYSPLIT_SCRIBE_POWER_INA219
    uint16_t id = 0;
    if (err == ESP_OK && read_reg(s_dev[i], TS_INA226_REG_MANUFACTURER_ID, &id) == ESP_OK &&
        id != TS_INA226_MANUFACTURER_ID) {
        ESP_LOGW(TAG, "dev %u at 0x%02x: manufacturer id 0x%04x is not an INA226", (unsigned)i + 1,
                 s_addr[i], id);
    }
#endif
    if (err != ESP_OK) {
        ESP_LOGW(TAG, "dev %u at 0x%02x: %s", (unsigned)i + 1, s_addr[i], esp_err_to_name(err));
    }
}

static void sample_device(size_t i)
{
    uint16_t shunt = 0, bus = 0;
    if (read_reg(s_dev[i], TS_INA_REG_SHUNT, &shunt) != ESP_OK ||
        read_reg(s_dev[i], TS_INA_REG_BUS, &bus) != ESP_OK) {
        s_errors++;
        return;
    }
    int64_t t_ns;
    /* The reading is the average of the conversions that ended before it; stamped now. */
    if (!scribe_time_ns(esp_timer_get_time(), &t_ns)) {
        return; /* stopped meanwhile */
    }
    ts_ina_sample_t s;
    if (ts_ina_decode(CHIP, shunt, bus, CONFIG_TINYSPLIT_SCRIBE_SHUNT_MOHM, &s) != 0) {
        s_errors++;
        return;
    }
    s_samples++;
    const int32_t bus_mv = (s.bus_uv + 500) / 1000;
    ts_console_event(scribe_console(), "power",
                     "dev=%u t_ns=%" PRId64 " bus_mv=%" PRId32 " current_ua=%" PRId64
                     " power_uw=%" PRId64,
                     (unsigned)i + 1, t_ns, bus_mv, s.current_ua, s.power_uw);
}

static void power_task(void *arg)
{
    (void)arg;
    TickType_t period = pdMS_TO_TICKS(CONFIG_TINYSPLIT_SCRIBE_POWER_PERIOD_MS);
    if (period == 0) {
        period = 1;
    }
    TickType_t last = xTaskGetTickCount();
    for (;;) {
        vTaskDelayUntil(&last, period);
        int64_t t_ns;
        if (!scribe_time_ns(esp_timer_get_time(), &t_ns)) {
            continue;
        }
        for (size_t i = 0; i < DEVICES; i++) {
            sample_device(i);
        }
    }
}

const char *scribe_power_chip_name(void)
{
    return CHIP_NAME;
}

esp_err_t scribe_power_start(void)
{
    uint16_t config = 0;
    uint32_t cycle_us = 0;
    ESP_RETURN_ON_ERROR(chip_config(&config, &cycle_us), TAG,
                        "averages %d / conversion time not in the " CHIP_NAME " tables",
                        CONFIG_TINYSPLIT_SCRIBE_INA_AVERAGES);
    if (cycle_us > (uint32_t)CONFIG_TINYSPLIT_SCRIBE_POWER_PERIOD_MS * 1000u) {
        ESP_LOGW(TAG, "an averaged reading takes %lu us, longer than the %d ms period: "
                      "consecutive samples repeat values",
                 (unsigned long)cycle_us, CONFIG_TINYSPLIT_SCRIBE_POWER_PERIOD_MS);
    }

    const i2c_master_bus_config_t bus_cfg = {
        .i2c_port = -1,
        .sda_io_num = CONFIG_TINYSPLIT_SCRIBE_I2C_SDA,
        .scl_io_num = CONFIG_TINYSPLIT_SCRIBE_I2C_SCL,
        .clk_source = I2C_CLK_SRC_DEFAULT,
        .glitch_ignore_cnt = 7,
        .flags.enable_internal_pullup = 1, /* weak: fit external pull-ups (README) */
    };
    ESP_RETURN_ON_ERROR(i2c_new_master_bus(&bus_cfg, &s_bus), TAG, "I2C bus");
    for (size_t i = 0; i < DEVICES; i++) {
        const i2c_device_config_t dev_cfg = {
            .dev_addr_length = I2C_ADDR_BIT_LEN_7,
            .device_address = s_addr[i],
            .scl_speed_hz = CONFIG_TINYSPLIT_SCRIBE_I2C_HZ,
        };
        ESP_RETURN_ON_ERROR(i2c_master_bus_add_device(s_bus, &dev_cfg, &s_dev[i]), TAG,
                            "I2C device 0x%02x", s_addr[i]);
        setup_device(i, config);
    }
    ESP_LOGI(TAG, "%u x " CHIP_NAME ", config 0x%04x, %lu us per reading, every %d ms",
             (unsigned)DEVICES, config, (unsigned long)cycle_us,
             CONFIG_TINYSPLIT_SCRIBE_POWER_PERIOD_MS);
    BaseType_t ok = xTaskCreate(power_task, "scribe_power", TASK_STACK_BYTES, NULL,
                                TASK_PRIORITY, NULL);
    return ok == pdPASS ? ESP_OK : ESP_ERR_NO_MEM;
}

#else /* !CONFIG_TINYSPLIT_SCRIBE_POWER */

const char *scribe_power_chip_name(void)
{
    return "none";
}

esp_err_t scribe_power_start(void)
{
    (void)TAG;
    return ESP_OK;
}

#endif

void scribe_power_counts(uint32_t *samples, uint32_t *errors)
{
    *samples = s_samples;
    *errors = s_errors;
}

void scribe_power_reset_counts(void)
{
    s_samples = 0;
    s_errors = 0;
}
