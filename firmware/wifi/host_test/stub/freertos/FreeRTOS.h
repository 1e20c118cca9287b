/* Host stand-in for the FreeRTOS API wifi_links.c uses, on POSIX threads. 1 tick = 1 ms. */
#pragma once
#include <pthread.h>
#include <stdint.h>
typedef int BaseType_t;
typedef uint32_t TickType_t;
typedef uint32_t EventBits_t;
#define pdTRUE 1
#define pdFALSE 0
#define pdPASS 1
#define portMAX_DELAY 0xFFFFFFFFu
#define pdMS_TO_TICKS(ms) ((TickType_t)(ms))
typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    EventBits_t bits;
} host_event_group_t;
typedef host_event_group_t *EventGroupHandle_t;
typedef pthread_mutex_t *SemaphoreHandle_t;
