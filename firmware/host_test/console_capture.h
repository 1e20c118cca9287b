/*
 * Captured console output for the console tests (header-only, included by test_console*.c):
 * every write must be exactly one protocol line.
 */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_console.h"

#define CAP_LINES 512
#define CAP_LINE_BYTES (TS_CONSOLE_LINE_MAX + 2)

typedef struct {
    char line[CAP_LINES][CAP_LINE_BYTES];
    int count;
    int bad_writes; /* writes that were not exactly one '\n'-terminated line */
} capture_t;

static inline void capture_write(void *ctx, const char *text, size_t len)
{
    capture_t *c = ctx;
    if (len == 0 || len > TS_CONSOLE_LINE_MAX + 1 || text[len - 1] != '\n' ||
        memchr(text, '\n', len - 1) != NULL || memchr(text, '\r', len) != NULL) {
        c->bad_writes++;
        return;
    }
    if (c->count == CAP_LINES) {
        c->bad_writes++;
        return;
    }
    memcpy(c->line[c->count], text, len - 1);
    c->line[c->count][len - 1] = '\0';
    c->count++;
}

static inline void capture_clear(capture_t *c)
{
    c->count = 0;
}

/* The first captured line starting with `prefix`, or NULL. */
static inline const char *capture_find(const capture_t *c, const char *prefix)
{
    for (int i = 0; i < c->count; i++) {
        if (strncmp(c->line[i], prefix, strlen(prefix)) == 0) {
            return c->line[i];
        }
    }
    return NULL;
}

static inline int capture_count(const capture_t *c, const char *prefix)
{
    int n = 0;
    for (int i = 0; i < c->count; i++) {
        n += strncmp(c->line[i], prefix, strlen(prefix)) == 0;
    }
    return n;
}

/* Value of ` key=` in `line` as a number; -1 when absent. */
static inline long long kv(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, " %s=", key);
    const char *p = line != NULL ? strstr(line, pat) : NULL;
    return p == NULL ? -1 : strtoll(p + strlen(pat), NULL, 0);
}
