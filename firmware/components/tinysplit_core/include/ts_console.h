/*
 * The USB-serial console line protocol, version 1 (portable, no ESP-IDF): line splitting, command
 * dispatch and reply formatting shared by the pipeline boards and the scribe. Full command set
 * and grammar: docs/protocol.md ("Console").
 *
 * Host -> board: one command per line, `name arg...`, words separated by spaces, `\n` or `\r\n`
 * terminated, at most TS_CONSOLE_LINE_MAX bytes. Board -> host: every protocol line starts with
 * "TS1 " followed by `ok ...`, `err <code> <message>` (one reply per command, in order) or
 * `evt <name> key=value...` (unsolicited). Lines without the prefix are log output.
 */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TS_CONSOLE_VERSION 1
#define TS_CONSOLE_PREFIX "TS1 "
#define TS_CONSOLE_LINE_MAX 1024 /* longest command line, terminator excluded */
#define TS_CONSOLE_MAX_ARGS 16

typedef struct ts_console ts_console_t;

/** A command handler: argv[0] is the command name, followed by min_args..max_args arguments
 *  (the dispatcher answers any other count). Must send exactly one reply (ok or err). */
typedef void (*ts_console_handler_t)(ts_console_t *con, void *ctx, int argc, char **argv);

typedef struct {
    const char *name;
    const char *usage; /* "name <arg> ..." for `help` and usage errors */
    uint8_t min_args;  /* words after the name, at least */
    uint8_t max_args;  /* and at most (up to TS_CONSOLE_MAX_ARGS - 1) */
    ts_console_handler_t handler;
} ts_console_command_t;

/** Writes protocol text (whole lines) to the host. */
typedef void (*ts_console_write_t)(void *ctx, const char *text, size_t len);

/** A console; allocate statically, fields are private. */
struct ts_console {
    const ts_console_command_t *commands;
    size_t command_count;
    ts_console_write_t write;
    void *ctx;
    char line[TS_CONSOLE_LINE_MAX + 1];
    size_t line_len;
    uint8_t overflow;       /* the current line exceeded TS_CONSOLE_LINE_MAX: reject it */
    const ts_console_command_t *current; /* the command whose handler runs, else NULL */
    uint8_t replied;        /* the running handler has replied */
    uint32_t lines;         /* command lines received */
    uint32_t errors;        /* err replies sent */
};

/** Set up with a command table (the built-in `help` lists it). */
void ts_console_init(ts_console_t *con, const ts_console_command_t *commands, size_t count,
                     ts_console_write_t write, void *ctx);

/** Feed received bytes; every complete line is dispatched. */
void ts_console_feed(ts_console_t *con, const char *bytes, size_t len);

/** Reply `TS1 ok <formatted>` (format may be NULL or ""). */
void ts_console_ok(ts_console_t *con, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Reply `TS1 err <code> <formatted message>`; codes are lowercase words (usage, unknown,
 *  range, state, crc, size, io). */
void ts_console_err(ts_console_t *con, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Reply `TS1 err usage <usage of the running command>`: for an argument the handler cannot
 *  parse (the dispatcher already answers a wrong argument count). */
void ts_console_usage(ts_console_t *con);

/** Emit `TS1 evt <name> <formatted>` (any time, also outside handlers). */
void ts_console_event(ts_console_t *con, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Parse a whole word as a decimal number in 0..max (digits only, no sign): 1, or 0 when the
 *  word is empty, has another character or exceeds `max`. */
int ts_console_parse_u32(const char *word, uint32_t max, uint32_t *out);

/** Base64 (RFC 4648, with padding). Return the output length or TS_ERR_NOSPACE / TS_ERR_ARG. */
int ts_base64_encode(const uint8_t *in, size_t len, char *out, size_t out_cap);
int ts_base64_decode(const char *in, size_t len, uint8_t *out, size_t out_cap);

#ifdef __cplusplus
}
#endif
