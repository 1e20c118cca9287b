/*
 * Scribe marks on a GPIO line (portable, no ESP-IDF, no allocation).
 *
 * Encoding (pipeline boards): a mark is one active-high pulse on the board's scribe line, idle
 * low, `mark * unit_us` wide (ts_mark_pulse_us). The rising edge is the event's timestamp; the
 * width only names the event, so width errors never shift a timestamp.
 *
 *     mark          code  width (units)      mark          code  width (units)
 *     rx_start       1    1                  infer_end      4    4
 *     rx_end         2    2                  tx_start       5    5
 *     infer_start    3    3                  tx_end         6    6
 *
 * Decoding (scribe board): one ts_mark_decoder_t per line is fed the line's edges (time in ns,
 * level) and emits (mark, rising-edge time) when the falling edge arrives. A width is rounded to
 * the nearest whole number of units; widths more than TS_MARK_TOLERANCE_PCT of a unit away from
 * it, or outside 1..6 units, are counted as glitches and emit nothing. A line that stays high
 * for more than TS_MARK_TIMEOUT_UNITS units is a timeout (missing falling edge): twice the
 * longest pulse, so a pulse a little too wide still counts as a glitch, not a timeout.
 *
 * Capture counters: the MCPWM capture value of the ESP32-S3 is 32 bits at 80 MHz and wraps every
 * 2^32 / 80 MHz = 53.7 s. ts_tick_extend() turns it into a 64-bit tick count using a coarse
 * 64-bit reference for the same instant (the esp_timer microsecond clock, read in the capture
 * ISR): the result is the value congruent to the capture modulo 2^32 that is nearest to the
 * reference, exact as long as the reference is within 2^31 ticks (26.8 s at 80 MHz) of the
 * truth. Without a reference it unwraps against the previous value (edges < 26.8 s apart).
 */
#pragma once

#include <stdint.h>

#include "ts_stage.h" /* ts_mark_t */

#ifdef __cplusplus
extern "C" {
#endif

#define TS_MARK_MIN 1              /* TS_MARK_RX_START */
#define TS_MARK_MAX 6              /* TS_MARK_TX_END */
#define TS_MARK_KINDS 6
#define TS_MARK_TOLERANCE_PCT 35   /* accepted width error, percent of one unit */
#define TS_MARK_UNIT_US_DEFAULT 10 /* pulse unit both sides agree on unless configured */
#define TS_MARK_UNIT_US_MIN 1
#define TS_MARK_UNIT_US_MAX 10000
#define TS_MARK_TIMEOUT_UNITS (2 * TS_MARK_MAX)

/** Pulse width in microseconds for `mark` (mark * unit_us); 0 if `mark` is not 1..6. */
uint32_t ts_mark_pulse_us(ts_mark_t mark, uint32_t unit_us);

/** Lower-case name used on the console ("rx_start" ... "tx_end"); "?" for an invalid mark. */
const char *ts_mark_name(ts_mark_t mark);

/** The mark a pulse of `width_ns` encodes with a unit of `unit_ns`, or 0 (a glitch) if the width
 *  is more than TS_MARK_TOLERANCE_PCT of a unit from a whole multiple or outside 1..6 units. */
int ts_mark_from_width(int64_t width_ns, uint32_t unit_ns);

/** High time after which a pulse has timed out (TS_MARK_TIMEOUT_UNITS units), in ns. */
int64_t ts_mark_timeout_ns(uint32_t unit_ns);

/** Counters of one line since ts_mark_decoder_init / ts_mark_decoder_reset. */
typedef struct {
    uint32_t marks;                   /* valid pulses decoded */
    uint32_t per_kind[TS_MARK_KINDS]; /* per_kind[m - 1]: pulses of mark m */
    uint32_t glitches;                /* rejected widths and edges out of order */
    uint32_t timeouts;                /* pulses whose falling edge never came in time */
} ts_mark_line_stats_t;

/** The pulse decoder of one line; allocate statically, fields are private. */
typedef struct {
    uint32_t unit_ns;
    int64_t timeout_ns;
    int64_t rise_ns;   /* rising edge of the pulse in progress */
    int64_t last_ns;   /* latest edge, to reject time going backwards */
    uint8_t state;     /* idle, high, stuck (timed out, waiting for the line to drop) */
    uint8_t has_edge;
    ts_mark_line_stats_t stats;
} ts_mark_decoder_t;

/** A decoded mark: `t_ns` is its rising edge. */
typedef struct {
    ts_mark_t mark;
    int64_t t_ns;
    int64_t width_ns;
} ts_mark_event_t;

/** Initialise for a pulse unit of `unit_ns` (> 0). Returns TS_OK or TS_ERR_ARG. */
int ts_mark_decoder_init(ts_mark_decoder_t *d, uint32_t unit_ns);

/** Forget the pulse in progress and zero the counters (a new time base starts). */
void ts_mark_decoder_reset(ts_mark_decoder_t *d);

/**
 * Feed one edge: `level` 1 = rising, 0 = falling, at `t_ns` (non-decreasing per line).
 * Returns 1 and fills `*out` when a falling edge completes a valid pulse, else 0. Anomalies are
 * counted: a falling edge without a rising one, two rising edges (the first pulse lost its
 * falling edge: a timeout if it had been high too long, else a glitch), time going backwards.
 */
int ts_mark_decoder_edge(ts_mark_decoder_t *d, int64_t t_ns, int level, ts_mark_event_t *out);

/**
 * Note that no edge arrived up to `now_ns`: a pulse high for longer than ts_mark_timeout_ns is
 * counted as a timeout now rather than at the next edge. Pass a `now_ns` that no edge still in
 * flight can precede (the caller subtracts its queue latency). Returns 1 if a timeout was counted.
 */
int ts_mark_decoder_poll(ts_mark_decoder_t *d, int64_t now_ns);

const ts_mark_line_stats_t *ts_mark_decoder_stats(const ts_mark_decoder_t *d);

/** Extends a wrapping 32-bit tick counter to 64 bits. */
typedef struct {
    int64_t last;     /* latest extended value */
    uint8_t has_last;
} ts_tick_ext_t;

void ts_tick_ext_init(ts_tick_ext_t *x);

/**
 * The 64-bit tick count whose low 32 bits are `ticks32` and which is nearest to `ref_ticks`
 * (exact while |truth - ref_ticks| < 2^31). Pass `has_ref` 0 to use the previous result as the
 * reference (the first value without a reference is taken as is). Results may be negative when
 * the reference is near zero and the capture precedes it.
 */
int64_t ts_tick_extend(ts_tick_ext_t *x, uint32_t ticks32, int64_t ref_ticks, int has_ref);

/** `ticks` of a `tick_hz` clock in ns, rounded down (exact for 64-bit ticks, tick_hz > 0). */
int64_t ts_ticks_to_ns(int64_t ticks, uint32_t tick_hz);

/** `ns` in ticks of a `tick_hz` clock, rounded down (reference values for ts_tick_extend). */
int64_t ts_ns_to_ticks(int64_t ns, uint32_t tick_hz);

#ifdef __cplusplus
}
#endif
