/*
 * The pipeline-board app shared by the transport firmwares (contract: ts_app.h).
 *
 * Tasks:
 *   stage   the only task that touches ts_stage and the console command set. It waits on one
 *           queue for received frames, console input and "links up", with a timeout up to the
 *           stage's next deadline, then polls the stage. On a stream transport it holds back UP
 *           frames while the stage's input buffer is full (on_frame).
 *   console reads bytes from the console channel, posts them to the stage task and waits until
 *           they were executed (one chunk in flight, no copy).
 *   link    runs transport->start (it may block until the peers appear), then posts "links up"
 *           and ends. The console answers meanwhile, so a misconfigured board can be fixed.
 *
 * Console commands are posted to the stage task rather than run under a mutex: commands and
 * frames are then handled in arrival order by one task and no portable call needs a lock. A
 * command that arrives during an inference waits in the queue, as it would wait for a mutex
 * held through the inference.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "esp_app_desc.h"
#include "esp_heap_caps.h"
#include "esp_log.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "sdkconfig.h"
#include "ts_app.h"
#include "ts_app_settings.h"
#include "ts_console_io.h"
#include "ts_console_stage.h"
#include "ts_model.h"
#include "ts_scribe_mark.h"

#define TS_APP_RX_SLOTS CONFIG_TINYSPLIT_RX_QUEUE_LEN
#define TS_APP_CONSOLE_CHUNK 128          /* console bytes per hand-over to the stage task */
#define TS_APP_CONSOLE_POLL_MS 1000
#define TS_APP_CONSOLE_STACK 3072
#define TS_APP_LINK_STACK 4096
#define TS_APP_STAGE_PRIORITY 5
#define TS_APP_CONSOLE_PRIORITY 4
#define TS_APP_LINK_PRIORITY 3
#define TS_APP_FATAL_DELAY_MS 5000        /* time to read the log before a fatal restart */
#define TS_APP_REBOOT_FLUSH_MS 200

typedef enum {
    TS_APP_MSG_FRAME = 0,    /* a received frame in s_rx_pool[slot] */
    TS_APP_MSG_CONSOLE = 1,  /* `len` bytes in s_app.console_chunk */
    TS_APP_MSG_LINKS_UP = 2, /* transport->start returned ESP_OK */
} ts_app_msg_kind_t;

typedef struct {
    uint8_t kind;
    uint8_t link;
    uint16_t slot;
    uint16_t len;
} ts_app_msg_t;

static const char *TAG = "ts_app";

static struct {
    ts_app_config_t cfg;
    ts_transport_t *transport;
    ts_model_info_t model;
    QueueHandle_t msgs;       /* ts_app_msg_t to the stage task */
    QueueHandle_t free_slots; /* uint16_t indexes of free s_rx_pool slots */
    SemaphoreHandle_t console_done;
    volatile bool ready;      /* queues exist: ts_app_receive may run */
    portMUX_TYPE drops_lock;
    uint32_t rx_queue_drops;  /* frames ts_app_receive could not queue */
    uint32_t rx_queue_drops_reported;
    char firmware[32];
    char console_chunk[TS_APP_CONSOLE_CHUNK];
    /* Stream transports: UP frames the stage may not take yet (ts_console_stage_accepts), in
     * arrival order. Each keeps its pool slot, so once every slot is held the TCP reader blocks in
     * ts_app_receive_wait and TCP flow control holds the previous stage back. */
    ts_app_msg_t held[TS_APP_RX_SLOTS];
    size_t held_first;
    size_t held_count;
    int16_t *in_buf;
    int16_t *out_buf;
    int16_t *inject_buf;
    int16_t *output_copy;
    ts_stage_t stage;
    ts_console_stage_t board;
} s_app = {
    .drops_lock = portMUX_INITIALIZER_UNLOCKED,
};

/* Received frames wait here; free slot indexes circulate through s_app.free_slots, so no frame
 * is allocated on the heap. */
static uint8_t s_rx_pool[TS_APP_RX_SLOTS][TS_MAX_FRAME_BYTES];

static void fatal(const char *what, esp_err_t err) __attribute__((noreturn));

static void fatal(const char *what, esp_err_t err)
{
    ESP_LOGE(TAG, "%s: %s; restarting in %d s", what, esp_err_to_name(err),
             TS_APP_FATAL_DELAY_MS / 1000);
    vTaskDelay(pdMS_TO_TICKS(TS_APP_FATAL_DELAY_MS));
    esp_restart();
}

/* ---- the platform of the console command set ---- */

static void platform_reboot(void *ctx)
{
    (void)ctx;
    ts_console_io_flush(TS_APP_REBOOT_FLUSH_MS);
    esp_restart();
}

static int platform_rssi(void *ctx, ts_link_t link, int8_t *out_dbm)
{
    (void)ctx;
    ts_transport_t *t = s_app.transport;
    if (t->rssi == NULL || t->rssi(t, link, out_dbm) != ESP_OK) {
        return TS_ERR_STATE;
    }
    return TS_OK;
}

static int64_t platform_now_us(void *ctx)
{
    (void)ctx;
    return esp_timer_get_time();
}

static uint32_t rx_queue_drops(void)
{
    portENTER_CRITICAL(&s_app.drops_lock);
    uint32_t n = s_app.rx_queue_drops;
    portEXIT_CRITICAL(&s_app.drops_lock);
    return n;
}

static size_t platform_extra_stats(void *ctx, char *buf, size_t cap)
{
    (void)ctx;
    int n = snprintf(buf, cap, " rx_queue_drops=%" PRIu32, rx_queue_drops());
    if (n < 0) {
        return 0;
    }
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

static const ts_console_stage_platform_t s_platform = {
    .store = ts_app_settings_store,
    .reboot = platform_reboot,
    .rssi = platform_rssi,
    .now_us = platform_now_us,
    .extra_stats = platform_extra_stats,
};

/* ---- the stage's environment ---- */

static int op_send(void *ctx, ts_link_t link, const uint8_t *frame, size_t len)
{
    (void)ctx;
    esp_err_t err = s_app.transport->send(s_app.transport, link, frame, len);
    switch (err) {
    case ESP_OK:
        return TS_OK;
    case ESP_ERR_NO_MEM:
        return TS_ERR_NOSPACE;
    case ESP_ERR_INVALID_ARG:
    case ESP_ERR_INVALID_SIZE:
        return TS_ERR_ARG;
    default:
        return TS_ERR_STATE;
    }
}

static int op_infer(void *ctx, const int16_t *in, size_t in_values, int8_t in_exponent,
                    int16_t *out, size_t out_capacity, size_t *out_values, int8_t *out_exponent)
{
    (void)ctx;
    return ts_model_infer(in, in_values, in_exponent, out, out_capacity, out_values,
                          out_exponent);
}

static void op_mark(void *ctx, ts_mark_t mark, uint16_t inference)
{
    (void)ctx;
    /* The pulse first: its rising edge is the timestamp; the console line can wait. */
    ts_scribe_mark(mark);
    ts_console_stage_on_mark(&s_app.board, mark, inference);
}

static void op_output(void *ctx, uint16_t inference, const int16_t *values, size_t count,
                      int8_t exponent)
{
    (void)ctx;
    ts_console_stage_on_output(&s_app.board, inference, values, count, exponent);
}

static const ts_stage_ops_t s_stage_ops = {
    .send = op_send,
    .infer = op_infer,
    .mark = op_mark,
    .output = op_output,
};

/* ---- receive path (any task) ---- */

static void count_drop(void)
{
    portENTER_CRITICAL(&s_app.drops_lock);
    s_app.rx_queue_drops++;
    portEXIT_CRITICAL(&s_app.drops_lock);
}

static esp_err_t receive(ts_link_t from, const uint8_t *frame, size_t len, TickType_t wait)
{
    if (!s_app.ready) {
        return ESP_ERR_INVALID_STATE;
    }
    if (len == 0 || len > TS_MAX_FRAME_BYTES) {
        count_drop();
        return ESP_ERR_INVALID_SIZE;
    }
    uint16_t slot = 0;
    if (xQueueReceive(s_app.free_slots, &slot, wait) != pdTRUE) {
        count_drop();
        return ESP_ERR_NO_MEM;
    }
    memcpy(s_rx_pool[slot], frame, len);
    const ts_app_msg_t msg = {
        .kind = TS_APP_MSG_FRAME,
        .link = (uint8_t)from,
        .slot = slot,
        .len = (uint16_t)len,
    };
    /* Cannot fail: s_app.msgs has room for every slot plus the two other messages. */
    if (xQueueSend(s_app.msgs, &msg, 0) != pdTRUE) {
        xQueueSend(s_app.free_slots, &slot, 0);
        count_drop();
        return ESP_ERR_NO_MEM;
    }
    return ESP_OK;
}

esp_err_t ts_app_receive(ts_link_t from, const uint8_t *frame, size_t len)
{
    return receive(from, frame, len, 0);
}

esp_err_t ts_app_receive_wait(ts_link_t from, const uint8_t *frame, size_t len,
                              uint32_t timeout_ms)
{
    const TickType_t wait = timeout_ms == UINT32_MAX ? portMAX_DELAY : pdMS_TO_TICKS(timeout_ms);
    return receive(from, frame, len, wait);
}

const ts_app_config_t *ts_app_config(void)
{
    return &s_app.cfg;
}

/* ---- the stage task ---- */

static void links_up(void)
{
    const ts_app_config_t *c = &s_app.cfg;
    size_t frame_bytes = s_app.transport->frame_bytes;
    if (frame_bytes == 0 || frame_bytes > TS_MAX_FRAME_BYTES) {
        /* The last stage sends no DATA (its transport may report 0): any valid size will do. */
        frame_bytes = TS_MAX_FRAME_BYTES;
    }
    const ts_stage_config_t sc = {
        .stage = c->stage,
        .stages = c->stages,
        .mode = c->mode,
        .window = c->window,
        .frame_bytes = (uint16_t)frame_bytes,
        .stream = s_app.transport->stream ? 1 : 0,
        .ack_timeout_us = c->ack_timeout_ms * 1000u,
        /* After a NACK BUSY the next board is still on the previous tensor: retry after one
         * acknowledgment timeout, the scale on which it answers anyway. */
        .busy_retry_us = c->ack_timeout_ms * 1000u,
        .max_timeouts = c->max_timeouts,
        .input_values = s_app.model.input_values,
        .input_exponent = s_app.model.input_exponent,
        .output_values = s_app.model.output_values,
    };
    int rc = ts_stage_init(&s_app.stage, &sc, &s_stage_ops, NULL, s_app.in_buf, s_app.out_buf);
    if (rc != TS_OK) {
        ESP_LOGE(TAG, "stage configuration rejected (%s): frame_bytes=%u window=%u",
                 ts_err_name(rc), (unsigned)sc.frame_bytes, (unsigned)sc.window);
        fatal("stage init", ESP_ERR_INVALID_ARG);
    }
#ifdef CONFIG_TINYSPLIT_ADAPTIVE_WINDOW
    /* Reliable, non-stream senders only; paper mode and TCP keep the fixed window. */
    if (ts_sender_set_adaptive(&s_app.stage.tx, 1) != TS_OK) {
        ESP_LOGW(TAG, "adaptive window not enabled: the sender is busy");
    }
#endif
    ts_console_stage_attach(&s_app.board, &s_app.stage);
    ESP_LOGI(TAG, "links up: stage %u of %u over %s, %u-byte frames", (unsigned)c->stage,
             (unsigned)c->stages, s_app.transport->name, (unsigned)sc.frame_bytes);
}

static void feed_frame(const ts_app_msg_t *m)
{
    ts_console_stage_on_frame(&s_app.board, (ts_link_t)m->link, s_rx_pool[m->slot], m->len,
                              esp_timer_get_time());
    xQueueSend(s_app.free_slots, &m->slot, 0);
}

/* Feed the held UP frames the stage takes now, oldest first. */
static void feed_held(void)
{
    while (s_app.held_count > 0 && ts_console_stage_accepts(&s_app.board, TS_LINK_UP)) {
        feed_frame(&s_app.held[s_app.held_first]);
        s_app.held_first = (s_app.held_first + 1) % TS_APP_RX_SLOTS;
        s_app.held_count--;
    }
}

/* A frame from a stream transport's UP link waits while the stage's input buffer is full (see
 * ts_stage_accepts): answering it NACK BUSY would lose it, nothing repairs a stream. Frames of
 * other transports are always fed: their protocol repairs (reliable) or reports (paper) it. */
static void on_frame(const ts_app_msg_t *m)
{
    if (s_app.transport->stream && m->link == TS_LINK_UP &&
        (s_app.held_count > 0 || !ts_console_stage_accepts(&s_app.board, TS_LINK_UP))) {
        /* Cannot overflow: a held frame keeps its slot and there are TS_APP_RX_SLOTS slots. */
        s_app.held[(s_app.held_first + s_app.held_count) % TS_APP_RX_SLOTS] = *m;
        s_app.held_count++;
        return;
    }
    feed_frame(m);
}

static void handle_msg(const ts_app_msg_t *m)
{
    switch (m->kind) {
    case TS_APP_MSG_FRAME:
        on_frame(m);
        break;
    case TS_APP_MSG_CONSOLE:
        ts_console_stage_feed(&s_app.board, s_app.console_chunk, m->len);
        xSemaphoreGive(s_app.console_done);
        break;
    case TS_APP_MSG_LINKS_UP:
        links_up();
        break;
    default:
        break;
    }
}

/* Ticks to block until `deadline_us` (esp_timer time), rounded up so the wait never ends
 * before the deadline. */
static TickType_t ticks_until(int64_t deadline_us)
{
    if (deadline_us == INT64_MAX) {
        return portMAX_DELAY;
    }
    int64_t now = esp_timer_get_time();
    if (deadline_us <= now) {
        return 0;
    }
    const int64_t tick_us = 1000000 / configTICK_RATE_HZ;
    int64_t ticks = (deadline_us - now + tick_us - 1) / tick_us;
    return ticks >= (int64_t)portMAX_DELAY ? portMAX_DELAY - 1 : (TickType_t)ticks;
}

static void stage_task(void *arg)
{
    (void)arg;
    for (;;) {
        ts_app_msg_t msg;
        TickType_t wait = ticks_until(ts_console_stage_next_deadline_us(&s_app.board));
        if (xQueueReceive(s_app.msgs, &msg, wait) == pdTRUE) {
            handle_msg(&msg);
        }
        ts_console_stage_poll(&s_app.board, esp_timer_get_time());
        if (s_app.held_count > 0) {
            /* The poll may have freed the input buffer; what it then receives is polled on the
             * next turn (the stage's deadline is due at once). */
            feed_held();
        }
        uint32_t drops = rx_queue_drops();
        if (drops != s_app.rx_queue_drops_reported) {
            s_app.rx_queue_drops_reported = drops;
            ts_console_stage_report(&s_app.board, "rx_queue_drops", drops);
        }
    }
}

static void console_task(void *arg)
{
    (void)arg;
    for (;;) {
        int n = ts_console_io_read(s_app.console_chunk, sizeof(s_app.console_chunk),
                                   TS_APP_CONSOLE_POLL_MS);
        if (n <= 0) {
            if (n < 0) {
                vTaskDelay(pdMS_TO_TICKS(100));
            }
            continue;
        }
        const ts_app_msg_t msg = {.kind = TS_APP_MSG_CONSOLE, .len = (uint16_t)n};
        xQueueSend(s_app.msgs, &msg, portMAX_DELAY);
        /* The chunk buffer is the stage task's until it has fed it. */
        xSemaphoreTake(s_app.console_done, portMAX_DELAY);
    }
}

static void link_task(void *arg)
{
    (void)arg;
    ESP_LOGI(TAG, "starting %s links", s_app.transport->name);
    esp_err_t err = s_app.transport->start(s_app.transport, &s_app.cfg);
    if (err != ESP_OK) {
        fatal("transport start", err);
    }
    const ts_app_msg_t msg = {.kind = TS_APP_MSG_LINKS_UP};
    xQueueSend(s_app.msgs, &msg, portMAX_DELAY);
    vTaskDelete(NULL);
}

/* ---- start-up ---- */

static void *alloc_or_die(size_t bytes, const char *what)
{
    /* Once at start-up; with PSRAM malloc enabled large tensors land in PSRAM. */
    void *p = heap_caps_malloc(bytes, MALLOC_CAP_8BIT);
    if (p == NULL) {
        ESP_LOGE(TAG, "%s: %u bytes", what, (unsigned)bytes);
        fatal("out of memory", ESP_ERR_NO_MEM);
    }
    return p;
}

static void firmware_version(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", esp_app_get_description()->version);
    /* `hello` carries it as one word. */
    for (char *p = buf; *p != '\0'; p++) {
        if (*p == ' ' || *p == '\t' || *p == '=') {
            *p = '_';
        }
    }
}

static void start_task(TaskFunction_t fn, const char *name, uint32_t stack, UBaseType_t prio)
{
    /* Stack depth is in bytes on ESP-IDF FreeRTOS. */
    if (xTaskCreate(fn, name, stack, NULL, prio, NULL) != pdPASS) {
        fatal(name, ESP_ERR_NO_MEM);
    }
}

void ts_app_run(ts_transport_t *transport)
{
    s_app.transport = transport;

    ts_console_stage_settings_t settings;
    esp_err_t err = ts_app_settings_load(&settings, &s_app.cfg);
    if (err != ESP_OK) {
        fatal("NVS", err);
    }
    const ts_app_config_t *c = &s_app.cfg;
    ESP_LOGI(TAG, "stage %u of %u, %s mode, window %u, ack timeout %" PRIu32 " ms, %u timeouts",
             (unsigned)c->stage, (unsigned)c->stages,
             c->mode == TS_MODE_PAPER ? "paper" : "reliable", (unsigned)c->window,
             c->ack_timeout_ms, (unsigned)c->max_timeouts);

    err = ts_console_io_init();
    if (err != ESP_OK) {
        fatal("console", err);
    }
    err = ts_scribe_mark_init(c->scribe_gpio, CONFIG_TINYSPLIT_SCRIBE_PULSE_UNIT_US);
    if (err != ESP_OK) {
        ESP_LOGW(TAG, "scribe marks off: %s", esp_err_to_name(err));
    }
    err = ts_model_load(CONFIG_TINYSPLIT_MODEL_PARTITION, &s_app.model);
    if (err != ESP_OK) {
        fatal("model", err);
    }

    const ts_model_info_t *m = &s_app.model;
    s_app.in_buf = alloc_or_die(TS_STAGE_INPUT_BUFFER_BYTES(m->input_values), "input buffer");
    s_app.out_buf = alloc_or_die(m->output_values * sizeof(int16_t), "output buffer");
    if (c->stage == 1) {
        s_app.inject_buf = alloc_or_die(m->input_values * sizeof(int16_t), "inject buffer");
    }
    if (c->stage == c->stages) {
        s_app.output_copy = alloc_or_die(m->output_values * sizeof(int16_t), "read buffer");
    }

    firmware_version(s_app.firmware, sizeof(s_app.firmware));
    const ts_console_stage_config_t bc = {
        .firmware = s_app.firmware,
        .transport = transport->name,
        .settings = settings,
        .input_values = m->input_values,
        .input_exponent = m->input_exponent,
        .output_values = m->output_values,
        .inject_buf = s_app.inject_buf,
        .output_buf = s_app.output_copy,
    };
    if (ts_console_stage_init(&s_app.board, &bc, &s_platform, NULL, ts_console_io_write, NULL) !=
        TS_OK) {
        fatal("console command set", ESP_ERR_INVALID_ARG);
    }

    s_app.msgs = xQueueCreate(TS_APP_RX_SLOTS + 2, sizeof(ts_app_msg_t));
    s_app.free_slots = xQueueCreate(TS_APP_RX_SLOTS, sizeof(uint16_t));
    s_app.console_done = xSemaphoreCreateBinary();
    if (s_app.msgs == NULL || s_app.free_slots == NULL || s_app.console_done == NULL) {
        fatal("queues", ESP_ERR_NO_MEM);
    }
    for (uint16_t slot = 0; slot < TS_APP_RX_SLOTS; slot++) {
        xQueueSend(s_app.free_slots, &slot, 0);
    }
    s_app.ready = true;

    start_task(stage_task, "ts_stage", CONFIG_TINYSPLIT_STAGE_TASK_STACK, TS_APP_STAGE_PRIORITY);
    start_task(console_task, "ts_console", TS_APP_CONSOLE_STACK, TS_APP_CONSOLE_PRIORITY);
    start_task(link_task, "ts_link", TS_APP_LINK_STACK, TS_APP_LINK_PRIORITY);

    /* Never return: the caller's stack may hold `transport`. */
    for (;;) {
        vTaskDelay(portMAX_DELAY);
    }
}
