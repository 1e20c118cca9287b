/*
 * Tensor transfer over the console of a pipeline board (contract: ts_console_stage.h; grammar:
 * docs/protocol.md, "Console"): stage 1 takes its input with `inject`, `data` lines and `end`;
 * the last stage keeps its latest output for `read` and announces it with `evt output`.
 * Portable: no ESP-IDF, no allocation.
 */
#include <inttypes.h>
#include <string.h>

#include "ts_console_stage_internal.h"

/* -128..127: an optional '-' and digits, nothing else. */
static int parse_i8(const char *s, int8_t *out)
{
    int neg = (*s == '-');
    uint32_t v = 0;
    if (!ts_console_parse_u32(s + neg, neg ? 128u : 127u, &v)) {
        return 0;
    }
    *out = (int8_t)(neg ? -(int32_t)v : (int32_t)v);
    return 1;
}

/* 1 to 8 hex digits, either case. */
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

void ts_cs_cmd_inject(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argc;
    uint32_t inference = 0;
    int8_t exponent = 0;
    uint32_t bytes = 0;
    uint32_t crc = 0;
    if (!ts_console_parse_u32(argv[1], 0xFFFFu, &inference) || !parse_i8(argv[2], &exponent) ||
        !ts_console_parse_u32(argv[3], UINT32_MAX, &bytes) || !parse_hex32(argv[4], &crc)) {
        ts_console_usage(con);
        return;
    }
    if (cs->cfg.settings.stage != 1) {
        ts_console_err(con, "state", "inject is for stage 1, this is stage %u",
                       (unsigned)cs->cfg.settings.stage);
        return;
    }
    if (!ts_cs_need_running(cs)) {
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

void ts_cs_cmd_data(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argc;
    uint32_t offset = 0;
    if (!ts_console_parse_u32(argv[1], UINT32_MAX, &offset)) {
        ts_console_usage(con);
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

void ts_cs_cmd_end(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argc;
    (void)argv;
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
    if (!ts_cs_need_stage(cs)) {
        return;
    }
    int rc = ts_stage_inject(cs->stage, cs->inj_inference, cs->cfg.inject_buf, count,
                             cs->inj_exponent, ts_cs_now_us(cs));
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

void ts_cs_cmd_read(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    (void)argc;
    uint32_t inference = 0;
    uint32_t offset = 0;
    uint32_t len = 0;
    if (!ts_console_parse_u32(argv[1], 0xFFFFu, &inference) ||
        !ts_console_parse_u32(argv[2], UINT32_MAX, &offset) ||
        !ts_console_parse_u32(argv[3], UINT32_MAX, &len)) {
        ts_console_usage(con);
        return;
    }
    if (!ts_cs_is_last_stage(cs)) {
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
