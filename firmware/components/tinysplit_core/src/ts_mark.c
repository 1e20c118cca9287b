/*
 * Scribe mark pulses: encoding for the pipeline boards, decoding for the scribe (ts_mark.h).
 */
#include "ts_mark.h"

#include <stddef.h>

#include "ts_frame.h" /* TS_OK, TS_ERR_ARG */

enum {
    DECODER_IDLE = 0,
    DECODER_HIGH = 1,  /* rising edge seen, waiting for the falling one */
    DECODER_STUCK = 2, /* timed out: the late falling edge is swallowed, not counted again */
};

#define NS_PER_S 1000000000LL
#define TWO_POW_32 4294967296LL

static const char *const MARK_NAMES[TS_MARK_KINDS] = {
    "rx_start", "rx_end", "infer_start", "infer_end", "tx_start", "tx_end",
};

uint32_t ts_mark_pulse_us(ts_mark_t mark, uint32_t unit_us)
{
    int m = (int)mark;
    if (m < TS_MARK_MIN || m > TS_MARK_MAX) {
        return 0;
    }
    return (uint32_t)m * unit_us;
}

const char *ts_mark_name(ts_mark_t mark)
{
    int m = (int)mark;
    if (m < TS_MARK_MIN || m > TS_MARK_MAX) {
        return "?";
    }
    return MARK_NAMES[m - 1];
}

int ts_mark_from_width(int64_t width_ns, uint32_t unit_ns)
{
    if (unit_ns == 0 || width_ns <= 0) {
        return 0;
    }
    const int64_t unit = (int64_t)unit_ns;
    /* Nearest multiple; with a tolerance below half a unit the choice is never ambiguous. */
    const int64_t m = (width_ns + unit / 2) / unit;
    if (m < TS_MARK_MIN || m > TS_MARK_MAX) {
        return 0;
    }
    int64_t err = width_ns - m * unit;
    if (err < 0) {
        err = -err;
    }
    if (err * 100 > unit * TS_MARK_TOLERANCE_PCT) {
        return 0;
    }
    return (int)m;
}

int64_t ts_mark_timeout_ns(uint32_t unit_ns)
{
    return (int64_t)unit_ns * TS_MARK_TIMEOUT_UNITS;
}

int ts_mark_decoder_init(ts_mark_decoder_t *d, uint32_t unit_ns)
{
    if (d == NULL || unit_ns == 0) {
        return TS_ERR_ARG;
    }
    d->unit_ns = unit_ns;
    d->timeout_ns = ts_mark_timeout_ns(unit_ns);
    ts_mark_decoder_reset(d);
    return TS_OK;
}

void ts_mark_decoder_reset(ts_mark_decoder_t *d)
{
    d->rise_ns = 0;
    d->last_ns = 0;
    d->state = DECODER_IDLE;
    d->has_edge = 0;
    d->stats = (ts_mark_line_stats_t){0};
}

int ts_mark_decoder_edge(ts_mark_decoder_t *d, int64_t t_ns, int level, ts_mark_event_t *out)
{
    if (d->has_edge && t_ns < d->last_ns) {
        /* Only a capture or queueing fault can do this; the edge cannot be placed. */
        d->stats.glitches++;
        return 0;
    }
    d->has_edge = 1;
    d->last_ns = t_ns;

    if (level) {
        if (d->state == DECODER_HIGH) {
            /* The previous pulse never saw its falling edge. */
            if (t_ns - d->rise_ns > d->timeout_ns) {
                d->stats.timeouts++;
            } else {
                d->stats.glitches++;
            }
        }
        d->state = DECODER_HIGH;
        d->rise_ns = t_ns;
        return 0;
    }

    if (d->state == DECODER_STUCK) {
        d->state = DECODER_IDLE;
        return 0;
    }
    if (d->state != DECODER_HIGH) {
        d->stats.glitches++; /* falling edge without a rising one */
        return 0;
    }
    d->state = DECODER_IDLE;
    const int64_t width = t_ns - d->rise_ns;
    if (width > d->timeout_ns) {
        d->stats.timeouts++;
        return 0;
    }
    const int m = ts_mark_from_width(width, d->unit_ns);
    if (m == 0) {
        d->stats.glitches++;
        return 0;
    }
    d->stats.marks++;
    d->stats.per_kind[m - 1]++;
    if (out != NULL) {
        out->mark = (ts_mark_t)m;
        out->t_ns = d->rise_ns;
        out->width_ns = width;
    }
    return 1;
}

int ts_mark_decoder_poll(ts_mark_decoder_t *d, int64_t now_ns)
{
    if (d->state == DECODER_HIGH && now_ns - d->rise_ns > d->timeout_ns) {
        d->stats.timeouts++;
        d->state = DECODER_STUCK;
        return 1;
    }
    return 0;
}

const ts_mark_line_stats_t *ts_mark_decoder_stats(const ts_mark_decoder_t *d)
{
    return &d->stats;
}

void ts_tick_ext_init(ts_tick_ext_t *x)
{
    x->last = 0;
    x->has_last = 0;
}

int64_t ts_tick_extend(ts_tick_ext_t *x, uint32_t ticks32, int64_t ref_ticks, int has_ref)
{
    int64_t ref;
    if (has_ref) {
        ref = ref_ticks;
    } else if (x->has_last) {
        ref = x->last;
    } else {
        x->last = (int64_t)ticks32;
        x->has_last = 1;
        return x->last;
    }
    /* Forward distance from the reference's low 32 bits, folded to [-2^31, 2^31). */
    const uint32_t d = ticks32 - (uint32_t)ref;
    int64_t v = ref + (int64_t)d;
    if (d >= 0x80000000u) {
        v -= TWO_POW_32;
    }
    x->last = v;
    x->has_last = 1;
    return v;
}

/* Floor division and modulo for a positive divisor. */
static void floor_divmod(int64_t a, int64_t b, int64_t *q, int64_t *r)
{
    *q = a / b;
    *r = a % b;
    if (*r < 0) {
        *q -= 1;
        *r += b;
    }
}

int64_t ts_ticks_to_ns(int64_t ticks, uint32_t tick_hz)
{
    if (tick_hz == 0) {
        return 0;
    }
    int64_t q, r;
    floor_divmod(ticks, (int64_t)tick_hz, &q, &r);
    /* r < 2^32, so r * 1e9 < 4.3e18 fits in int64. */
    return q * NS_PER_S + (r * NS_PER_S) / (int64_t)tick_hz;
}

int64_t ts_ns_to_ticks(int64_t ns, uint32_t tick_hz)
{
    int64_t q, r;
    floor_divmod(ns, NS_PER_S, &q, &r);
    return q * (int64_t)tick_hz + (r * (int64_t)tick_hz) / NS_PER_S;
}
