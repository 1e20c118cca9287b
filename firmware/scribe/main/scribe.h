/*
 * The scribe board's modules (ESP-IDF glue around the portable ts_mark / ts_ina / ts_console of
 * the tinysplit_core component, whose ts_console_io also serves the console port): edge capture
 * (scribe_capture.c), current monitors (scribe_power.c) and the time base, decoding and commands
 * (scribe_main.c).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"
#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "ts_console.h"

#define SCRIBE_MAX_LINES 8

/** One captured edge, queued from the capture interrupt to the decoding task (16 bytes). */
typedef struct {
    uint8_t line;     /* 0-based */
    uint8_t level;    /* 1: rising, 0: falling */
    uint16_t unused;
    uint32_t ticks;   /* MCPWM capture counter (wraps every 53.7 s at 80 MHz); 0 in GPIO mode */
    int64_t us;       /* esp_timer_get_time() in the interrupt: the coarse reference */
} scribe_edge_t;

typedef enum {
    SCRIBE_CAPTURE_MCPWM = 0,
    SCRIBE_CAPTURE_GPIO = 1,
} scribe_capture_kind_t;

/* ---- scribe_capture.c ------------------------------------------------------------------- */

/** Set up capture of both edges on `lines` GPIOs, pushing scribe_edge_t into `queue`. With
 *  `use_mcpwm`, tries MCPWM capture first and falls back to GPIO interrupts if it fails.
 *  `sync_gpio` (MCPWM, > 3 lines): a free pin both capture groups sync to, or -1. Capture
 *  starts disabled (see scribe_capture_enable). */
esp_err_t scribe_capture_init(const int *gpios, int lines, int sync_gpio, bool use_mcpwm,
                              QueueHandle_t queue);

scribe_capture_kind_t scribe_capture_kind(void);
const char *scribe_capture_kind_name(void); /* "mcpwm" or "gpio" */

/** Tick rate of scribe_edge_t.ticks (80 MHz on the S3), or 1 MHz in GPIO mode (.us is used). */
uint32_t scribe_capture_resolution_hz(void);

/** The capture counter a line's ticks come from (its MCPWM group; 0 in GPIO mode). */
int scribe_capture_clock(int line);
#define SCRIBE_CAPTURE_CLOCKS 2

/** Zero every capture counter as close to one instant as the hardware allows and return
 *  esp_timer_get_time() at that instant in `*zero_us` (the time base's origin). */
esp_err_t scribe_capture_zero(int64_t *zero_us);

/** Let the interrupts queue edges (true) or drop them (false). */
void scribe_capture_enable(bool on);

/** Edges dropped because the queue was full, since the last clear. */
uint32_t scribe_capture_overflows(void);
void scribe_capture_clear_overflows(void);

/* ---- scribe_power.c --------------------------------------------------------------------- */

/** "none", "ina219" or "ina226" (Kconfig). */
const char *scribe_power_chip_name(void);

/** Configure the monitors and start the sampling task (no-op when power is disabled). Samples
 *  are taken and streamed only while scribe_time_now_ns() has a time base. */
esp_err_t scribe_power_start(void);

/** Readings streamed and failed I2C reads since the last reset. */
void scribe_power_counts(uint32_t *samples, uint32_t *errors);
void scribe_power_reset_counts(void);

/* ---- scribe_main.c ---------------------------------------------------------------------- */

/** The console every module emits its events on. */
ts_console_t *scribe_console(void);

/** Nanoseconds since `start` for an esp_timer_get_time() value; false while stopped. */
bool scribe_time_ns(int64_t now_us, int64_t *t_ns);
