/* Host stand-in: FreeRTOS mutexes as POSIX mutexes from a static pool. */
#pragma once
#include "FreeRTOS.h"

static inline SemaphoreHandle_t xSemaphoreCreateMutex(void)
{
    static pthread_mutex_t pool[4];
    static int used;
    pthread_mutex_t *m = &pool[used++ % 4];
    pthread_mutex_init(m, NULL);
    return m;
}

static inline BaseType_t xSemaphoreTake(SemaphoreHandle_t m, TickType_t ticks)
{
    (void)ticks; /* wifi_links.c only waits for ever */
    pthread_mutex_lock(m);
    return pdTRUE;
}

static inline BaseType_t xSemaphoreGive(SemaphoreHandle_t m)
{
    pthread_mutex_unlock(m);
    return pdTRUE;
}
