/*
 * Tests of the scribe mark pulses (components/tinysplit_core/src/ts_mark.c): the width code,
 * the per-line decoder on hand-made and random pulse trains with jitter, glitches and lost
 * edges, and the extension of a wrapping 32-bit 80 MHz capture counter to 64-bit ns.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ts_frame.h"
#include "ts_mark.h"
#include "ts_test.h"

#define UNIT_NS 10000u     /* 10 µs */
#define CAP_HZ 80000000u   /* MCPWM capture clock of the ESP32-S3 (APB) */
#define WRAP_TICKS 4294967296LL

/* xorshift64*: deterministic, seedable, good enough for test data. */
static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
    rng_state = seed ? seed : 0x9E3779B97F4A7C15ull;
}

static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [lo, hi] (inclusive), lo <= hi. */
static int64_t rng_range(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng_next() % (uint64_t)(hi - lo + 1));
}

static void test_pulse_widths_and_names(void)
{
    static const char *const names[] = {"rx_start", "rx_end", "infer_start",
                                        "infer_end", "tx_start", "tx_end"};
    for (int m = TS_MARK_MIN; m <= TS_MARK_MAX; m++) {
        TS_CHECK_EQ_INT(ts_mark_pulse_us((ts_mark_t)m, 10), 10 * m);
        TS_CHECK_EQ_STR(ts_mark_name((ts_mark_t)m), names[m - 1]);
    }
    TS_CHECK_EQ_INT(TS_MARK_RX_START, 1);
    TS_CHECK_EQ_INT(TS_MARK_TX_END, 6);
    TS_CHECK_EQ_INT(ts_mark_pulse_us((ts_mark_t)0, 10), 0);
    TS_CHECK_EQ_INT(ts_mark_pulse_us((ts_mark_t)7, 10), 0);
    TS_CHECK_EQ_STR(ts_mark_name((ts_mark_t)0), "?");
    TS_CHECK_EQ_STR(ts_mark_name((ts_mark_t)7), "?");
}

static void test_width_classification(void)
{
    for (int m = 1; m <= 6; m++) {
        const int64_t w = (int64_t)m * UNIT_NS;
        TS_CHECK_EQ_INT(ts_mark_from_width(w, UNIT_NS), m);
        TS_CHECK_EQ_INT(ts_mark_from_width(w + 3500, UNIT_NS), m); /* +35 %: accepted */
        TS_CHECK_EQ_INT(ts_mark_from_width(w - 3500, UNIT_NS), m); /* -35 %: accepted */
        TS_CHECK_EQ_INT(ts_mark_from_width(w + 3501, UNIT_NS), 0); /* just past the tolerance */
        TS_CHECK_EQ_INT(ts_mark_from_width(w - 3501, UNIT_NS), 0);
        TS_CHECK_EQ_INT(ts_mark_from_width(w + 5000, UNIT_NS), 0); /* half way between codes */
    }
    TS_CHECK_EQ_INT(ts_mark_from_width(0, UNIT_NS), 0);
    TS_CHECK_EQ_INT(ts_mark_from_width(-UNIT_NS, UNIT_NS), 0);
    TS_CHECK_EQ_INT(ts_mark_from_width(1000, UNIT_NS), 0);         /* 0.1 unit spike */
    TS_CHECK_EQ_INT(ts_mark_from_width(7 * UNIT_NS, UNIT_NS), 0);  /* out of 1..6 */
    TS_CHECK_EQ_INT(ts_mark_from_width(6500 * 10, UNIT_NS), 0);    /* 6.5 units */
    TS_CHECK_EQ_INT(ts_mark_from_width(1000, 0), 0);
    TS_CHECK_EQ_INT(ts_mark_timeout_ns(UNIT_NS), 12 * (int64_t)UNIT_NS);
}

static void test_decoder_single_pulses(void)
{
    ts_mark_decoder_t d;
    ts_mark_event_t ev;
    TS_CHECK_EQ_INT(ts_mark_decoder_init(&d, 0), TS_ERR_ARG);
    TS_REQUIRE(ts_mark_decoder_init(&d, UNIT_NS) == TS_OK);

    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 1000, 1, &ev), 0);
    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 1000 + 3 * UNIT_NS + 200, 0, &ev), 1);
    TS_CHECK_EQ_INT(ev.mark, TS_MARK_INFER_START);
    TS_CHECK_EQ_INT(ev.t_ns, 1000);
    TS_CHECK_EQ_INT(ev.width_ns, 3 * UNIT_NS + 200);

    /* A falling edge without a rising one. */
    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 200000, 0, &ev), 0);
    /* Two rising edges close together: the first pulse lost its falling edge -> glitch. */
    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 300000, 1, &ev), 0);
    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 300000 + 2 * UNIT_NS, 1, &ev), 0);
    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 300000 + 3 * UNIT_NS, 0, &ev), 1);
    TS_CHECK_EQ_INT(ev.mark, TS_MARK_RX_START);
    TS_CHECK_EQ_INT(ev.t_ns, 300000 + 2 * UNIT_NS);
    /* Too wide but before the timeout: a glitch. */
    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 400000, 1, &ev), 0);
    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 400000 + 8 * UNIT_NS, 0, &ev), 0);

    const ts_mark_line_stats_t *st = ts_mark_decoder_stats(&d);
    TS_CHECK_EQ_INT(st->marks, 2);
    TS_CHECK_EQ_INT(st->per_kind[TS_MARK_INFER_START - 1], 1);
    TS_CHECK_EQ_INT(st->per_kind[TS_MARK_RX_START - 1], 1);
    TS_CHECK_EQ_INT(st->glitches, 3);
    TS_CHECK_EQ_INT(st->timeouts, 0);

    /* Time going backwards is rejected and leaves the state alone. */
    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 500000, 1, &ev), 0);
    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 499000, 0, &ev), 0);
    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 500000 + 6 * UNIT_NS, 0, &ev), 1);
    TS_CHECK_EQ_INT(ev.mark, TS_MARK_TX_END);
    TS_CHECK_EQ_INT(st->glitches, 4);

    ts_mark_decoder_reset(&d);
    TS_CHECK_EQ_INT(st->marks, 0);
    TS_CHECK_EQ_INT(st->glitches, 0);
}

static void test_decoder_timeouts(void)
{
    ts_mark_decoder_t d;
    ts_mark_event_t ev;
    TS_REQUIRE(ts_mark_decoder_init(&d, UNIT_NS) == TS_OK);
    const ts_mark_line_stats_t *st = ts_mark_decoder_stats(&d);
    const int64_t timeout = ts_mark_timeout_ns(UNIT_NS);

    /* Stuck high: poll reports it once; the late falling edge is swallowed. */
    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 0, 1, &ev), 0);
    TS_CHECK_EQ_INT(ts_mark_decoder_poll(&d, timeout), 0);
    TS_CHECK_EQ_INT(ts_mark_decoder_poll(&d, timeout + 1), 1);
    TS_CHECK_EQ_INT(ts_mark_decoder_poll(&d, timeout + 2), 0);
    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 10 * timeout, 0, &ev), 0);
    TS_CHECK_EQ_INT(st->timeouts, 1);
    TS_CHECK_EQ_INT(st->glitches, 0);

    /* Missing falling edge found by the next rising edge, without a poll. */
    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 20 * timeout, 1, &ev), 0);
    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 22 * timeout, 1, &ev), 0);
    TS_CHECK_EQ_INT(st->timeouts, 2);
    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 22 * timeout + 5 * UNIT_NS, 0, &ev), 1);
    TS_CHECK_EQ_INT(ev.mark, TS_MARK_TX_START);

    /* A falling edge after the timeout without a poll in between. */
    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 30 * timeout, 1, &ev), 0);
    TS_CHECK_EQ_INT(ts_mark_decoder_edge(&d, 32 * timeout, 0, &ev), 0);
    TS_CHECK_EQ_INT(st->timeouts, 3);
    TS_CHECK_EQ_INT(st->glitches, 0);
    TS_CHECK_EQ_INT(st->marks, 1);
}

/* ---- random pulse trains ---------------------------------------------------------------- */

#define LINES 6
#define PULSES_PER_LINE 4000
#define MAX_EDGES (LINES * PULSES_PER_LINE * 2)
#define MAX_EXPECTED (LINES * PULSES_PER_LINE)

typedef struct {
    int64_t t_ns;     /* true time of the edge */
    uint8_t line;
    uint8_t level;
} edge_t;

typedef struct {
    uint8_t line;
    uint8_t mark;
    int64_t t_ns;
} expected_t;

typedef struct {
    edge_t edges[MAX_EDGES];
    size_t n_edges;
    expected_t expected[MAX_EXPECTED];
    size_t n_expected;
    uint32_t glitches[LINES];
    uint32_t timeouts[LINES];
    uint32_t per_kind[LINES][TS_MARK_KINDS];
} train_t;

static train_t train;

static void add_edge(uint8_t line, int64_t t, uint8_t level)
{
    edge_t *e = &train.edges[train.n_edges++];
    e->t_ns = t;
    e->line = line;
    e->level = level;
}

/*
 * One line's pulses: valid marks with jitter (within +-30 % of a unit), spikes, widths between
 * codes, over-wide pulses and pulses whose falling edge is lost. The expectation follows the
 * documented rules, computed here independently of the decoder. Every classification keeps a
 * margin of at least 1 % of a unit from its threshold, so quantising the times to 12.5 ns
 * capture ticks cannot change it. With `long_gaps`, about one pulse in 200 follows a silence
 * of 1..100 s (longer than the 26.8 s a wrapping 32-bit 80 MHz counter can unwrap alone).
 */
static void generate_line(uint8_t line, int64_t start_ns, uint32_t unit_ns, int long_gaps)
{
    const int64_t unit = unit_ns;
    const int64_t timeout = (int64_t)TS_MARK_TIMEOUT_UNITS * unit;
    int64_t t = start_ns;
    int mark = 1; /* marks of a stage cycle RX_START..TX_END (not required by the decoder) */
    int no_gap = 0; /* the previous pulse lost its falling edge and must be followed at once */
    for (int i = 0; i < PULSES_PER_LINE; i++) {
        if (!no_gap) {
            t += rng_range(unit / 2, 40 * unit); /* idle gap before the pulse */
            if (long_gaps && rng_range(0, 199) == 0) {
                t += rng_range(1, 100) * 1000000000LL;
            }
        }
        no_gap = 0;
        const int kind = (int)rng_range(0, 99);
        int64_t w = 0;
        if (kind < 80) {
            /* Valid mark with jitter. */
            w = mark * unit + rng_range(-unit * 30 / 100, unit * 30 / 100);
            expected_t *x = &train.expected[train.n_expected++];
            x->line = line;
            x->mark = (uint8_t)mark;
            x->t_ns = t;
            train.per_kind[line][mark - 1]++;
            mark = mark == TS_MARK_MAX ? TS_MARK_MIN : mark + 1;
        } else if (kind < 86) {
            /* Spike up to 0.64 unit. */
            w = rng_range(1, unit * 64 / 100);
            train.glitches[line]++;
        } else if (kind < 92) {
            /* Between two codes: 36..64 % of a unit past a whole multiple 1..5. */
            w = rng_range(1, 5) * unit + rng_range(unit * 36 / 100, unit * 64 / 100);
            train.glitches[line]++;
        } else if (kind < 96) {
            /* Too wide but falling before the timeout: out of range, a glitch. */
            w = rng_range(6 * unit + unit * 36 / 100, timeout - unit);
            train.glitches[line]++;
        } else if (kind < 98) {
            /* Lost falling edge, the line's next edge comes after the timeout. */
            add_edge(line, t, 1);
            train.timeouts[line]++;
            t += timeout + rng_range(1, 20 * unit);
            continue;
        } else {
            /* Lost falling edge, the next rising edge comes within the timeout: a glitch
             * (the line's last pulse has no next edge: the final poll times it out). */
            add_edge(line, t, 1);
            if (i == PULSES_PER_LINE - 1) {
                train.timeouts[line]++;
            } else {
                train.glitches[line]++;
            }
            t += rng_range(unit, timeout - unit);
            no_gap = 1;
            continue;
        }
        add_edge(line, t, 1);
        add_edge(line, t + w, 0);
        t += w;
    }
}

/* Order all lines' edges by time, ties by line (one line never has two edges at once). */
static int edge_cmp(const void *a, const void *b)
{
    const edge_t *ea = a, *eb = b;
    if (ea->t_ns != eb->t_ns) {
        return ea->t_ns < eb->t_ns ? -1 : 1;
    }
    return (int)ea->line - (int)eb->line;
}

static int expected_cmp(const void *a, const void *b)
{
    const expected_t *ea = a, *eb = b;
    if (ea->t_ns != eb->t_ns) {
        return ea->t_ns < eb->t_ns ? -1 : 1;
    }
    return (int)ea->line - (int)eb->line;
}

static void build_train(uint64_t seed, int long_gaps)
{
    memset(&train, 0, sizeof(train));
    rng_seed(seed);
    for (uint8_t line = 0; line < LINES; line++) {
        generate_line(line, rng_range(0, 1000000), UNIT_NS, long_gaps);
    }
    qsort(train.edges, train.n_edges, sizeof(edge_t), edge_cmp);
    qsort(train.expected, train.n_expected, sizeof(expected_t), expected_cmp);
}

typedef struct {
    expected_t got[MAX_EXPECTED];
    size_t n;
} received_t;

static received_t received;

static void check_against_expectation(ts_mark_decoder_t dec[LINES])
{
    qsort(received.got, received.n, sizeof(expected_t), expected_cmp);
    TS_CHECK_EQ_INT(received.n, train.n_expected);
    size_t n = received.n < train.n_expected ? received.n : train.n_expected;
    size_t mismatches = 0;
    for (size_t i = 0; i < n; i++) {
        const expected_t *g = &received.got[i], *x = &train.expected[i];
        if (g->line != x->line || g->mark != x->mark || g->t_ns != x->t_ns) {
            mismatches++;
        }
    }
    TS_CHECK_EQ_INT(mismatches, 0);
    for (int line = 0; line < LINES; line++) {
        const ts_mark_line_stats_t *st = ts_mark_decoder_stats(&dec[line]);
        TS_CHECK_EQ_INT(st->glitches, train.glitches[line]);
        TS_CHECK_EQ_INT(st->timeouts, train.timeouts[line]);
        uint32_t total = 0;
        for (int k = 0; k < TS_MARK_KINDS; k++) {
            TS_CHECK_EQ_INT(st->per_kind[k], train.per_kind[line][k]);
            total += st->per_kind[k];
        }
        TS_CHECK_EQ_INT(st->marks, total);
    }
}

static void test_random_trains_ns(void)
{
    static ts_mark_decoder_t dec[LINES];
    for (uint64_t seed = 1; seed <= 5; seed++) {
        build_train(seed * 7919, 0);
        for (int line = 0; line < LINES; line++) {
            TS_REQUIRE(ts_mark_decoder_init(&dec[line], UNIT_NS) == TS_OK);
        }
        received.n = 0;
        for (size_t i = 0; i < train.n_edges; i++) {
            const edge_t *e = &train.edges[i];
            ts_mark_event_t ev;
            if (ts_mark_decoder_edge(&dec[e->line], e->t_ns, e->level, &ev)) {
                expected_t *g = &received.got[received.n++];
                g->line = e->line;
                g->mark = (uint8_t)ev.mark;
                g->t_ns = ev.t_ns;
            }
            /* Poll every line now and then, as the scribe task does when its queue is idle. */
            if (i % 64 == 0) {
                for (int line = 0; line < LINES; line++) {
                    ts_mark_decoder_poll(&dec[line], e->t_ns);
                }
            }
        }
        int64_t end = train.edges[train.n_edges - 1].t_ns + ts_mark_timeout_ns(UNIT_NS) + 1;
        for (int line = 0; line < LINES; line++) {
            ts_mark_decoder_poll(&dec[line], end);
        }
        check_against_expectation(dec);
    }
}

/* The same trains through the capture path: true times -> 80 MHz ticks -> low 32 bits plus a
 * coarse microsecond reference read 1..60 µs late (ISR latency) -> ts_tick_extend -> ns ->
 * decoder. The counter starts 3 s before it wraps and the trains, with silences of up to
 * 100 s, wrap it many times. Decoded times must equal the rising edges quantised to a tick. */
static void test_random_trains_through_capture_counter(void)
{
    static ts_mark_decoder_t dec[LINES];
    ts_tick_ext_t ext;
    for (uint64_t seed = 11; seed <= 13; seed++) {
        build_train(seed, 1);
        for (int line = 0; line < LINES; line++) {
            TS_REQUIRE(ts_mark_decoder_init(&dec[line], UNIT_NS) == TS_OK);
        }
        ts_tick_ext_init(&ext);
        const int64_t tick0 = WRAP_TICKS - 3LL * CAP_HZ; /* counter value at t = 0 */
        received.n = 0;
        size_t wrong_ticks = 0;
        for (size_t i = 0; i < train.n_edges; i++) {
            const edge_t *e = &train.edges[i];
            const int64_t true_ticks = ts_ns_to_ticks(e->t_ns, CAP_HZ);
            const uint32_t cap = (uint32_t)((uint64_t)(tick0 + true_ticks) & 0xFFFFFFFFu);
            const int64_t isr_us = e->t_ns / 1000 + rng_range(1, 60);
            const int64_t ref = tick0 + ts_ns_to_ticks(isr_us * 1000, CAP_HZ);
            const int64_t ticks = ts_tick_extend(&ext, cap, ref, 1) - tick0;
            if (ticks != true_ticks) {
                wrong_ticks++;
            }
            ts_mark_event_t ev;
            if (ts_mark_decoder_edge(&dec[e->line], ts_ticks_to_ns(ticks, CAP_HZ), e->level,
                                     &ev)) {
                expected_t *g = &received.got[received.n++];
                g->line = e->line;
                g->mark = (uint8_t)ev.mark;
                g->t_ns = ev.t_ns;
            }
        }
        TS_CHECK_EQ_INT(wrong_ticks, 0);
        const int64_t last = train.edges[train.n_edges - 1].t_ns;
        TS_CHECK(last > 5 * ts_ticks_to_ns(WRAP_TICKS, CAP_HZ)); /* wrapped many times */
        int64_t end = last + ts_mark_timeout_ns(UNIT_NS) + 1;
        for (int line = 0; line < LINES; line++) {
            ts_mark_decoder_poll(&dec[line], end);
        }
        for (size_t i = 0; i < train.n_expected; i++) {
            train.expected[i].t_ns = ts_ticks_to_ns(ts_ns_to_ticks(train.expected[i].t_ns,
                                                                   CAP_HZ), CAP_HZ);
        }
        check_against_expectation(dec);
    }
}

static void test_tick_extension(void)
{
    ts_tick_ext_t x;
    ts_tick_ext_init(&x);
    /* Without a reference: the first value as is, then nearest to the previous one. */
    TS_CHECK_EQ_INT(ts_tick_extend(&x, 0xFFFFFF00u, 0, 0), 0xFFFFFF00LL);
    TS_CHECK_EQ_INT(ts_tick_extend(&x, 0x00000010u, 0, 0), WRAP_TICKS + 0x10);
    TS_CHECK_EQ_INT(ts_tick_extend(&x, 0xFFFFFFF0u, 0, 0), WRAP_TICKS - 0x10); /* reordered */
    TS_CHECK_EQ_INT(ts_tick_extend(&x, 0x7FFFFF00u, 0, 0), WRAP_TICKS + 0x7FFFFF00LL);
    /* A gap of 40 s at 80 MHz (3.2e9 ticks > 2^31) cannot be unwrapped without a reference... */
    const int64_t base = 5 * WRAP_TICKS + 1234;
    const int64_t later = base + 40LL * CAP_HZ;
    ts_tick_ext_init(&x);
    TS_CHECK_EQ_INT(ts_tick_extend(&x, (uint32_t)(base & 0xFFFFFFFF), base, 1), base);
    TS_CHECK(ts_tick_extend(&x, (uint32_t)(later & 0xFFFFFFFF), 0, 0) != later);
    /* ...and is exact with a reference off by up to +-2^31 - 1 ticks. */
    TS_CHECK_EQ_INT(ts_tick_extend(&x, (uint32_t)(later & 0xFFFFFFFF), later + 2147483647LL, 1),
                    later);
    TS_CHECK_EQ_INT(ts_tick_extend(&x, (uint32_t)(later & 0xFFFFFFFF), later - 2147483647LL, 1),
                    later);
    TS_CHECK_EQ_INT(ts_tick_extend(&x, (uint32_t)(later & 0xFFFFFFFF), later + 80000, 1), later);
    /* A capture just before a reference of zero gives a small negative count. */
    TS_CHECK_EQ_INT(ts_tick_extend(&x, 0xFFFFFFFFu, 0, 1), -1);
}

static void test_tick_conversions(void)
{
    TS_CHECK_EQ_INT(ts_ticks_to_ns(CAP_HZ, CAP_HZ), 1000000000LL);
    TS_CHECK_EQ_INT(ts_ticks_to_ns(1, CAP_HZ), 12);   /* 12.5 ns rounded down */
    TS_CHECK_EQ_INT(ts_ticks_to_ns(2, CAP_HZ), 25);
    TS_CHECK_EQ_INT(ts_ticks_to_ns(-1, CAP_HZ), -13);
    TS_CHECK_EQ_INT(ts_ticks_to_ns(WRAP_TICKS, CAP_HZ), 53687091200LL); /* the 53.7 s wrap */
    TS_CHECK_EQ_INT(ts_ticks_to_ns(123, 1000000), 123000);            /* 1 MHz (µs) clock */
    TS_CHECK_EQ_INT(ts_ticks_to_ns(5, 0), 0);
    TS_CHECK_EQ_INT(ts_ns_to_ticks(1000000000LL, CAP_HZ), CAP_HZ);
    TS_CHECK_EQ_INT(ts_ns_to_ticks(25, CAP_HZ), 2);
    TS_CHECK_EQ_INT(ts_ns_to_ticks(-1, CAP_HZ), -1);
    /* Large values do not overflow: 30 days at 80 MHz. */
    const int64_t month_ns = 30LL * 24 * 3600 * 1000000000LL;
    TS_CHECK_EQ_INT(ts_ticks_to_ns(ts_ns_to_ticks(month_ns, CAP_HZ), CAP_HZ), month_ns);
}

int main(void)
{
    TS_RUN(test_pulse_widths_and_names);
    TS_RUN(test_width_classification);
    TS_RUN(test_decoder_single_pulses);
    TS_RUN(test_decoder_timeouts);
    TS_RUN(test_random_trains_ns);
    TS_RUN(test_random_trains_through_capture_counter);
    TS_RUN(test_tick_extension);
    TS_RUN(test_tick_conversions);
    return TS_RESULT();
}
