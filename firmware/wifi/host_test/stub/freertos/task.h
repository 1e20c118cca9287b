/* Host stand-in: FreeRTOS tasks as detached POSIX threads. */
#pragma once
#include <time.h>
#include "FreeRTOS.h"

typedef void (*TaskFunction_t)(void *);

typedef struct {
    TaskFunction_t fn;
    void *arg;
} host_task_t;

static inline void *host_task_main(void *p)
{
    host_task_t *t = p;
    t->fn(t->arg);
    return NULL;
}

static inline BaseType_t xTaskCreate(TaskFunction_t fn, const char *name, uint32_t stack,
                                     void *arg, int priority, void *handle)
{
    static host_task_t pool[8];
    static int used;
    (void)name;
    (void)stack;
    (void)priority;
    (void)handle;
    host_task_t *t = &pool[used++ % 8];
    t->fn = fn;
    t->arg = arg;
    pthread_t thread;
    if (pthread_create(&thread, NULL, host_task_main, t) != 0) {
        return pdFALSE;
    }
    pthread_detach(thread);
    return pdPASS;
}

static inline void vTaskDelay(TickType_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000u), .tv_nsec = (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL);
}
