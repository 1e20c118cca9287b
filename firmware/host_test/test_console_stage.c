/*
 * A pipeline board's console command set (ts_console_stage.c, ts_console_settings.c,
 * ts_console_tensor.c), driven for real: command lines in, protocol lines captured and checked.
 * The boards run the real ts_stage on a fake platform; the round trips connect two boards
 * through lossy_channel.h and carry a tensor inject -> stage 1 -> stage 2 -> read, in both
 * protocol modes and with frame loss in reliable mode.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console_capture.h"
#include "lossy_channel.h"
#include "ts_console.h"
#include "ts_console_stage.h"
#include "ts_frame.h"
#include "ts_test.h"

/* ---- a board on a fake platform ---- */

#define IN1 300  /* stage 1 input values (600 bytes: two `data` lines) */
#define MID 700  /* stage 1 output = stage 2 input (1400 bytes: several frames) */
#define OUT2 40  /* stage 2 output values */
#define MAXV 800

typedef struct board board_t;

typedef struct {
    board_t *b[2];
    int count;
    lc_net_t net;
    lc_channel_t down[2]; /* board k -> k+1 */
    lc_channel_t up[2];   /* board k+1 -> k */
    int64_t now;
} world_t;

struct board {
    int index;              /* 0-based position */
    world_t *world;
    ts_stage_t stage;
    ts_console_stage_t cs;
    capture_t out;
    ts_console_stage_settings_t stored;
    int stores;
    int store_rc;
    int reboots;
    int16_t in_buf[MAXV + 2];
    int16_t out_buf[MAXV];
    int16_t inject_buf[MAXV];
    int16_t read_buf[MAXV];
    size_t in_values;
    int8_t in_exp;
    size_t out_values;
};

static world_t W;
static board_t B1;
static board_t B2;

/* Stage 1: a 300 -> 700 map; stage 2: 700 -> 40 block sums. Exponents shift by a fixed step
 * so the exponent travels through the frames. */
static int infer1(const int16_t *in, size_t n, int8_t e, int16_t *out, size_t cap, size_t *out_n,
                  int8_t *out_e)
{
    if (n != IN1 || cap < MID) {
        return TS_ERR_ARG;
    }
    for (size_t i = 0; i < MID; i++) {
        int32_t v = (int32_t)in[i % IN1] * 3 + (int32_t)i - 350;
        out[i] = (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
    }
    *out_n = MID;
    *out_e = (int8_t)(e - 1);
    return TS_OK;
}

static int infer2(const int16_t *in, size_t n, int8_t e, int16_t *out, size_t cap, size_t *out_n,
                  int8_t *out_e)
{
    if (n != MID || cap < OUT2) {
        return TS_ERR_ARG;
    }
    for (size_t j = 0; j < OUT2; j++) {
        int32_t sum = 0;
        for (size_t k = 0; k < 17; k++) {
            sum += in[j * 17 + k];
        }
        out[j] = (int16_t)(sum / 17);
    }
    *out_n = OUT2;
    *out_e = e;
    return TS_OK;
}

static int op_send(void *ctx, ts_link_t link, const uint8_t *frame, size_t len)
{
    board_t *b = ctx;
    world_t *w = b->world;
    if (link == TS_LINK_DOWN) {
        if (b->index + 1 >= w->count) {
            return TS_ERR_STATE;
        }
        lc_send(&w->net, &w->down[b->index], w->now, b->index + 1, TS_LINK_UP, frame, len);
    } else {
        if (b->index == 0) {
            return TS_ERR_STATE;
        }
        lc_send(&w->net, &w->up[b->index - 1], w->now, b->index - 1, TS_LINK_DOWN, frame, len);
    }
    return TS_OK;
}

static int op_infer(void *ctx, const int16_t *in, size_t n, int8_t e, int16_t *out, size_t cap,
                    size_t *out_n, int8_t *out_e)
{
    board_t *b = ctx;
    return b->index == 0 ? infer1(in, n, e, out, cap, out_n, out_e)
                         : infer2(in, n, e, out, cap, out_n, out_e);
}

static void op_mark(void *ctx, ts_mark_t mark, uint16_t inference)
{
    board_t *b = ctx;
    ts_console_stage_on_mark(&b->cs, mark, inference);
}

static void op_output(void *ctx, uint16_t inference, const int16_t *values, size_t count,
                      int8_t exponent)
{
    board_t *b = ctx;
    ts_console_stage_on_output(&b->cs, inference, values, count, exponent);
}

static const ts_stage_ops_t STAGE_OPS = {
    .send = op_send, .infer = op_infer, .mark = op_mark, .output = op_output};

static int pf_store(void *ctx, const ts_console_stage_settings_t *s)
{
    board_t *b = ctx;
    b->stores++;
    if (b->store_rc == TS_OK) {
        b->stored = *s;
    }
    return b->store_rc;
}

static void pf_reboot(void *ctx)
{
    board_t *b = ctx;
    b->reboots++;
}

static int pf_rssi(void *ctx, ts_link_t link, int8_t *dbm)
{
    (void)ctx;
    *dbm = link == TS_LINK_UP ? -50 : -42;
    return TS_OK;
}

static int64_t pf_now(void *ctx)
{
    board_t *b = ctx;
    return b->world->now;
}

static size_t pf_extra(void *ctx, char *buf, size_t cap)
{
    (void)ctx;
    int n = snprintf(buf, cap, " fake_drops=3");
    return n < 0 ? 0 : (size_t)n;
}

static const ts_console_stage_platform_t PLATFORM = {
    .store = pf_store,
    .reboot = pf_reboot,
    .rssi = pf_rssi,
    .now_us = pf_now,
    .extra_stats = pf_extra,
};

static const ts_console_stage_settings_t SETTINGS = {
    .stage = 1,
    .stages = 2,
    .mode = TS_MODE_RELIABLE,
    .window = 4,
    .ack_timeout_ms = 20,
    .max_timeouts = 50,
};

/* Set up board `index` of `count` (not attached: call board_attach when "the links are up"). */
static void board_setup(board_t *b, world_t *w, int index, int count,
                        const ts_console_stage_settings_t *settings)
{
    memset(b, 0, sizeof *b);
    b->index = index;
    b->world = w;
    b->in_values = index == 0 ? IN1 : MID;
    b->in_exp = index == 0 ? -3 : -5; /* stage 1 outputs -4: stage 2 requantizes to -5 */
    b->out_values = index == 0 ? MID : OUT2;
    ts_console_stage_config_t cfg = {
        .firmware = "test-1.0",
        .transport = "sim",
        .settings = *settings,
        .input_values = b->in_values,
        .input_exponent = b->in_exp,
        .output_values = b->out_values,
        .inject_buf = b->inject_buf,
        .output_buf = b->read_buf,
    };
    cfg.settings.stage = (uint8_t)(index + 1);
    cfg.settings.stages = (uint8_t)count;
    b->stored = cfg.settings;
    TS_CHECK_EQ_INT(ts_console_stage_init(&b->cs, &cfg, &PLATFORM, b, capture_write, &b->out),
                    TS_OK);
    w->b[index] = b;
}

static void board_attach(board_t *b)
{
    const ts_console_stage_settings_t *s = &b->cs.cfg.settings;
    ts_stage_config_t sc = {
        .stage = s->stage,
        .stages = s->stages,
        .mode = s->mode,
        .window = s->window,
        .frame_bytes = 250,
        .ack_timeout_us = s->ack_timeout_ms * 1000u,
        .busy_retry_us = s->ack_timeout_ms * 1000u,
        .max_timeouts = s->max_timeouts,
        .input_values = b->in_values,
        .input_exponent = b->in_exp,
        .output_values = b->out_values,
    };
    TS_CHECK_EQ_INT(ts_stage_init(&b->stage, &sc, &STAGE_OPS, b, b->in_buf, b->out_buf), TS_OK);
    ts_console_stage_attach(&b->cs, &b->stage);
}

static void world_setup(world_t *w, int count, const lc_params_t *link, uint64_t seed)
{
    memset(w, 0, sizeof *w);
    w->count = count;
    w->now = 1000000;
    lc_net_init(&w->net);
    for (int i = 0; i < 2; i++) {
        lc_channel_init(&w->down[i], link, seed * 7u + (uint64_t)i);
        lc_channel_init(&w->up[i], link, seed * 13u + (uint64_t)i + 100u);
    }
}

/* Send one command line (CRLF-terminated, as a terminal does) and return the one reply. */
static const char *cmd(board_t *b, const char *line)
{
    capture_clear(&b->out);
    ts_console_stage_feed(&b->cs, line, strlen(line));
    ts_console_stage_feed(&b->cs, "\r\n", 2);
    const char *reply = NULL;
    int replies = 0;
    for (int i = 0; i < b->out.count; i++) {
        const char *l = b->out.line[i];
        if (strncmp(l, "TS1 ok", 6) == 0 || strncmp(l, "TS1 err", 7) == 0) {
            reply = l;
            replies++;
        }
    }
    if (!TS_CHECK(replies == 1)) {
        fprintf(stderr, "    %d replies to \"%s\"\n", replies, line);
    }
    return reply != NULL ? reply : "(no reply)";
}

/* Send `line` and require the reply `expected`; failures name the caller's line. */
static void check_reply_at(board_t *b, const char *line, const char *expected, int at)
{
    const char *got = cmd(b, line);
    ts_test_state()->checks++;
    if (strcmp(got, expected) != 0) {
        ts_test_fail(__FILE__, at, line);
        fprintf(stderr, "    got      \"%s\"\n    expected \"%s\"\n", got, expected);
    }
}

#define check_reply(b, line, expected) check_reply_at((b), (line), (expected), __LINE__)

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Run both boards until `done` or the virtual clock passes `limit_us`: deliver frames in
 * arrival order, poll, jump the clock to the next event. Output lines accumulate. */
static void run_until(world_t *w, int (*done)(world_t *), int64_t limit_us)
{
    int64_t end = w->now + limit_us;
    while (!done(w) && w->now <= end) {
        for (int i = 0; i < w->count; i++) {
            ts_console_stage_poll(&w->b[i]->cs, w->now);
        }
        int64_t next = lc_next_time(&w->net);
        for (int i = 0; i < w->count; i++) {
            int64_t d = ts_console_stage_next_deadline_us(&w->b[i]->cs);
            if (d < next) {
                next = d;
            }
        }
        if (next == INT64_MAX) {
            break; /* nothing will ever happen */
        }
        if (next > w->now) {
            w->now = next;
        }
        while (lc_next_time(&w->net) <= w->now) {
            static lc_frame_t f;
            lc_pop(&w->net, &f);
            board_t *dst = w->b[f.dst];
            ts_console_stage_on_frame(&dst->cs, (ts_link_t)f.link, f.data, f.len, w->now);
            ts_console_stage_poll(&dst->cs, w->now);
        }
    }
}

/* Feed the tensor `values` to board 1 with inject / data / end, in chunks of `chunk` bytes. */
static void inject(board_t *b, uint16_t inference, int8_t exponent, const int16_t *values,
                   size_t count, size_t chunk)
{
    static uint8_t raw[MAXV * 2];
    for (size_t i = 0; i < count; i++) {
        raw[2 * i] = (uint8_t)((uint16_t)values[i] & 0xFFu);
        raw[2 * i + 1] = (uint8_t)((uint16_t)values[i] >> 8);
    }
    size_t bytes = count * 2;
    char line[TS_CONSOLE_LINE_MAX];
    snprintf(line, sizeof line, "inject %u %d %zu %08" PRIx32, (unsigned)inference, (int)exponent,
             bytes, ts_crc32(raw, bytes));
    check_reply(b, line, "TS1 ok max_data=512");
    for (size_t off = 0; off < bytes; off += chunk) {
        size_t n = bytes - off < chunk ? bytes - off : chunk;
        int m = snprintf(line, sizeof line, "data %zu ", off);
        TS_REQUIRE(ts_base64_encode(raw + off, n, line + m, sizeof line - (size_t)m) > 0);
        char expect[64];
        snprintf(expect, sizeof expect, "TS1 ok received=%zu", off + n);
        check_reply(b, line, expect);
    }
    char expect[64];
    snprintf(expect, sizeof expect, "TS1 ok inference=%u", (unsigned)inference);
    check_reply(b, "end", expect);
}

static int b2_has_output(world_t *w)
{
    (void)w;
    return capture_find(&B2.out, "TS1 evt output") != NULL;
}

/* The expected stage-2 output for `input` at `exponent`, as little-endian bytes. Reliable
 * frames carry the exponent and stage 2 requantizes; paper frames carry none, so stage 2 takes
 * the values as they are, at its own input exponent. */
static void expected_output(ts_mode_t mode, const int16_t *input, int8_t exponent, uint8_t *raw,
                            int8_t *out_e)
{
    int16_t mid[MID];
    int16_t out[OUT2];
    size_t n = 0;
    int8_t e1 = 0;
    infer1(input, IN1, exponent, mid, MID, &n, &e1);
    if (mode == TS_MODE_RELIABLE) {
        ts_requantize(mid, MID, e1, B2.in_exp);
    }
    infer2(mid, MID, B2.in_exp, out, OUT2, &n, out_e);
    for (size_t i = 0; i < OUT2; i++) {
        raw[2 * i] = (uint8_t)((uint16_t)out[i] & 0xFFu);
        raw[2 * i + 1] = (uint8_t)((uint16_t)out[i] >> 8);
    }
}

/* inject -> stage 1 -> frames -> stage 2 -> evt output -> read, on the world W. */
static void round_trip(ts_mode_t mode, const lc_params_t *link, uint64_t seed, int rounds)
{
    ts_console_stage_settings_t s = SETTINGS;
    s.mode = mode;
    world_setup(&W, 2, link, seed);
    board_setup(&B1, &W, 0, 2, &s);
    board_setup(&B2, &W, 1, 2, &s);
    board_attach(&B1);
    board_attach(&B2);
    check_reply(&B2, "start", "TS1 ok state=running");
    check_reply(&B1, "marks on", "TS1 ok marks=on");
    check_reply(&B1, "start", "TS1 ok state=running");
    char hello[256];
    snprintf(hello, sizeof hello,
             "TS1 ok proto=1 fw=test-1.0 transport=sim stage=1 stages=2 mode=%s window=4 "
             "in=300 in_exp=-3 out=700",
             mode == TS_MODE_PAPER ? "paper" : "reliable");
    check_reply(&B1, "hello", hello);

    for (int r = 0; r < rounds; r++) {
        uint16_t inference = (uint16_t)(100 + r);
        int16_t input[IN1];
        for (size_t i = 0; i < IN1; i++) {
            input[i] = (int16_t)((int32_t)(i * 2654435761u >> 16) - 32768 + r);
        }
        capture_clear(&B1.out);
        capture_clear(&B2.out);
        inject(&B1, inference, -3, input, IN1, r % 2 ? 100 : TS_CONSOLE_STAGE_DATA_MAX);
        run_until(&W, b2_has_output, 60000000);

        uint8_t want[OUT2 * 2];
        int8_t want_e = 0;
        expected_output(mode, input, -3, want, &want_e);
        const char *evt = capture_find(&B2.out, "TS1 evt output");
        TS_REQUIRE(evt != NULL);
        char expect[128];
        snprintf(expect, sizeof expect,
                 "TS1 evt output inference=%u exp=%d bytes=80 crc32=%08" PRIx32,
                 (unsigned)inference, (int)want_e, ts_crc32(want, sizeof want));
        TS_CHECK_EQ_STR(evt, expect);

        /* Read it back in two pieces. */
        char line[64];
        uint8_t got[OUT2 * 2];
        snprintf(line, sizeof line, "read %u 0 50", (unsigned)inference);
        const char *reply = cmd(&B2, line);
        TS_REQUIRE(starts_with(reply, "TS1 ok "));
        TS_CHECK_EQ_INT(ts_base64_decode(reply + 7, strlen(reply + 7), got, 50), 50);
        snprintf(line, sizeof line, "read %u 50 30", (unsigned)inference);
        reply = cmd(&B2, line);
        TS_REQUIRE(starts_with(reply, "TS1 ok "));
        TS_CHECK_EQ_INT(ts_base64_decode(reply + 7, strlen(reply + 7), got + 50, 30), 30);
        TS_CHECK_EQ_MEM(got, want, sizeof want);

        /* Board 1 marked every event of its part, in order. */
        static const char *const marks[] = {"rx_start", "rx_end", "infer_start", "infer_end",
                                            "tx_start"};
        int last = -1;
        for (size_t k = 0; k < sizeof marks / sizeof marks[0]; k++) {
            char prefix[96];
            snprintf(prefix, sizeof prefix, "TS1 evt mark mark=%s inference=%u t_us=", marks[k],
                     (unsigned)inference);
            int at = -1;
            for (int i = 0; i < B1.out.count; i++) {
                if (starts_with(B1.out.line[i], prefix)) {
                    at = i;
                    break;
                }
            }
            if (!TS_CHECK(at > last)) {
                fprintf(stderr, "    mark %s missing or out of order\n", marks[k]);
            }
            last = at;
        }
        TS_CHECK_EQ_INT(capture_count(&B2.out, "TS1 evt mark"), 0); /* marks are off there */
    }
    TS_CHECK_EQ_INT(B1.out.bad_writes + B2.out.bad_writes, 0);
}

static int world_idle(world_t *w)
{
    for (int i = 0; i < w->count; i++) {
        if (!ts_stage_idle(&w->b[i]->stage)) {
            return 0;
        }
    }
    return lc_next_time(&w->net) == INT64_MAX;
}

static void test_round_trip_reliable(void)
{
    const lc_params_t perfect = {.latency_us = 300, .frame_us = 100};
    round_trip(TS_MODE_RELIABLE, &perfect, 1, 3);
    run_until(&W, world_idle, 1000000);
    const char *st = cmd(&B1, "stats");
    TS_CHECK_EQ_INT(kv(st, "tensors_in"), 3);
    TS_CHECK_EQ_INT(kv(st, "tensors_out"), 3);
    TS_CHECK_EQ_INT(kv(st, "retransmissions"), 0);
    TS_CHECK_EQ_INT(kv(st, "fake_drops"), 3);
    st = cmd(&B2, "stats");
    TS_CHECK_EQ_INT(kv(st, "tensors_in"), 3);
    TS_CHECK_EQ_INT(kv(st, "tensors_out"), 3);
    TS_CHECK_EQ_INT(kv(st, "requantized"), 3);
    check_reply(&B1, "status",
                "TS1 ok state=running links=up busy=0 tensors_in=3 tensors_out=3 errors=0");

    /* Ping the next board: the RTT arrives later as an event and in the stats. */
    check_reply(&B1, "ping down", "TS1 ok link=down token=1");
    capture_clear(&B1.out);
    run_until(&W, world_idle, 1000000);
    const char *evt = capture_find(&B1.out, "TS1 evt rtt link=down rtt_us=");
    TS_REQUIRE(evt != NULL);
    long long rtt = kv(evt, "rtt_us");
    TS_CHECK(rtt >= 600); /* two 300 us hops at least */
    TS_CHECK_EQ_INT(kv(cmd(&B1, "stats"), "rtt_down_us"), rtt);
    check_reply(&B1, "ping up", "TS1 err state stage 1 has no up link");
    check_reply(&B2, "ping down", "TS1 err state stage 2 has no down link");
    check_reply(&B1, "rssi", "TS1 ok up=none down=-42");
    check_reply(&B2, "rssi", "TS1 ok up=-50 down=none");

    /* Errors of `read`. */
    check_reply(&B2, "read 999 0 10", "TS1 err range latest output is inference 102");
    check_reply(&B2, "read 102 0 81", "TS1 err range output is 80 bytes");
    check_reply(&B2, "read 102 80 0", "TS1 ok");
    check_reply(&B2, "read 102 0 513", "TS1 err size at most 512 bytes per read");
    check_reply(&B2, "read 102 0", "TS1 err usage read <inference> <offset> <len>");
    check_reply(&B1, "read 102 0 1", "TS1 err state read is for the last stage");

    /* Stats reset, and frames while stopped are ignored and counted. */
    check_reply(&B2, "stats reset", "TS1 ok");
    TS_CHECK_EQ_INT(kv(cmd(&B2, "stats"), "tensors_in"), 0);
    check_reply(&B2, "stop", "TS1 ok state=idle");
    static const uint8_t junk[20] = {1};
    ts_console_stage_on_frame(&B2.cs, TS_LINK_UP, junk, sizeof junk, W.now);
    TS_CHECK_EQ_INT(kv(cmd(&B2, "stats"), "rx_ignored"), 1);
    TS_CHECK_EQ_INT(kv(cmd(&B2, "stats"), "rx_frames"), 0);
}

static void test_round_trip_reliable_lossy(void)
{
    /* 15 % loss, duplicates, reordering and corruption on both directions. */
    const lc_params_t lossy = {.loss = 0.15, .dup = 0.05, .corrupt = 0.05, .latency_us = 300,
                               .jitter_us = 400, .frame_us = 100};
    for (uint64_t seed = 1; seed <= 4; seed++) {
        round_trip(TS_MODE_RELIABLE, &lossy, seed, 2);
        run_until(&W, world_idle, 10000000);
        const char *st = cmd(&B1, "stats");
        TS_CHECK_EQ_INT(kv(st, "tensors_out"), 2);
        TS_CHECK(kv(st, "retransmissions") > 0);
        TS_CHECK_EQ_INT(kv(st, "send_failures"), 0);
        TS_CHECK_EQ_INT(kv(cmd(&B2, "stats"), "tensors_out"), 2);
    }
}

static void test_round_trip_paper(void)
{
    const lc_params_t perfect = {.latency_us = 300, .frame_us = 100};
    round_trip(TS_MODE_PAPER, &perfect, 2, 2);
    check_reply(&B1, "ping down", "TS1 err state ping needs reliable mode");
    run_until(&W, world_idle, 1000000);
    TS_CHECK_EQ_INT(kv(cmd(&B1, "stats"), "tensors_out"), 2);
    TS_CHECK_EQ_INT(kv(cmd(&B2, "stats"), "requantized"), 0);
}

static void test_paper_loss_is_reported(void)
{
    /* A dead link in paper mode: board 1 gives the tensor up and says so. */
    const lc_params_t perfect = {.latency_us = 300, .frame_us = 100};
    ts_console_stage_settings_t s = SETTINGS;
    s.mode = TS_MODE_PAPER;
    world_setup(&W, 2, &perfect, 3);
    board_setup(&B1, &W, 0, 2, &s);
    board_setup(&B2, &W, 1, 2, &s);
    board_attach(&B1);
    board_attach(&B2);
    check_reply(&B1, "start", "TS1 ok state=running");
    check_reply(&B2, "start", "TS1 ok state=running");
    W.down[0].dead = 1;
    int16_t input[IN1] = {0};
    capture_clear(&B1.out);
    inject(&B1, 5, -3, input, IN1, 512);
    run_until(&W, world_idle, 10000000);
    TS_CHECK(capture_find(&B1.out, "TS1 evt error what=send_failures total=1") != NULL);
    TS_CHECK(starts_with(cmd(&B1, "status"), "TS1 ok state=running links=up busy=0"));
    TS_CHECK_EQ_INT(kv(cmd(&B1, "status"), "errors"), 1);
}

static void single_board(void)
{
    world_setup(&W, 1, &(lc_params_t){.latency_us = 1}, 9);
    ts_console_stage_settings_t s = SETTINGS;
    s.stages = 1;
    board_setup(&B1, &W, 0, 1, &s);
}

static void test_hello_config_reset(void)
{
    single_board();
    check_reply(&B1, "hello",
                "TS1 ok proto=1 fw=test-1.0 transport=sim stage=1 stages=1 mode=reliable "
                "window=4 in=300 in_exp=-3 out=700");
    check_reply(&B1, "hello x", "TS1 err usage hello");
    check_reply(&B1, "status",
                "TS1 ok state=idle links=down busy=0 tensors_in=0 tensors_out=0 errors=0");
    check_reply(&B1, "config",
                "TS1 ok stage=1 stages=1 mode=reliable window=4 ack_timeout_ms=20 "
                "max_timeouts=50 pending=0");
    check_reply(&B1, "config stages=5 stage=3 mode=paper window=16 ack_timeout_ms=60000",
                "TS1 ok stage=3 stages=5 mode=paper window=16 ack_timeout_ms=60000 "
                "max_timeouts=50 pending=1");
    TS_CHECK_EQ_INT(B1.stores, 1);
    TS_CHECK_EQ_INT(B1.stored.stage, 3);
    TS_CHECK_EQ_INT(B1.stored.mode, TS_MODE_PAPER);
    /* The running settings do not change until reset. */
    TS_CHECK(strstr(cmd(&B1, "hello"), "stage=1 stages=1 mode=reliable window=4") != NULL);
    check_reply(&B1, "config stage=6", "TS1 err range stage 6 is past stages 5");
    check_reply(&B1, "config window=0", "TS1 err range bad value 0 for window");
    check_reply(&B1, "config window=17", "TS1 err range bad value 17 for window");
    check_reply(&B1, "config window=4x", "TS1 err range bad value 4x for window");
    check_reply(&B1, "config mode=fast", "TS1 err range bad value fast for mode");
    check_reply(&B1, "config stages=17", "TS1 err range bad value 17 for stages");
    check_reply(&B1, "config ack_timeout_ms=0", "TS1 err range bad value 0 for ack_timeout_ms");
    check_reply(&B1, "config max_timeouts=1001", "TS1 err range bad value 1001 for max_timeouts");
    check_reply(&B1, "config speed=1", "TS1 err usage unknown key speed");
    check_reply(&B1, "config window", "TS1 err usage config [key=value]...");
    check_reply(&B1, "config =3", "TS1 err usage config [key=value]...");
    TS_CHECK_EQ_INT(B1.stores, 1); /* nothing invalid was stored */
    B1.store_rc = TS_ERR_STATE;
    check_reply(&B1, "config window=2", "TS1 err io storing the settings failed (state)");
    B1.store_rc = TS_OK;
    /* Back to the running settings: nothing pending. */
    check_reply(&B1, "config stage=1 stages=1 mode=reliable window=4 ack_timeout_ms=20",
                "TS1 ok stage=1 stages=1 mode=reliable window=4 ack_timeout_ms=20 "
                "max_timeouts=50 pending=0");
    check_reply(&B1, "reset", "TS1 ok rebooting");
    TS_CHECK_EQ_INT(B1.reboots, 1);
    const char *help = cmd(&B1, "help");
    TS_CHECK_EQ_STR(help, "TS1 ok commands=help,hello,status,config,reset,start,stop,inject,"
                          "data,end,read,stats,rssi,ping,marks");
    check_reply(&B1, "help inject", "TS1 ok inject <inference> <exponent> <bytes> <crc32hex>");
    check_reply(&B1, "frobnicate", "TS1 err unknown no command frobnicate");
    check_reply(&B1, "marks maybe", "TS1 err usage marks <on|off>");
}

static void test_links_down(void)
{
    single_board();
    check_reply(&B1, "start", "TS1 ok state=running");
    check_reply(&B1, "inject 1 0 600 0", "TS1 err state links down");
    check_reply(&B1, "stats", "TS1 err state links down");
    check_reply(&B1, "ping down", "TS1 err state stage 1 has no down link");
    TS_CHECK_EQ_INT(ts_console_stage_next_deadline_us(&B1.cs), INT64_MAX);
}

static void test_inject_errors(void)
{
    single_board();
    board_attach(&B1);
    check_reply(&B1, "inject 1 0 600 0", "TS1 err state stopped");
    check_reply(&B1, "start", "TS1 ok state=running");
    check_reply(&B1, "inject 1 0 602 0", "TS1 err size input is 600 bytes");
    check_reply(&B1, "inject 1 0 600", "TS1 err usage inject <inference> <exponent> <bytes> "
                                        "<crc32hex>");
    check_reply(&B1, "inject 65536 0 600 0",
                "TS1 err usage inject <inference> <exponent> <bytes> <crc32hex>");
    check_reply(&B1, "inject 1 -129 600 0",
                "TS1 err usage inject <inference> <exponent> <bytes> <crc32hex>");
    check_reply(&B1, "inject 1 0 600 123456789",
                "TS1 err usage inject <inference> <exponent> <bytes> <crc32hex>");
    check_reply(&B1, "data 0 AAAA", "TS1 err state no inject in progress");
    check_reply(&B1, "end", "TS1 err state no inject in progress");

    static uint8_t raw[600];
    for (size_t i = 0; i < sizeof raw; i++) {
        raw[i] = (uint8_t)(i * 7u);
    }
    char line[1100];
    snprintf(line, sizeof line, "inject 9 -128 600 %08" PRIX32, ts_crc32(raw, sizeof raw));
    check_reply(&B1, line, "TS1 ok max_data=512");
    check_reply(&B1, "data 4 AAAA", "TS1 err range expected offset 0");
    check_reply(&B1, "data 0 AA!A", "TS1 err usage bad base64");
    check_reply(&B1, "data x AAAA", "TS1 err usage data <offset> <base64>");
    /* 513 bytes in one line: over the per-line limit. */
    int m = snprintf(line, sizeof line, "data 0 ");
    ts_base64_encode(raw, 513, line + m, sizeof line - (size_t)m);
    check_reply(&B1, line, "TS1 err size more than 512 bytes at offset 0");
    m = snprintf(line, sizeof line, "data 0 ");
    ts_base64_encode(raw, 500, line + m, sizeof line - (size_t)m);
    check_reply(&B1, line, "TS1 ok received=500");
    check_reply(&B1, "data 0 AAAA", "TS1 err range expected offset 500"); /* a resent line */
    check_reply(&B1, "end", "TS1 err size received 500 of 600 bytes");
    /* Past the declared size. */
    m = snprintf(line, sizeof line, "data 500 ");
    ts_base64_encode(raw, 101, line + m, sizeof line - (size_t)m);
    check_reply(&B1, line, "TS1 err size more than 100 bytes at offset 500");
    /* The right length with a wrong byte: err crc, and the inject is over. */
    static uint8_t bad[600];
    memcpy(bad, raw, sizeof bad);
    bad[599] ^= 1;
    m = snprintf(line, sizeof line, "data 500 ");
    ts_base64_encode(bad + 500, 100, line + m, sizeof line - (size_t)m);
    check_reply(&B1, line, "TS1 ok received=600");
    snprintf(line, sizeof line, "TS1 err crc computed %08" PRIx32 ", expected %08" PRIx32,
             ts_crc32(bad, sizeof bad), ts_crc32(raw, sizeof raw));
    check_reply(&B1, "end", line);
    check_reply(&B1, "data 0 AAAA", "TS1 err state no inject in progress");

    /* Stage 2 of 2 cannot inject. */
    world_setup(&W, 2, &(lc_params_t){.latency_us = 1}, 4);
    board_setup(&B2, &W, 1, 2, &SETTINGS);
    board_attach(&B2);
    check_reply(&B2, "start", "TS1 ok state=running");
    check_reply(&B2, "inject 1 0 1400 0", "TS1 err state inject is for stage 1, this is stage 2");
    check_reply(&B2, "read 0 0 1", "TS1 err state no output yet");
}

static void test_single_stage_output(void)
{
    /* A one-board pipeline: inject, the output event follows at the next poll. */
    single_board();
    board_attach(&B1);
    check_reply(&B1, "start", "TS1 ok state=running");
    int16_t input[IN1];
    for (size_t i = 0; i < IN1; i++) {
        input[i] = (int16_t)(i * 100);
    }
    inject(&B1, 77, -3, input, IN1, 512);
    TS_CHECK_EQ_INT(ts_console_stage_next_deadline_us(&B1.cs), 0);
    /* Before the stage ran on it, a second input has nowhere to go. */
    static const uint8_t zeros[600];
    char line[1100];
    snprintf(line, sizeof line, "inject 78 -3 600 %" PRIx32, ts_crc32(zeros, sizeof zeros));
    check_reply(&B1, line, "TS1 ok max_data=512");
    for (int off = 0; off < 600; off += 300) {
        int m = snprintf(line, sizeof line, "data %d ", off);
        ts_base64_encode(zeros, 300, line + m, sizeof line - (size_t)m);
        cmd(&B1, line);
    }
    check_reply(&B1, "end", "TS1 err state previous input not consumed yet; inject again");
    capture_clear(&B1.out);
    ts_console_stage_poll(&B1.cs, W.now);
    const char *evt = capture_find(&B1.out, "TS1 evt output inference=77 exp=-4 bytes=1400 ");
    TS_CHECK(evt != NULL);
    /* A second inject while the first is consumed works; `stop` drops a partial one. */
    check_reply(&B1, "inject 78 0 600 0", "TS1 ok max_data=512");
    check_reply(&B1, "stop", "TS1 ok state=idle");
    check_reply(&B1, "data 0 AAAA", "TS1 err state no inject in progress");
    TS_CHECK_EQ_INT(ts_console_stage_next_deadline_us(&B1.cs), INT64_MAX);
}

int main(void)
{
    TS_RUN(test_hello_config_reset);
    TS_RUN(test_links_down);
    TS_RUN(test_inject_errors);
    TS_RUN(test_single_stage_output);
    TS_RUN(test_round_trip_reliable);
    TS_RUN(test_round_trip_reliable_lossy);
    TS_RUN(test_round_trip_paper);
    TS_RUN(test_paper_loss_is_reported);
    return TS_RESULT();
}
