/*
 * The scribe board: timestamps the mark pulses of every pipeline stage and streams them over
 * the console (protocol: firmware/scribe/README.md). Tasks:
 *   scribe_decode  edges from the capture interrupts -> 64-bit ns -> ts_mark decoders -> events
 *   scribe_console console bytes (ts_console_io, shared with the pipeline boards) -> ts_console
 *                  (hello / start / stop / status)
 *   scribe_power   optional current monitors (scribe_power.c)
 *
 * Time base: `start` zeroes the capture counters (scribe_capture_zero) and records the
 * esp_timer microsecond at that instant. An edge's 32-bit capture value is extended to 64 bits
 * with the esp_timer value its interrupt read as the reference (ts_tick_extend), so the 53.7 s
 * wrap of the 80 MHz counter never loses time, however long the lines stay silent.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp_check.h"
#include "esp_log.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "scribe.h"
#include "sdkconfig.h"
#include "ts_console.h"
#include "ts_console_io.h"
#include "ts_mark.h"

static const char *TAG = "scribe";

#define LINES CONFIG_TINYSPLIT_SCRIBE_LINES
#define UNIT_US CONFIG_TINYSPLIT_SCRIBE_PULSE_UNIT_US
#define TASK_STACK_BYTES 6144
#define DECODE_PRIORITY 10 /* above the console and power tasks: the edge queue is finite */
#define CONSOLE_PRIORITY 5
#define IDLE_POLL_MS 50
#define CONSOLE_POLL_MS 1000
/* Edges reach the decoder at most this late; timeouts are only declared past it. */
#define QUEUE_LATENCY_US 20000

#if CONFIG_TINYSPLIT_SCRIBE_CAPTURE_MCPWM
#define SYNC_GPIO CONFIG_TINYSPLIT_SCRIBE_SYNC_GPIO
#define USE_MCPWM true
#else
#define SYNC_GPIO (-1)
#define USE_MCPWM false
#endif

static const int s_gpio[LINES] = {
    CONFIG_TINYSPLIT_SCRIBE_GPIO_1,
#if LINES >= 2
    CONFIG_TINYSPLIT_SCRIBE_GPIO_2,
#endif
#if LINES >= 3
    CONFIG_TINYSPLIT_SCRIBE_GPIO_3,
#endif
#if LINES >= 4
    CONFIG_TINYSPLIT_SCRIBE_GPIO_4,
#endif
#if LINES >= 5
    CONFIG_TINYSPLIT_SCRIBE_GPIO_5,
#endif
#if LINES >= 6
    CONFIG_TINYSPLIT_SCRIBE_GPIO_6,
#endif
#if LINES >= 7
    CONFIG_TINYSPLIT_SCRIBE_GPIO_7,
#endif
#if LINES >= 8
    CONFIG_TINYSPLIT_SCRIBE_GPIO_8,
#endif
};

static ts_console_t s_console;
static QueueHandle_t s_queue;
static SemaphoreHandle_t s_lock; /* guards everything below */
static bool s_running;
static int64_t s_start_us;
static ts_mark_decoder_t s_dec[LINES];
static ts_tick_ext_t s_ext[SCRIBE_CAPTURE_CLOCKS];

ts_console_t *scribe_console(void)
{
    return &s_console;
}

bool scribe_time_ns(int64_t now_us, int64_t *t_ns)
{
    xSemaphoreTake(s_lock, portMAX_DELAY);
    const bool running = s_running;
    *t_ns = (now_us - s_start_us) * 1000;
    xSemaphoreGive(s_lock);
    return running;
}

/* An edge's time in ns since `start`; call with s_lock held. */
static int64_t edge_time_ns(const scribe_edge_t *e)
{
    const int64_t since_us = e->us - s_start_us;
    if (scribe_capture_kind() == SCRIBE_CAPTURE_GPIO) {
        return since_us * 1000;
    }
    const uint32_t hz = scribe_capture_resolution_hz();
    /* The counter was zeroed at s_start_us: its expected count now is the reference. */
    const int64_t ref = ts_ns_to_ticks(since_us * 1000, hz);
    const int64_t ticks = ts_tick_extend(&s_ext[scribe_capture_clock(e->line)], e->ticks, ref, 1);
    return ts_ticks_to_ns(ticks, hz);
}

static void decode_task(void *arg)
{
    (void)arg;
    for (;;) {
        scribe_edge_t e;
        ts_mark_event_t ev = {0};
        int emit = 0;
        if (xQueueReceive(s_queue, &e, pdMS_TO_TICKS(IDLE_POLL_MS)) == pdTRUE) {
            xSemaphoreTake(s_lock, portMAX_DELAY);
            /* Edges queued before the latest `start` belong to no time base. */
            if (s_running && e.us >= s_start_us && e.line < LINES) {
                emit = ts_mark_decoder_edge(&s_dec[e.line], edge_time_ns(&e), e.level, &ev);
            }
            xSemaphoreGive(s_lock);
        } else {
            /* Quiet queue: let lines stuck high time out now. */
            xSemaphoreTake(s_lock, portMAX_DELAY);
            if (s_running) {
                const int64_t now_ns =
                    (esp_timer_get_time() - QUEUE_LATENCY_US - s_start_us) * 1000;
                for (int i = 0; i < LINES; i++) {
                    ts_mark_decoder_poll(&s_dec[i], now_ns);
                }
            }
            xSemaphoreGive(s_lock);
        }
        if (emit) {
            ts_console_event(&s_console, "mark", "line=%u mark=%s t_ns=%" PRId64,
                             (unsigned)e.line + 1, ts_mark_name(ev.mark), ev.t_ns);
        }
    }
}

/* "12.5" for 80 MHz, "1000" for 1 MHz: the tick in ns without trailing zeros. */
static void format_resolution_ns(char *out, size_t cap, uint32_t hz)
{
    const uint64_t ps = 1000000000000ULL / hz;
    uint64_t frac = ps % 1000;
    int digits = 3;
    while (digits > 0 && frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    if (digits == 0) {
        snprintf(out, cap, "%" PRIu64, ps / 1000);
    } else {
        snprintf(out, cap, "%" PRIu64 ".%0*" PRIu64, ps / 1000, digits, frac);
    }
}

static void cmd_hello(ts_console_t *con, void *ctx, int argc, char **argv)
{
    (void)ctx;
    (void)argc;
    (void)argv;
    char res[24];
    format_resolution_ns(res, sizeof(res), scribe_capture_resolution_hz());
    ts_console_ok(con, "proto=%d role=scribe lines=%d resolution_ns=%s power=%s unit_us=%d",
                  TS_CONSOLE_VERSION, LINES, res, scribe_power_chip_name(), UNIT_US);
}

static void cmd_start(ts_console_t *con, void *ctx, int argc, char **argv)
{
    (void)ctx;
    (void)argc;
    (void)argv;
    xSemaphoreTake(s_lock, portMAX_DELAY);
    scribe_capture_enable(false);
    xQueueReset(s_queue);
    int64_t zero_us = 0;
    const esp_err_t err = scribe_capture_zero(&zero_us);
    for (int i = 0; i < LINES; i++) {
        ts_mark_decoder_reset(&s_dec[i]);
    }
    for (int c = 0; c < SCRIBE_CAPTURE_CLOCKS; c++) {
        ts_tick_ext_init(&s_ext[c]);
    }
    scribe_capture_clear_overflows();
    scribe_power_reset_counts();
    s_start_us = zero_us;
    s_running = err == ESP_OK;
    scribe_capture_enable(s_running);
    xSemaphoreGive(s_lock);
    if (err != ESP_OK) {
        ts_console_err(con, "io", "capture sync failed: %s", esp_err_to_name(err));
        return;
    }
    ts_console_ok(con, "running=1");
}

static void cmd_stop(ts_console_t *con, void *ctx, int argc, char **argv)
{
    (void)ctx;
    (void)argc;
    (void)argv;
    xSemaphoreTake(s_lock, portMAX_DELAY);
    scribe_capture_enable(false);
    s_running = false;
    xSemaphoreGive(s_lock);
    ts_console_ok(con, "running=0");
}

static void cmd_status(ts_console_t *con, void *ctx, int argc, char **argv)
{
    (void)ctx;
    (void)argc;
    (void)argv;
    char buf[TS_CONSOLE_LINE_MAX - 16];
    size_t len = 0;
    uint32_t samples = 0, errors = 0;
    scribe_power_counts(&samples, &errors);

    xSemaphoreTake(s_lock, portMAX_DELAY);
    const int64_t t_ns = s_running ? (esp_timer_get_time() - s_start_us) * 1000 : 0;
    len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                            "running=%d capture=%s lines=%d t_ns=%" PRId64
                            " overflows=%" PRIu32 " power_samples=%" PRIu32
                            " power_errors=%" PRIu32 " console_drops=%" PRIu32,
                            s_running ? 1 : 0, scribe_capture_kind_name(), LINES, t_ns,
                            scribe_capture_overflows(), samples, errors, ts_console_io_drops());
    for (int i = 0; i < LINES && len < sizeof(buf); i++) {
        const ts_mark_line_stats_t *st = ts_mark_decoder_stats(&s_dec[i]);
        len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                                " line%d_marks=%" PRIu32 ",%" PRIu32 ",%" PRIu32 ",%" PRIu32
                                ",%" PRIu32 ",%" PRIu32 " line%d_glitches=%" PRIu32
                                " line%d_timeouts=%" PRIu32,
                                i + 1, st->per_kind[0], st->per_kind[1], st->per_kind[2],
                                st->per_kind[3], st->per_kind[4], st->per_kind[5], i + 1,
                                st->glitches, i + 1, st->timeouts);
    }
    xSemaphoreGive(s_lock);
    if (len >= sizeof(buf)) {
        ts_console_err(con, "size", "status longer than %u bytes", (unsigned)sizeof(buf));
        return;
    }
    ts_console_ok(con, "%s", buf);
}

/* name, usage, arguments (at least, at most), handler */
static const ts_console_command_t s_commands[] = {
    {"hello", "hello", 0, 0, cmd_hello},
    {"start", "start", 0, 0, cmd_start},
    {"stop", "stop", 0, 0, cmd_stop},
    {"status", "status", 0, 0, cmd_status},
};

static void console_task(void *arg)
{
    (void)arg;
    char buf[128];
    for (;;) {
        const int n = ts_console_io_read(buf, sizeof(buf), CONSOLE_POLL_MS);
        if (n > 0) {
            ts_console_feed(&s_console, buf, (size_t)n);
        } else if (n < 0) {
            vTaskDelay(pdMS_TO_TICKS(100)); /* a driver error: do not spin */
        }
    }
}

void app_main(void)
{
    ESP_ERROR_CHECK(ts_console_io_init());
    s_lock = xSemaphoreCreateMutex();
    s_queue = xQueueCreate(CONFIG_TINYSPLIT_SCRIBE_QUEUE_LEN, sizeof(scribe_edge_t));
    if (s_lock == NULL || s_queue == NULL) {
        ESP_LOGE(TAG, "out of memory");
        abort();
    }
    for (int i = 0; i < LINES; i++) {
        ESP_ERROR_CHECK(ts_mark_decoder_init(&s_dec[i], (uint32_t)UNIT_US * 1000u) == 0
                            ? ESP_OK
                            : ESP_ERR_INVALID_ARG);
    }
    ESP_ERROR_CHECK(scribe_capture_init(s_gpio, LINES, SYNC_GPIO, USE_MCPWM, s_queue));
    ts_console_init(&s_console, s_commands, sizeof(s_commands) / sizeof(s_commands[0]),
                    ts_console_io_write, NULL);

    /* Power is optional: a bus that fails to come up is logged, the scribe still runs. */
    esp_err_t err = scribe_power_start();
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "power monitors disabled: %s", esp_err_to_name(err));
    }

    if (xTaskCreate(decode_task, "scribe_decode", TASK_STACK_BYTES, NULL, DECODE_PRIORITY,
                    NULL) != pdPASS ||
        xTaskCreate(console_task, "scribe_console", TASK_STACK_BYTES, NULL, CONSOLE_PRIORITY,
                    NULL) != pdPASS) {
        ESP_LOGE(TAG, "cannot create tasks");
        abort();
    }
    ESP_LOGI(TAG, "ready: %d lines, %s capture, unit %d us, power %s", LINES,
             scribe_capture_kind_name(), UNIT_US, scribe_power_chip_name());
}
