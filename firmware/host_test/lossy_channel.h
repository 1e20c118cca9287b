/*
 * A deterministic lossy, duplicating, reordering, corrupting channel on a virtual clock, for the
 * ARQ and stage tests (header-only: static inline functions, included by test_*.c).
 *
 * Each direction of a link is an lc_channel_t with its own seeded PRNG. A frame handed to it at
 * `now` leaves when the channel is free (frame_us per frame: the link's rate), then is lost with
 * probability `loss`, duplicated with `dup`, and each copy arrives latency_us + U(0, jitter_us)
 * later (a jitter wider than frame_us reorders frames) with 1..3 bits flipped with probability
 * `corrupt` (always caught by the CRC-16 of a reliable frame: its Hamming distance is 4 up to
 * 4095 B). Frames wait in one lc_net_t, a heap ordered by (arrival time, send order).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ts_frame.h"

/* --- PRNG: splitmix64 (tiny, seedable, good enough for test draws) --------------------- */

typedef struct {
    uint64_t s;
} lc_rng_t;

static inline uint64_t lc_rng_next(lc_rng_t *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/** Uniform in [0, 1). */
static inline double lc_rng_unit(lc_rng_t *r)
{
    return (double)(lc_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/** Uniform in [0, n) (n > 0). */
static inline uint64_t lc_rng_below(lc_rng_t *r, uint64_t n)
{
    return lc_rng_next(r) % n;
}

/* --- channel ----------------------------------------------------------------------------- */

typedef struct {
    double loss;        /* per frame */
    double dup;         /* per frame: a second copy */
    double corrupt;     /* per copy: 1..3 bits flipped */
    int64_t latency_us; /* fixed delay */
    int64_t jitter_us;  /* extra uniform delay 0..jitter_us */
    int64_t frame_us;   /* time a frame occupies the channel */
} lc_params_t;

typedef struct {
    lc_params_t p;
    lc_rng_t rng;
    int64_t free_at;  /* the channel is busy until then */
    uint32_t sent;    /* frames handed to the channel */
    uint32_t lost;
    uint32_t duplicated;
    uint32_t corrupted;
    uint8_t dead;     /* drops everything (a dead link) */
} lc_channel_t;

static inline void lc_channel_init(lc_channel_t *ch, const lc_params_t *p, uint64_t seed)
{
    memset(ch, 0, sizeof *ch);
    ch->p = *p;
    ch->rng.s = seed;
}

/* --- the frames in flight ---------------------------------------------------------------- */

#define LC_SLOTS 1024

typedef struct {
    int64_t at;     /* arrival time */
    uint64_t seq;   /* send order: ties keep it */
    int dst;        /* endpoint id chosen by the test */
    int link;       /* link the endpoint receives it on */
    uint16_t len;
    uint8_t data[TS_MAX_FRAME_BYTES];
} lc_frame_t;

typedef struct {
    lc_frame_t slot[LC_SLOTS];
    int free_list[LC_SLOTS];
    int free_n;
    int heap[LC_SLOTS];
    int heap_n;
    uint64_t seq;
    uint32_t overflow; /* frames dropped because every slot was in use (a test bug) */
} lc_net_t;

static inline void lc_net_init(lc_net_t *net)
{
    net->free_n = LC_SLOTS;
    for (int i = 0; i < LC_SLOTS; i++) {
        net->free_list[i] = LC_SLOTS - 1 - i;
    }
    net->heap_n = 0;
    net->seq = 0;
    net->overflow = 0;
}

static inline int lc_before(const lc_net_t *net, int a, int b)
{
    const lc_frame_t *x = &net->slot[a];
    const lc_frame_t *y = &net->slot[b];
    return x->at < y->at || (x->at == y->at && x->seq < y->seq);
}

static inline void lc_push(lc_net_t *net, int id)
{
    int i = net->heap_n++;
    net->heap[i] = id;
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (!lc_before(net, net->heap[i], net->heap[parent])) {
            break;
        }
        int tmp = net->heap[i];
        net->heap[i] = net->heap[parent];
        net->heap[parent] = tmp;
        i = parent;
    }
}

static inline int lc_pop_id(lc_net_t *net)
{
    int top = net->heap[0];
    net->heap[0] = net->heap[--net->heap_n];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1;
        int r = l + 1;
        int m = i;
        if (l < net->heap_n && lc_before(net, net->heap[l], net->heap[m])) {
            m = l;
        }
        if (r < net->heap_n && lc_before(net, net->heap[r], net->heap[m])) {
            m = r;
        }
        if (m == i) {
            break;
        }
        int tmp = net->heap[i];
        net->heap[i] = net->heap[m];
        net->heap[m] = tmp;
        i = m;
    }
    return top;
}

/** Arrival time of the next frame (INT64_MAX: none in flight). */
static inline int64_t lc_next_time(const lc_net_t *net)
{
    return net->heap_n > 0 ? net->slot[net->heap[0]].at : INT64_MAX;
}

/** Take the next frame into `out` (call when lc_next_time <= now). */
static inline void lc_pop(lc_net_t *net, lc_frame_t *out)
{
    int id = lc_pop_id(net);
    *out = net->slot[id];
    net->free_list[net->free_n++] = id;
}

/** Send one frame over `ch` at `now` towards endpoint `dst`, received on `link`. */
static inline void lc_send(lc_net_t *net, lc_channel_t *ch, int64_t now, int dst, int link,
                           const uint8_t *frame, size_t len)
{
    ch->sent++;
    int64_t depart = now > ch->free_at ? now : ch->free_at;
    ch->free_at = depart + ch->p.frame_us;
    /* Draw everything for every frame so one decision never shifts the others' draws. */
    double u_loss = lc_rng_unit(&ch->rng);
    double u_dup = lc_rng_unit(&ch->rng);
    int copies = u_dup < ch->p.dup ? 2 : 1;
    if (copies == 2) {
        ch->duplicated++;
    }
    for (int c = 0; c < copies; c++) {
        int64_t jitter = ch->p.jitter_us > 0
                             ? (int64_t)lc_rng_below(&ch->rng, (uint64_t)ch->p.jitter_us + 1u)
                             : 0;
        double u_corrupt = lc_rng_unit(&ch->rng);
        uint64_t flips = lc_rng_next(&ch->rng);
        if (ch->dead || (c == 0 && u_loss < ch->p.loss)) {
            ch->lost++;
            continue;
        }
        if (net->free_n == 0) {
            net->overflow++;
            continue;
        }
        int id = net->free_list[--net->free_n];
        lc_frame_t *f = &net->slot[id];
        f->at = depart + ch->p.latency_us + jitter;
        f->seq = net->seq++;
        f->dst = dst;
        f->link = link;
        f->len = (uint16_t)len;
        memcpy(f->data, frame, len);
        if (u_corrupt < ch->p.corrupt && len > 0) {
            ch->corrupted++;
            int bits = 1 + (int)(flips % 3u);
            for (int b = 0; b < bits; b++) {
                flips = flips * 6364136223846793005ull + 1442695040888963407ull;
                uint64_t pos = (flips >> 20) % ((uint64_t)len * 8u);
                f->data[pos / 8u] ^= (uint8_t)(1u << (pos % 8u));
            }
        }
        lc_push(net, id);
    }
}
