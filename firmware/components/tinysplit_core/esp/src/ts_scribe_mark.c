/*
 * Scribe marks: GPIO pulses whose rising edge the scribe board timestamps (ts_mark.h).
 */
#include "driver/gpio.h"
#include "esp_check.h"
#include "esp_rom_sys.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "ts_mark.h"
#include "ts_scribe_mark.h"

/* Pulses up to this width are emitted with interrupts masked on this core, so an ISR cannot
 * stretch a pulse past the scribe's 35 % width tolerance (3.5 us at the default 10 us unit).
 * Wider pulses tolerate ISR jitter and must not block interrupts that long. */
#define TS_SCRIBE_CRITICAL_MAX_US 100u

static const char *TAG = "ts_scribe_mark";

static int s_gpio = -1;
static uint32_t s_unit_us;
static int64_t s_low_since_us; /* esp_timer time of the last falling edge */
static portMUX_TYPE s_lock = portMUX_INITIALIZER_UNLOCKED;

esp_err_t ts_scribe_mark_init(int gpio, uint32_t unit_us)
{
    s_gpio = -1;
    if (gpio < 0) {
        return ESP_OK;
    }
    ESP_RETURN_ON_FALSE(GPIO_IS_VALID_OUTPUT_GPIO(gpio), ESP_ERR_INVALID_ARG, TAG,
                        "GPIO %d cannot drive an output", gpio);
    ESP_RETURN_ON_FALSE(unit_us >= TS_MARK_UNIT_US_MIN && unit_us <= TS_MARK_UNIT_US_MAX,
                        ESP_ERR_INVALID_ARG, TAG, "pulse unit %u us out of range",
                        (unsigned)unit_us);
    const gpio_config_t io = {
        .pin_bit_mask = 1ULL << gpio,
        .mode = GPIO_MODE_OUTPUT,
        .pull_up_en = GPIO_PULLUP_DISABLE,
        .pull_down_en = GPIO_PULLDOWN_DISABLE,
        .intr_type = GPIO_INTR_DISABLE,
    };
    ESP_RETURN_ON_ERROR(gpio_config(&io), TAG, "configuring GPIO %d", gpio);
    ESP_RETURN_ON_ERROR(gpio_set_level((gpio_num_t)gpio, 0), TAG, "GPIO %d low", gpio);
    s_unit_us = unit_us;
    s_gpio = gpio;
    return ESP_OK;
}

void ts_scribe_mark(ts_mark_t mark)
{
    if (s_gpio < 0) {
        return;
    }
    uint32_t width_us = ts_mark_pulse_us(mark, s_unit_us);
    if (width_us == 0) {
        return;
    }
    gpio_num_t pin = (gpio_num_t)s_gpio;
    /* At least one unit low between two pulses: marks can follow each other at once (the RX
     * marks of an injected input), and the scribe's capture interrupt must see the falling edge
     * before the next rising one. */
    int64_t low_us = esp_timer_get_time() - s_low_since_us;
    if (low_us < (int64_t)s_unit_us) {
        esp_rom_delay_us(s_unit_us - (uint32_t)low_us);
    }
    if (width_us <= TS_SCRIBE_CRITICAL_MAX_US) {
        portENTER_CRITICAL(&s_lock);
        gpio_set_level(pin, 1);
        esp_rom_delay_us(width_us);
        gpio_set_level(pin, 0);
        portEXIT_CRITICAL(&s_lock);
    } else {
        gpio_set_level(pin, 1);
        esp_rom_delay_us(width_us);
        gpio_set_level(pin, 0);
    }
    s_low_since_us = esp_timer_get_time();
}
