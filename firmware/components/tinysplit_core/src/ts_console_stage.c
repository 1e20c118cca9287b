/*
 * The console command set of a pipeline board, version 1 (contract: ts_console_stage.h; grammar
 * and transcripts: docs/protocol.md, "Console"). Portable: no ESP-IDF, no allocation.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ts_console_stage.h"
#include "ts_mark.h"

const char *const ts_console_stage_setting_keys[TS_CONSOLE_STAGE_SETTING_COUNT] = {
    "stage", "stages", "mode", "window", "ack_timeout_ms", "max_timeouts",
};

/* ---- settings ---- */

int ts_console_stage_settings_get(const ts_console_stage_settings_t *s, const char *key,
                                  uint32_t *value)
{
    if (strcmp(key, "stage") == 0) {
        *value = s->stage;
    } else if (strcmp(key, "stages") == 0) {
        *value = s->stages;
    } else if (strcmp(key, "mode") == 0) {
        *value = (uint32_t)s->mode;
    } else if (strcmp(key, "window") == 0) {
        *value = s->window;
    } else if (strcmp(key, "ack_timeout_ms") == 0) {
        *value = s->ack_timeout_ms;
    } else if (strcmp(key, "max_timeouts") == 0) {
        *value = s->max_timeouts;
    } else {
        return TS_ERR_ARG;
    }
    return TS_OK;
}

int ts_console_stage_settings_put(ts_console_stage_settings_t *s, const char *key,
                                  uint32_t value)
{
    if (strcmp(key, "stage") == 0 || strcmp(key, "stages") == 0) {
        if (value < 1 || value > TS_CONSOLE_STAGE_MAX_STAGES) {
            return TS_ERR_ARG;
        }
        if (key[5] == 's') {
            s->stages = (uint8_t)value;
        } else {
            s->stage = (uint8_t)value;
        }
    } else if (strcmp(key, "mode") == 0) {
        if (value != (uint32_t)TS_MODE_PAPER && value != (uint32_t)TS_MODE_RELIABLE) {
            return TS_ERR_ARG;
        }
        s->mode = (ts_mode_t)value;
    } else if (strcmp(key, "window") == 0) {
        if (value < 1 || value > TS_MAX_WINDOW) {
            return TS_ERR_ARG;
        }
        s->window = (uint16_t)value;
    } else if (strcmp(key, "ack_timeout_ms") == 0) {
        if (value < 1 || value > TS_CONSOLE_STAGE_ACK_TIMEOUT_MS_MAX) {
            return TS_ERR_ARG;
        }
        s->ack_timeout_ms = value;
    } else if (strcmp(key, "max_timeouts") == 0) {
        if (value > TS_CONSOLE_STAGE_MAX_TIMEOUTS_MAX) {
            return TS_ERR_ARG;
        }
        s->max_timeouts = (uint16_t)value;
    } else {
        return TS_ERR_ARG;
    }
    return TS_OK;
}

int ts_console_stage_settings_check(const ts_console_stage_settings_t *s)
{
    ts_console_stage_settings_t copy = *s;
    for (size_t i = 0; i < TS_CONSOLE_STAGE_SETTING_COUNT; i++) {
        uint32_t v = 0;
        if (ts_console_stage_settings_get(s, ts_console_stage_setting_keys[i], &v) != TS_OK ||
            ts_console_stage_settings_put(&copy, ts_console_stage_setting_keys[i], v) != TS_OK) {
            return TS_ERR_ARG;
        }
    }
    return s->stage <= s->stages ? TS_OK : TS_ERR_ARG;
}

static const char *mode_name(ts_mode_t mode)
{
    return mode == TS_MODE_PAPER ? "paper" : "reliable";
}

/* ---- argument parsing: strict, whole word, no sign unless asked for ---- */

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
    if (*s == '\0') {
        return 0;
    }
    uint64_t v = 0;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return 0;
        }
        v = v * 10u + (uint64_t)(*s - '0');
        if (v > max) {
            return 0;
        }
    }
    *out = (uint32_t)v;
    return 1;
}

static int parse_i8(const char *s, int8_t *out)
{
    int neg = (*s == '-');
    uint32_t v = 0;
    if (!parse_u32(s + neg, neg ? 128u : 127u, &v)) {
        return 0;
    }
    *out = (int8_t)(neg ? -(int32_t)v : (int32_t)v);
    return 1;
}

static int parse_hex32(const char *s, uint32_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 8) {
        return 0;
    }
    uint32_t v = 0;
    for (; *s != '\0'; s++) {
        char c = *s;
        uint32_t d;
        if (c >= '0' && c <= '9') {
            d = (uint32_t)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (uint32_t)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            d = (uint32_t)(c - 'A' + 10);
        } else {
            return 0;
        }
        v = (v << 4) | d;
    }
    *out = v;
    return 1;
}

/* ---- helpers shared by the handlers ---- */

static int64_t now_us(const ts_console_stage_t *cs)
{
    return cs->platform->now_us(cs->ctx);
}

static int is_last_stage(const ts_console_stage_t *cs)
{
    return cs->cfg.settings.stage == cs->cfg.settings.stages;
}

/* Reply `err usage <usage of argv[0]>`. */
static void usage(ts_console_t *con, const char *text)
{
    ts_console_err(con, "usage", "%s", text);
}

/* The stage commands need the links up (the stage exists); answers err state otherwise. */
static int need_stage(ts_console_stage_t *cs)
{
    if (cs->stage == NULL) {
        ts_console_err(&cs->con, "state", "links down");
        return 0;
    }
    return 1;
}

static size_t format_settings(char *buf, size_t cap, const ts_console_stage_settings_t *s)
{
    int n = snprintf(buf, cap,
                     "stage=%u stages=%u mode=%s window=%u ack_timeout_ms=%" PRIu32
                     " max_timeouts=%u",
                     (unsigned)s->stage, (unsigned)s->stages, mode_name(s->mode),
                     (unsigned)s->window, s->ack_timeout_ms, (unsigned)s->max_timeouts);
    return n < 0 ? 0 : (size_t)n;
}

/* Field by field: memcmp would compare the struct's padding too. */
static int settings_equal(const ts_console_stage_settings_t *a,
                          const ts_console_stage_settings_t *b)
{
    return a->stage == b->stage && a->stages == b->stages && a->mode == b->mode &&
           a->window == b->window && a->ack_timeout_ms == b->ack_timeout_ms &&
           a->max_timeouts == b->max_timeouts;
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

/* ---- command handlers (ctx is the ts_console_stage_t) ---- */

static void cmd_hello(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argv;
    if (argc != 1) {
        usage(con, "hello");
        return;
    }
    const ts_console_stage_settings_t *s = &cs->cfg.settings;
    ts_console_ok(con,
                  "proto=%d fw=%s transport=%s stage=%u stages=%u mode=%s window=%u in=%lu "
                  "in_exp=%d out=%lu",
                  TS_CONSOLE_VERSION, cs->cfg.firmware, cs->cfg.transport, (unsigned)s->stage,
                  (unsigned)s->stages, mode_name(s->mode), (unsigned)s->window,
                  (unsigned long)cs->cfg.input_values, (int)cs->cfg.input_exponent,
                  (unsigned long)cs->cfg.output_values);
}

static void cmd_status(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argv;
    if (argc != 1) {
        usage(con, "status");
        return;
    }
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

static void cmd_config(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    char text[160];
    if (argc == 1) {
        format_settings(text, sizeof(text), &cs->stored);
        int pending = !settings_equal(&cs->stored, &cs->cfg.settings);
        ts_console_ok(con, "%s pending=%d", text, pending);
        return;
    }
    ts_console_stage_settings_t next = cs->stored;
    for (int i = 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (eq == NULL || eq == argv[i]) {
            usage(con, "config [key=value]...");
            return;
        }
        *eq = '\0';
        const char *key = argv[i];
        const char *value = eq + 1;
        uint32_t v = 0;
        uint32_t probe = 0;
        if (ts_console_stage_settings_get(&next, key, &probe) != TS_OK) {
            ts_console_err(con, "usage", "unknown key %s", key);
            return;
        }
        int ok;
        if (strcmp(key, "mode") == 0) {
            ok = 1;
            if (strcmp(value, "paper") == 0) {
                v = (uint32_t)TS_MODE_PAPER;
            } else if (strcmp(value, "reliable") == 0) {
                v = (uint32_t)TS_MODE_RELIABLE;
            } else {
                ok = 0;
            }
        } else {
            ok = parse_u32(value, UINT32_MAX, &v);
        }
        if (!ok || ts_console_stage_settings_put(&next, key, v) != TS_OK) {
            ts_console_err(con, "range", "bad value %s for %s", value, key);
            return;
        }
    }
    if (ts_console_stage_settings_check(&next) != TS_OK) {
        ts_console_err(con, "range", "stage %u is past stages %u", (unsigned)next.stage,
                       (unsigned)next.stages);
        return;
    }
    int rc = cs->platform->store(cs->ctx, &next);
    if (rc != TS_OK) {
        ts_console_err(con, "io", "storing the settings failed (%s)", ts_err_name(rc));
        return;
    }
    cs->stored = next;
    format_settings(text, sizeof(text), &cs->stored);
    int pending = !settings_equal(&cs->stored, &cs->cfg.settings);
    ts_console_ok(con, "%s pending=%d", text, pending);
}

static void cmd_reset(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argv;
    if (argc != 1) {
        usage(con, "reset");
        return;
    }
    ts_console_ok(con, "rebooting");
    cs->platform->reboot(cs->ctx);
}

static void abort_all(ts_console_stage_t *cs)
{
    cs->inj_active = 0;
    if (cs->stage != NULL) {
        ts_stage_abort(cs->stage);
    }
}

static void cmd_start(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argv;
    if (argc != 1) {
        usage(con, "start");
        return;
    }
    cs->running = 1;
    ts_console_ok(con, "state=running");
}

static void cmd_stop(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argv;
    if (argc != 1) {
        usage(con, "stop");
        return;
    }
    cs->running = 0;
    abort_all(cs);
    ts_console_ok(con, "state=idle");
}

static void cmd_inject(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    const char *use = "inject <inference> <exponent> <bytes> <crc32hex>";
    if (argc != 5) {
        usage(con, use);
        return;
    }
    uint32_t inference = 0;
    int8_t exponent = 0;
    uint32_t bytes = 0;
    uint32_t crc = 0;
    if (!parse_u32(argv[1], 0xFFFFu, &inference) || !parse_i8(argv[2], &exponent) ||
        !parse_u32(argv[3], UINT32_MAX, &bytes) || !parse_hex32(argv[4], &crc)) {
        usage(con, use);
        return;
    }
    if (cs->cfg.settings.stage != 1) {
        ts_console_err(con, "state", "inject is for stage 1, this is stage %u",
                       (unsigned)cs->cfg.settings.stage);
        return;
    }
    if (!need_stage(cs)) {
        return;
    }
    if (!cs->running) {
        ts_console_err(con, "state", "stopped");
        return;
    }
    if ((size_t)bytes != cs->cfg.input_values * 2u) {
        ts_console_err(con, "size", "input is %lu bytes",
                       (unsigned long)(cs->cfg.input_values * 2u));
        return;
    }
    /* A new inject replaces an unfinished one: a host that lost track can always restart. */
    cs->inj_active = 1;
    cs->inj_inference = (uint16_t)inference;
    cs->inj_exponent = exponent;
    cs->inj_bytes = bytes;
    cs->inj_crc32 = crc;
    cs->inj_received = 0;
    ts_console_ok(con, "max_data=%u", TS_CONSOLE_STAGE_DATA_MAX);
}

static void cmd_data(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    const char *use = "data <offset> <base64>";
    uint32_t offset = 0;
    if (argc != 3 || !parse_u32(argv[1], UINT32_MAX, &offset)) {
        usage(con, use);
        return;
    }
    if (!cs->inj_active) {
        ts_console_err(con, "state", "no inject in progress");
        return;
    }
    if (offset != cs->inj_received) {
        ts_console_err(con, "range", "expected offset %" PRIu32, cs->inj_received);
        return;
    }
    uint8_t *dst = (uint8_t *)cs->cfg.inject_buf + offset;
    size_t room = cs->inj_bytes - offset;
    if (room > TS_CONSOLE_STAGE_DATA_MAX) {
        room = TS_CONSOLE_STAGE_DATA_MAX;
    }
    int n = ts_base64_decode(argv[2], strlen(argv[2]), dst, room);
    if (n == TS_ERR_NOSPACE) {
        ts_console_err(con, "size", "more than %lu bytes at offset %" PRIu32,
                       (unsigned long)room, offset);
        return;
    }
    if (n < 0) {
        ts_console_err(con, "usage", "bad base64");
        return;
    }
    cs->inj_received += (uint32_t)n;
    ts_console_ok(con, "received=%" PRIu32, cs->inj_received);
}

static void cmd_end(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argv;
    if (argc != 1) {
        usage(con, "end");
        return;
    }
    if (!cs->inj_active) {
        ts_console_err(con, "state", "no inject in progress");
        return;
    }
    if (cs->inj_received != cs->inj_bytes) {
        ts_console_err(con, "size", "received %" PRIu32 " of %" PRIu32 " bytes",
                       cs->inj_received, cs->inj_bytes);
        return;
    }
    uint8_t *raw = (uint8_t *)cs->cfg.inject_buf;
    uint32_t crc = ts_crc32(raw, cs->inj_bytes);
    if (crc != cs->inj_crc32) {
        cs->inj_active = 0;
        ts_console_err(con, "crc", "computed %08" PRIx32 ", expected %08" PRIx32, crc,
                       cs->inj_crc32);
        return;
    }
    /* The bytes are int16 little-endian (the wire order); convert in place, which is a no-op on
     * little-endian hosts and keeps the code right on any other. */
    size_t count = cs->inj_bytes / 2u;
    for (size_t i = 0; i < count; i++) {
        uint16_t u = (uint16_t)(raw[2 * i] | (raw[2 * i + 1] << 8));
        cs->cfg.inject_buf[i] = (int16_t)u;
    }
    cs->inj_active = 0;
    if (!need_stage(cs)) {
        return;
    }
    int rc = ts_stage_inject(cs->stage, cs->inj_inference, cs->cfg.inject_buf, count,
                             cs->inj_exponent, now_us(cs));
    if (rc == TS_ERR_STATE) {
        ts_console_err(con, "state", "previous input not consumed yet; inject again");
        return;
    }
    if (rc != TS_OK) {
        ts_console_err(con, "io", "inject failed (%s)", ts_err_name(rc));
        return;
    }
    ts_console_ok(con, "inference=%u", (unsigned)cs->inj_inference);
}

static void cmd_read(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    uint32_t inference = 0;
    uint32_t offset = 0;
    uint32_t len = 0;
    if (argc != 4 || !parse_u32(argv[1], 0xFFFFu, &inference) ||
        !parse_u32(argv[2], UINT32_MAX, &offset) || !parse_u32(argv[3], UINT32_MAX, &len)) {
        usage(con, "read <inference> <offset> <len>");
        return;
    }
    if (!is_last_stage(cs)) {
        ts_console_err(con, "state", "read is for the last stage");
        return;
    }
    if (!cs->out_valid) {
        ts_console_err(con, "state", "no output yet");
        return;
    }
    if (inference != cs->out_inference) {
        ts_console_err(con, "range", "latest output is inference %u", (unsigned)cs->out_inference);
        return;
    }
    if (len > TS_CONSOLE_STAGE_DATA_MAX) {
        ts_console_err(con, "size", "at most %u bytes per read", TS_CONSOLE_STAGE_DATA_MAX);
        return;
    }
    if (offset > cs->out_bytes || len > cs->out_bytes - offset) {
        ts_console_err(con, "range", "output is %" PRIu32 " bytes", cs->out_bytes);
        return;
    }
    char b64[(TS_CONSOLE_STAGE_DATA_MAX + 2) / 3 * 4 + 1];
    int n = ts_base64_encode((const uint8_t *)cs->cfg.output_buf + offset, len, b64, sizeof(b64));
    if (n < 0) {
        ts_console_err(con, "io", "encoding failed");
        return;
    }
    ts_console_ok(con, "%s", b64);
}

static void cmd_stats(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    int reset = (argc == 2 && strcmp(argv[1], "reset") == 0);
    if (argc > 2 || (argc == 2 && !reset)) {
        usage(con, "stats [reset]");
        return;
    }
    if (!need_stage(cs)) {
        return;
    }
    if (reset) {
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

static int has_link(const ts_console_stage_t *cs, ts_link_t link)
{
    return link == TS_LINK_UP ? cs->cfg.settings.stage > 1 : !is_last_stage(cs);
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
    (void)argv;
    if (argc != 1) {
        usage(con, "rssi");
        return;
    }
    char up[8];
    char down[8];
    format_rssi(cs, TS_LINK_UP, up, sizeof(up));
    format_rssi(cs, TS_LINK_DOWN, down, sizeof(down));
    ts_console_ok(con, "up=%s down=%s", up, down);
}

static void cmd_ping(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    ts_link_t link;
    if (argc == 2 && strcmp(argv[1], "up") == 0) {
        link = TS_LINK_UP;
    } else if (argc == 2 && strcmp(argv[1], "down") == 0) {
        link = TS_LINK_DOWN;
    } else {
        usage(con, "ping <up|down>");
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
    if (!need_stage(cs)) {
        return;
    }
    if (!cs->running) {
        ts_console_err(con, "state", "stopped");
        return;
    }
    uint32_t token = ++cs->ping_token;
    cs->ping_rtt_before[link] = ts_stage_stats(cs->stage)->rtt_us[link];
    int rc = ts_stage_ping(cs->stage, link, token, now_us(cs));
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
    if (argc == 2 && strcmp(argv[1], "on") == 0) {
        cs->marks = 1;
    } else if (argc == 2 && strcmp(argv[1], "off") == 0) {
        cs->marks = 0;
    } else {
        usage(con, "marks <on|off>");
        return;
    }
    ts_console_ok(con, "marks=%s", cs->marks ? "on" : "off");
}

static const ts_console_command_t commands[] = {
    {"hello", "hello", cmd_hello},
    {"status", "status", cmd_status},
    {"config", "config [key=value]...", cmd_config},
    {"reset", "reset", cmd_reset},
    {"start", "start", cmd_start},
    {"stop", "stop", cmd_stop},
    {"inject", "inject <inference> <exponent> <bytes> <crc32hex>", cmd_inject},
    {"data", "data <offset> <base64>", cmd_data},
    {"end", "end", cmd_end},
    {"read", "read <inference> <offset> <len>", cmd_read},
    {"stats", "stats [reset]", cmd_stats},
    {"rssi", "rssi", cmd_rssi},
    {"ping", "ping <up|down>", cmd_ping},
    {"marks", "marks <on|off>", cmd_marks},
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

void ts_console_stage_on_output(ts_console_stage_t *cs, uint16_t inference,
                                const int16_t *values, size_t count, int8_t exponent)
{
    if (count > cs->cfg.output_values) {
        count = cs->cfg.output_values;
    }
    uint32_t bytes = (uint32_t)(count * 2u);
    if (cs->cfg.output_buf != NULL) {
        /* Kept as little-endian bytes, the order `read` serves and the CRC covers. */
        uint8_t *raw = (uint8_t *)cs->cfg.output_buf;
        for (size_t i = 0; i < count; i++) {
            uint16_t u = (uint16_t)values[i];
            raw[2 * i] = (uint8_t)(u & 0xFFu);
            raw[2 * i + 1] = (uint8_t)(u >> 8);
        }
        cs->out_valid = 1;
        cs->out_inference = inference;
        cs->out_exponent = exponent;
        cs->out_bytes = bytes;
        cs->out_crc32 = ts_crc32(raw, bytes);
    }
    ts_console_event(&cs->con, "output", "inference=%u exp=%d bytes=%" PRIu32 " crc32=%08" PRIx32,
                     (unsigned)inference, (int)exponent, bytes, cs->out_crc32);
}

void ts_console_stage_on_mark(ts_console_stage_t *cs, ts_mark_t mark, uint16_t inference)
{
    if (!cs->marks) {
        return;
    }
    ts_console_event(&cs->con, "mark", "mark=%s inference=%u t_us=%lld",
                     ts_mark_name(mark), (unsigned)inference,
                     (long long)now_us(cs));
}

void ts_console_stage_report(ts_console_stage_t *cs, const char *what, uint32_t total)
{
    ts_console_event(&cs->con, "error", "what=%s total=%" PRIu32, what, total);
}
