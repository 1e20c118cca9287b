/*
 * The console command set of a pipeline board, version 1 (contract: ts_console_stage.h; grammar
 * and transcripts: docs/protocol.md, "Console"): the board object, the state and link commands
 * and the events. `config` is in ts_console_settings.c, tensor transfer in ts_console_tensor.c.
 * Portable: no ESP-IDF, no allocation.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ts_console_stage_internal.h"
#include "ts_mark.h"

/* ---- helpers shared by the handlers ---- */

int64_t ts_cs_now_us(const ts_console_stage_t *cs)
{
    return cs->platform->now_us(cs->ctx);
}

int ts_cs_is_last_stage(const ts_console_stage_t *cs)
{
    return cs->cfg.settings.stage == cs->cfg.settings.stages;
}

int ts_cs_need_stage(ts_console_stage_t *cs)
{
    if (cs->stage == NULL) {
        ts_console_err(&cs->con, "state", "links down");
        return 0;
    }
    return 1;
}

int ts_cs_need_running(ts_console_stage_t *cs)
{
    if (!ts_cs_need_stage(cs)) {
        return 0;
    }
    if (!cs->running) {
        ts_console_err(&cs->con, "state", "stopped");
        return 0;
    }
    return 1;
}

static void sync_seen_counters(ts_console_stage_t *cs)
{
    if (cs->stage == NULL) {
        return;
    }
    const ts_stage_stats_t *st = ts_stage_stats(cs->stage);
    cs->seen_inference_errors = st->inference_errors;
    cs->seen_send_failures = st->send_failures;
    cs->seen_rx_dropped_tensors = st->rx_dropped_tensors;
    cs->seen_tx_refused = st->tx_refused;
}

static int has_link(const ts_console_stage_t *cs, ts_link_t link)
{
    return link == TS_LINK_UP ? cs->cfg.settings.stage > 1 : !ts_cs_is_last_stage(cs);
}

/* ---- command handlers (ctx is the ts_console_stage_t) ---- */

static void cmd_hello(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argc;
    (void)argv;
    const ts_console_stage_settings_t *s = &cs->cfg.settings;
    ts_console_ok(con,
                  "proto=%d fw=%s transport=%s stage=%u stages=%u mode=%s window=%u in=%lu "
                  "in_exp=%d out=%lu",
                  TS_CONSOLE_VERSION, cs->cfg.firmware, cs->cfg.transport, (unsigned)s->stage,
                  (unsigned)s->stages, ts_cs_mode_name(s->mode), (unsigned)s->window,
                  (unsigned long)cs->cfg.input_values, (int)cs->cfg.input_exponent,
                  (unsigned long)cs->cfg.output_values);
}

static void cmd_status(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argc;
    (void)argv;
    const char *state = cs->running ? "running" : "idle";
    if (cs->stage == NULL) {
        ts_console_ok(con, "state=%s links=down busy=0 tensors_in=0 tensors_out=0 errors=0",
                      state);
        return;
    }
    const ts_stage_stats_t *st = ts_stage_stats(cs->stage);
    uint32_t errors = st->inference_errors + st->send_failures + st->rx_dropped_tensors;
    ts_console_ok(con,
                  "state=%s links=up busy=%d tensors_in=%" PRIu32 " tensors_out=%" PRIu32
                  " errors=%" PRIu32,
                  state, ts_stage_idle(cs->stage) ? 0 : 1, st->tensors_in, st->tensors_out,
                  errors);
}

static void cmd_reset(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argc;
    (void)argv;
    ts_console_ok(con, "rebooting");
    cs->platform->reboot(cs->ctx);
}

static void cmd_start(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argc;
    (void)argv;
    cs->running = 1;
    ts_console_ok(con, "state=running");
}

static void cmd_stop(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argc;
    (void)argv;
    cs->running = 0;
    cs->inj_active = 0;
    if (cs->stage != NULL) {
        ts_stage_abort(cs->stage);
    }
    ts_console_ok(con, "state=idle");
}

static void cmd_stats(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    if (argc == 2 && strcmp(argv[1], "reset") != 0) {
        ts_console_usage(con);
        return;
    }
    if (!ts_cs_need_stage(cs)) {
        return;
    }
    if (argc == 2) {
        ts_stage_reset_stats(cs->stage);
        cs->rx_ignored = 0;
        sync_seen_counters(cs);
        ts_console_ok(con, NULL);
        return;
    }
    const ts_stage_stats_t *st = ts_stage_stats(cs->stage);
    char extra[256];
    size_t extra_len = 0;
    if (cs->platform->extra_stats != NULL) {
        extra_len = cs->platform->extra_stats(cs->ctx, extra, sizeof(extra));
    }
    if (extra_len >= sizeof(extra)) {
        extra_len = sizeof(extra) - 1;
    }
    extra[extra_len] = '\0';
    ts_console_ok(con,
                  "tensors_in=%" PRIu32 " tensors_out=%" PRIu32 " inference_errors=%" PRIu32
                  " send_failures=%" PRIu32 " tx_frames=%" PRIu32 " tx_bytes=%" PRIu32
                  " retransmissions=%" PRIu32 " tx_refused=%" PRIu32 " timeouts=%" PRIu32
                  " rx_frames=%" PRIu32 " rx_bytes=%" PRIu32 " rx_crc_errors=%" PRIu32
                  " rx_malformed=%" PRIu32 " rx_duplicates=%" PRIu32
                  " rx_dropped_tensors=%" PRIu32 " tensor_crc_errors=%" PRIu32
                  " requantized=%" PRIu32 " rtt_up_us=%" PRIu32 " rtt_down_us=%" PRIu32
                  " rx_ignored=%" PRIu32 " console_lines=%" PRIu32 " console_errors=%" PRIu32
                  "%s",
                  st->tensors_in, st->tensors_out, st->inference_errors, st->send_failures,
                  st->tx_frames, st->tx_bytes, st->retransmissions, st->tx_refused, st->timeouts,
                  st->rx_frames, st->rx_bytes, st->rx_crc_errors, st->rx_malformed,
                  st->rx_duplicates, st->rx_dropped_tensors, st->tensor_crc_errors,
                  st->requantized, st->rtt_us[TS_LINK_UP], st->rtt_us[TS_LINK_DOWN],
                  cs->rx_ignored, con->lines, con->errors, extra);
}

static void format_rssi(const ts_console_stage_t *cs, ts_link_t link, char *buf, size_t cap)
{
    int8_t dbm = 0;
    if (has_link(cs, link) && cs->platform->rssi != NULL &&
        cs->platform->rssi(cs->ctx, link, &dbm) == TS_OK) {
        snprintf(buf, cap, "%d", (int)dbm);
    } else {
        snprintf(buf, cap, "none");
    }
}

static void cmd_rssi(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argc;
    (void)argv;
    char up[8];
    char down[8];
    format_rssi(cs, TS_LINK_UP, up, sizeof(up));
    format_rssi(cs, TS_LINK_DOWN, down, sizeof(down));
    ts_console_ok(con, "up=%s down=%s", up, down);
}

static void cmd_ping(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argc;
    ts_link_t link;
    if (strcmp(argv[1], "up") == 0) {
        link = TS_LINK_UP;
    } else if (strcmp(argv[1], "down") == 0) {
        link = TS_LINK_DOWN;
    } else {
        ts_console_usage(con);
        return;
    }
    if (!has_link(cs, link)) {
        ts_console_err(con, "state", "stage %u has no %s link", (unsigned)cs->cfg.settings.stage,
                       argv[1]);
        return;
    }
    if (cs->cfg.settings.mode != TS_MODE_RELIABLE) {
        /* Paper frames have no CTRL type to carry a PING. */
        ts_console_err(con, "state", "ping needs reliable mode");
        return;
    }
    if (!ts_cs_need_running(cs)) {
        return;
    }
    uint32_t token = ++cs->ping_token;
    cs->ping_rtt_before[link] = ts_stage_stats(cs->stage)->rtt_us[link];
    int rc = ts_stage_ping(cs->stage, link, token, ts_cs_now_us(cs));
    if (rc != TS_OK) {
        ts_console_err(con, "io", "ping not sent (%s)", ts_err_name(rc));
        return;
    }
    cs->ping_pending[link] = 1;
    ts_console_ok(con, "link=%s token=%" PRIu32, argv[1], token);
}

static void cmd_marks(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argc;
    if (strcmp(argv[1], "on") == 0) {
        cs->marks = 1;
    } else if (strcmp(argv[1], "off") == 0) {
        cs->marks = 0;
    } else {
        ts_console_usage(con);
        return;
    }
    ts_console_ok(con, "marks=%s", cs->marks ? "on" : "off");
}

/* name, usage, arguments (at least, at most), handler */
static const ts_console_command_t commands[] = {
    {"hello", "hello", 0, 0, cmd_hello},
    {"status", "status", 0, 0, cmd_status},
    {"config", "config [key=value]...", 0, TS_CONSOLE_MAX_ARGS - 1, ts_cs_cmd_config},
    {"reset", "reset", 0, 0, cmd_reset},
    {"start", "start", 0, 0, cmd_start},
    {"stop", "stop", 0, 0, cmd_stop},
    {"inject", "inject <inference> <exponent> <bytes> <crc32hex>", 4, 4, ts_cs_cmd_inject},
    {"data", "data <offset> <base64>", 2, 2, ts_cs_cmd_data},
    {"end", "end", 0, 0, ts_cs_cmd_end},
    {"read", "read <inference> <offset> <len>", 3, 3, ts_cs_cmd_read},
    {"stats", "stats [reset]", 0, 1, cmd_stats},
    {"rssi", "rssi", 0, 0, cmd_rssi},
    {"ping", "ping <up|down>", 1, 1, cmd_ping},
    {"marks", "marks <on|off>", 1, 1, cmd_marks},
};

/* ---- the board object ---- */

static void forward_write(void *ctx, const char *text, size_t len)
{
    ts_console_stage_t *cs = ctx;
    cs->write(cs->write_ctx, text, len);
}

int ts_console_stage_init(ts_console_stage_t *cs, const ts_console_stage_config_t *cfg,
                          const ts_console_stage_platform_t *platform, void *ctx,
                          ts_console_write_t write, void *write_ctx)
{
    if (cs == NULL || cfg == NULL || platform == NULL || write == NULL ||
        platform->store == NULL || platform->reboot == NULL || platform->now_us == NULL ||
        cfg->firmware == NULL || cfg->transport == NULL ||
        ts_console_stage_settings_check(&cfg->settings) != TS_OK) {
        return TS_ERR_ARG;
    }
    if ((cfg->settings.stage == 1 && cfg->inject_buf == NULL) ||
        (cfg->settings.stage == cfg->settings.stages && cfg->output_buf == NULL)) {
        return TS_ERR_ARG;
    }
    memset(cs, 0, sizeof(*cs));
    cs->cfg = *cfg;
    cs->stored = cfg->settings;
    cs->platform = platform;
    cs->ctx = ctx;
    cs->write = write;
    cs->write_ctx = write_ctx;
    ts_console_init(&cs->con, commands, sizeof(commands) / sizeof(commands[0]), forward_write, cs);
    return TS_OK;
}

void ts_console_stage_attach(ts_console_stage_t *cs, ts_stage_t *stage)
{
    cs->stage = stage;
    sync_seen_counters(cs);
}

void ts_console_stage_feed(ts_console_stage_t *cs, const char *bytes, size_t len)
{
    ts_console_feed(&cs->con, bytes, len);
}

void ts_console_stage_on_frame(ts_console_stage_t *cs, ts_link_t from, const uint8_t *frame,
                               size_t len, int64_t now)
{
    if (cs->stage == NULL || !cs->running) {
        cs->rx_ignored++;
        return;
    }
    ts_stage_on_frame(cs->stage, from, frame, len, now);
}

int ts_console_stage_accepts(const ts_console_stage_t *cs, ts_link_t from)
{
    /* Stopped or links down: the frame is ignored anyway, so it need not wait. */
    return cs->stage == NULL || !cs->running || ts_stage_accepts(cs->stage, from);
}

static void report_delta(ts_console_stage_t *cs, const char *what, uint32_t now_total,
                         uint32_t *seen)
{
    if (now_total != *seen) {
        *seen = now_total;
        ts_console_stage_report(cs, what, now_total);
    }
}

void ts_console_stage_poll(ts_console_stage_t *cs, int64_t now)
{
    if (cs->stage == NULL) {
        return;
    }
    if (cs->running) {
        ts_stage_poll(cs->stage, now);
    }
    const ts_stage_stats_t *st = ts_stage_stats(cs->stage);
    report_delta(cs, "inference_errors", st->inference_errors, &cs->seen_inference_errors);
    report_delta(cs, "send_failures", st->send_failures, &cs->seen_send_failures);
    report_delta(cs, "rx_dropped_tensors", st->rx_dropped_tensors, &cs->seen_rx_dropped_tensors);
    report_delta(cs, "tx_refused", st->tx_refused, &cs->seen_tx_refused);
    for (int link = TS_LINK_UP; link <= TS_LINK_DOWN; link++) {
        if (cs->ping_pending[link] && st->rtt_us[link] != cs->ping_rtt_before[link]) {
            cs->ping_pending[link] = 0;
            ts_console_event(&cs->con, "rtt", "link=%s rtt_us=%" PRIu32,
                             link == TS_LINK_UP ? "up" : "down", st->rtt_us[link]);
        }
    }
}

int64_t ts_console_stage_next_deadline_us(const ts_console_stage_t *cs)
{
    if (cs->stage == NULL || !cs->running) {
        return INT64_MAX;
    }
    return ts_stage_next_deadline_us(cs->stage);
}

void ts_console_stage_on_mark(ts_console_stage_t *cs, ts_mark_t mark, uint16_t inference)
{
    if (!cs->marks) {
        return;
    }
    ts_console_event(&cs->con, "mark", "mark=%s inference=%u t_us=%lld",
                     ts_mark_name(mark), (unsigned)inference, (long long)ts_cs_now_us(cs));
}

void ts_console_stage_report(ts_console_stage_t *cs, const char *what, uint32_t total)
{
    ts_console_event(&cs->con, "error", "what=%s total=%" PRIu32, what, total);
}
