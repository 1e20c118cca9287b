/*
 * Adaptive in-flight window of one reliable link (portable, no ESP-IDF, no allocation): AIMD on
 * acknowledgment timing and losses, identical to the simulator's tinysplit.links.adaptive
 * (integer arithmetic only; tests/firmware/test_window_diff.py runs both on the same events).
 *
 * The receiver keeps answering every `window` DATA frames (ts_arq_config_t.window, its ACK
 * cadence); the controller sets how many chunks the sender keeps unacknowledged:
 * min(2 * ts_window_current(), TS_ARQ_MAX_OUTSTANDING). Semantics: docs/protocol.md
 * ("Adaptive window").
 */
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Controller state; fields are private (read them through the functions). */
typedef struct {
    uint16_t window;   /* current window, frames */
    uint16_t min_window;
    uint16_t max_window;
    uint16_t ssthresh; /* slow start below this window */
    uint32_t credit;   /* frames acknowledged towards the next +1 */
    uint32_t recover;  /* frames to acknowledge before another loss may shrink the window */
    uint64_t smooth;   /* smoothed per-frame ACK time, µs << 4 (0: no sample yet) */
    uint64_t best;     /* slowly forgetting minimum of `smooth` (0: none) */
    uint32_t acks;     /* events seen (statistics) */
    uint32_t losses;
    uint32_t timeouts;
} ts_window_t;

/**
 * Start at `initial` frames, slow start up to `max_window`. TS_ERR_ARG unless
 * 1 <= min_window <= initial <= max_window <= TS_MAX_WINDOW.
 */
int ts_window_init(ts_window_t *w, uint16_t initial, uint16_t min_window, uint16_t max_window);

/** Smallest window for a receiver answering every `ack_every` frames (1..16): one frame more
 *  than an ACK needs is always allowed out, so the ACK comes without waiting for a timeout.
 *  The caller checks the range (the Python twin raises); here 0 gives 1. */
uint16_t ts_window_min_for_cadence(uint16_t ack_every);

/** An ACK acknowledged `acked_frames` new chunks `interval_us` µs after the previous progress
 *  (the previous such ACK, or the first frame sent when nothing was outstanding). */
void ts_window_on_ack(ts_window_t *w, uint32_t acked_frames, uint32_t interval_us);

/** Selective repeat found a lost chunk: halve the window, at most once per window of ACKs. */
void ts_window_on_loss(ts_window_t *w);

/** No progress for the acknowledgment timeout: back to the smallest window. */
void ts_window_on_timeout(ts_window_t *w);

/** Current window, frames (min_window..max_window). */
uint16_t ts_window_current(const ts_window_t *w);

#ifdef __cplusplus
}
#endif
