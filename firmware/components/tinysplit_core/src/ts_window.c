/*
 * Adaptive in-flight window (AIMD with a delay guard); the Python twin is
 * tinysplit.links.adaptive.AdaptiveWindow and both must stay bit-identical: unsigned integer
 * arithmetic only, no floating point.
 */
#include <stdint.h>
#include <string.h>

#include "ts_arq.h"
#include "ts_frame.h"
#include "ts_window.h"

#define FRAC_BITS 4     /* per-frame times in µs << 4 */
#define GAIN_SHIFT 3    /* smoothing gain 1/8 */
#define FORGET_SHIFT 5  /* `best` forgets 1/32 of the gap per ACK */
#define SLOW_NUM 5u     /* growth holds while smooth * 4 <= best * 5 (25 % slower at most) */
#define SLOW_DEN 4u

static uint16_t min16(uint32_t a, uint32_t b)
{
    return (uint16_t)(a < b ? a : b);
}

int ts_window_init(ts_window_t *w, uint16_t initial, uint16_t min_window, uint16_t max_window)
{
    if (w == NULL || min_window < 1 || min_window > initial || initial > max_window ||
        max_window > TS_MAX_WINDOW) {
        return TS_ERR_ARG;
    }
    memset(w, 0, sizeof *w);
    w->window = initial;
    w->min_window = min_window;
    w->max_window = max_window;
    w->ssthresh = max_window;
    return TS_OK;
}

uint16_t ts_window_min_for_cadence(uint16_t ack_every)
{
    if (ack_every < 1) {
        return 1;
    }
    return min16(ack_every / 2u + 1u, ack_every);
}

void ts_window_on_ack(ts_window_t *w, uint32_t acked_frames, uint32_t interval_us)
{
    if (w == NULL || acked_frames == 0) {
        return;
    }
    w->acks++;
    uint64_t sample = ((uint64_t)interval_us << FRAC_BITS) / acked_frames;
    if (w->smooth == 0) {
        w->smooth = sample;
    } else {
        w->smooth = (w->smooth * ((1u << GAIN_SHIFT) - 1u) + sample) >> GAIN_SHIFT;
    }
    if (w->best == 0 || w->smooth < w->best) {
        w->best = w->smooth;
    } else {
        w->best += (w->smooth - w->best) >> FORGET_SHIFT;
    }
    w->recover = w->recover > acked_frames ? w->recover - acked_frames : 0;
    if (w->smooth * SLOW_DEN > w->best * SLOW_NUM) {
        return; /* each frame takes longer to deliver: more in flight would only queue */
    }
    if (w->window < w->ssthresh) {
        uint32_t grown = (uint32_t)w->window + acked_frames;
        w->window = min16(min16(grown, w->ssthresh), w->max_window);
        return;
    }
    w->credit += acked_frames;
    if (w->credit >= w->window) {
        w->credit -= w->window;
        w->window = min16((uint32_t)w->window + 1u, w->max_window);
    }
}

void ts_window_on_loss(ts_window_t *w)
{
    if (w == NULL) {
        return;
    }
    w->losses++;
    if (w->recover > 0) {
        return; /* the same burst: one decrease per window */
    }
    uint16_t half = (uint16_t)(w->window / 2u);
    w->ssthresh = half > w->min_window ? half : w->min_window;
    w->window = w->ssthresh;
    w->credit = 0;
    w->recover = w->window;
}

void ts_window_on_timeout(ts_window_t *w)
{
    if (w == NULL) {
        return;
    }
    w->timeouts++;
    uint16_t half = (uint16_t)(w->window / 2u);
    w->ssthresh = half > w->min_window ? half : w->min_window;
    w->window = w->min_window;
    w->credit = 0;
    w->recover = 0;
    w->smooth = 0;
    w->best = 0;
}

uint16_t ts_window_current(const ts_window_t *w)
{
    return w == NULL ? 1u : w->window;
}
