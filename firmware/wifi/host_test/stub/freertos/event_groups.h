/* Host stand-in: event groups from a static pool (mutex + condition variable). */
#pragma once
#include <time.h>
#include "FreeRTOS.h"

static inline EventGroupHandle_t xEventGroupCreate(void)
{
    static host_event_group_t pool[4];
    static int used;
    host_event_group_t *g = &pool[used++ % 4];
    pthread_mutex_init(&g->mutex, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->bits = 0;
    return g;
}

static inline EventBits_t xEventGroupSetBits(EventGroupHandle_t g, EventBits_t bits)
{
    pthread_mutex_lock(&g->mutex);
    g->bits |= bits;
    EventBits_t now = g->bits;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->mutex);
    return now;
}

static inline EventBits_t xEventGroupClearBits(EventGroupHandle_t g, EventBits_t bits)
{
    pthread_mutex_lock(&g->mutex);
    EventBits_t before = g->bits;
    g->bits &= ~bits;
    pthread_mutex_unlock(&g->mutex);
    return before;
}

static inline EventBits_t xEventGroupGetBits(EventGroupHandle_t g)
{
    pthread_mutex_lock(&g->mutex);
    EventBits_t now = g->bits;
    pthread_mutex_unlock(&g->mutex);
    return now;
}

static inline EventBits_t xEventGroupWaitBits(EventGroupHandle_t g, EventBits_t bits,
                                              BaseType_t clear, BaseType_t all, TickType_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000u);
    until.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g->mutex);
    while (all ? (g->bits & bits) != bits : (g->bits & bits) == 0) {
        if (pthread_cond_timedwait(&g->cond, &g->mutex, &until) != 0) {
            break;
        }
    }
    EventBits_t now = g->bits;
    if (clear) {
        g->bits &= ~bits;
    }
    pthread_mutex_unlock(&g->mutex);
    return now;
}
