/*
 * The console line protocol, version 1 (contract: ts_console.h; grammar: docs/protocol.md,
 * "Console"). Portable: no ESP-IDF, no allocation; the only buffers are the line buffer in
 * ts_console_t and one output line on the caller's stack.
 */
#include <stdio.h>
#include <string.h>

#include "ts_console.h"
#include "ts_frame.h"

/* Longest line the board writes, "\n" excluded: the same bound as for host lines. */
#define TS_CONSOLE_OUT_MAX TS_CONSOLE_LINE_MAX

/* ts_console_t.replied: one reply per command is the invariant hosts pair lines by, so a reply
 * is only written while a handler runs and has not replied yet. */
enum {
    REPLY_PENDING = 0, /* a handler runs and has not replied */
    REPLY_DONE = 1,    /* a handler runs and has replied */
    REPLY_IDLE = 2,    /* no handler runs */
};

void ts_console_init(ts_console_t *con, const ts_console_command_t *commands, size_t count,
                     ts_console_write_t write, void *ctx)
{
    memset(con, 0, sizeof(*con));
    con->commands = commands;
    con->command_count = count;
    con->write = write;
    con->ctx = ctx;
    con->replied = REPLY_IDLE;
}

/* Format "TS1 <head>[ <fmt...>]\n" into out[TS_CONSOLE_OUT_MAX + 2]; returns the length, or -1
 * when the line would be longer than TS_CONSOLE_OUT_MAX (out then holds a truncated line). */
static int format_line(char *out, const char *head, const char *fmt, va_list ap)
{
    int n = snprintf(out, TS_CONSOLE_OUT_MAX + 1, "%s%s", TS_CONSOLE_PREFIX, head);
    if (n < 0 || n > TS_CONSOLE_OUT_MAX) {
        return -1;
    }
    size_t len = (size_t)n;
    int truncated = 0;
    if (fmt != NULL && fmt[0] != '\0' && len < TS_CONSOLE_OUT_MAX) {
        out[len++] = ' ';
        int m = vsnprintf(out + len, TS_CONSOLE_OUT_MAX + 1 - len, fmt, ap);
        if (m < 0) {
            return -1;
        }
        if ((size_t)m > TS_CONSOLE_OUT_MAX - len) {
            truncated = 1;
            len = TS_CONSOLE_OUT_MAX;
        } else if (m == 0) {
            len--; /* nothing formatted: no trailing space */
        } else {
            len += (size_t)m;
        }
    }
    /* A line break inside a value would split the reply into two protocol lines. */
    for (size_t i = 0; i < len; i++) {
        if (out[i] == '\n' || out[i] == '\r') {
            out[i] = ' ';
        }
    }
    out[len++] = '\n';
    out[len] = '\0';
    return truncated ? -1 : (int)len;
}

static void write_text(ts_console_t *con, const char *text, size_t len)
{
    if (con->write != NULL) {
        con->write(con->ctx, text, len);
    }
}

static void send_err(ts_console_t *con, const char *code, const char *fmt, va_list ap)
{
    char head[48];
    char out[TS_CONSOLE_OUT_MAX + 2];
    snprintf(head, sizeof(head), "err %s", code);
    int n = format_line(out, head, fmt, ap);
    /* An overlong message is cut: the code, which hosts act on, is always complete. */
    write_text(con, out, n < 0 ? strlen(out) : (size_t)n);
    con->errors++;
}

static void err_now(ts_console_t *con, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An err reply from the dispatcher itself (no handler runs). */
static void err_now(ts_console_t *con, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    send_err(con, code, fmt, ap);
    va_end(ap);
}

void ts_console_ok(ts_console_t *con, const char *fmt, ...)
{
    if (con->replied != REPLY_PENDING) {
        return;
    }
    con->replied = REPLY_DONE;
    char out[TS_CONSOLE_OUT_MAX + 2];
    va_list ap;
    va_start(ap, fmt);
    int n = format_line(out, "ok", fmt, ap);
    va_end(ap);
    if (n < 0) {
        /* A cut ok reply would be read as complete data: refuse it instead. */
        err_now(con, "size", "reply longer than %d bytes", TS_CONSOLE_OUT_MAX);
        return;
    }
    write_text(con, out, (size_t)n);
}

void ts_console_err(ts_console_t *con, const char *code, const char *fmt, ...)
{
    if (con->replied != REPLY_PENDING) {
        return;
    }
    con->replied = REPLY_DONE;
    va_list ap;
    va_start(ap, fmt);
    send_err(con, code, fmt, ap);
    va_end(ap);
}

void ts_console_usage(ts_console_t *con)
{
    const ts_console_command_t *cmd = con->current;
    ts_console_err(con, "usage", "%s", cmd != NULL && cmd->usage != NULL ? cmd->usage : "");
}

void ts_console_event(ts_console_t *con, const char *name, const char *fmt, ...)
{
    char head[64];
    char out[TS_CONSOLE_OUT_MAX + 2];
    snprintf(head, sizeof(head), "evt %s", name);
    va_list ap;
    va_start(ap, fmt);
    int n = format_line(out, head, fmt, ap);
    va_end(ap);
    if (n < 0) {
        n = snprintf(out, sizeof(out), "%sevt error what=event_too_long event=%s\n",
                     TS_CONSOLE_PREFIX, name);
        if (n < 0 || (size_t)n >= sizeof(out)) {
            return;
        }
    }
    write_text(con, out, (size_t)n);
}

static const ts_console_command_t *find_command(const ts_console_t *con, const char *name)
{
    for (size_t i = 0; i < con->command_count; i++) {
        if (strcmp(con->commands[i].name, name) == 0) {
            return &con->commands[i];
        }
    }
    return NULL;
}

/* Built-in `help` (unless the table has its own): `help` lists the command names,
 * `help <command>` gives that command's usage. */
static void builtin_help(ts_console_t *con, int argc, char **argv)
{
    if (argc > 2) {
        ts_console_err(con, "usage", "help [command]");
        return;
    }
    if (argc == 2) {
        if (strcmp(argv[1], "help") == 0) {
            ts_console_ok(con, "help [command]");
            return;
        }
        const ts_console_command_t *cmd = find_command(con, argv[1]);
        if (cmd == NULL) {
            ts_console_err(con, "unknown", "no command %s", argv[1]);
            return;
        }
        ts_console_ok(con, "%s", cmd->usage != NULL ? cmd->usage : cmd->name);
        return;
    }
    char list[TS_CONSOLE_OUT_MAX];
    size_t len = 0;
    int n = snprintf(list, sizeof(list), "commands=help");
    len = n > 0 ? (size_t)n : 0;
    for (size_t i = 0; i < con->command_count && len < sizeof(list); i++) {
        n = snprintf(list + len, sizeof(list) - len, ",%s", con->commands[i].name);
        if (n < 0) {
            break;
        }
        len += (size_t)n;
    }
    ts_console_ok(con, "%s", list);
}

static void dispatch(ts_console_t *con, char *line, size_t len)
{
    con->lines++;
    if (memchr(line, '\0', len) != NULL) {
        err_now(con, "usage", "line contains a NUL byte");
        return;
    }
    char *argv[TS_CONSOLE_MAX_ARGS + 1];
    int argc = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        if (argc == TS_CONSOLE_MAX_ARGS) {
            err_now(con, "usage", "more than %d words", TS_CONSOLE_MAX_ARGS);
            return;
        }
        argv[argc++] = p;
        while (*p != '\0' && *p != ' ' && *p != '\t') {
            p++;
        }
        if (*p != '\0') {
            *p++ = '\0';
        }
    }
    if (argc == 0) {
        con->lines--; /* blank line: not a command */
        return;
    }
    argv[argc] = NULL;

    const ts_console_command_t *cmd = find_command(con, argv[0]);
    con->replied = REPLY_PENDING;
    con->current = cmd;
    if (cmd != NULL) {
        if (argc - 1 < cmd->min_args || argc - 1 > cmd->max_args) {
            ts_console_usage(con);
        } else {
            cmd->handler(con, con->ctx, argc, argv);
        }
    } else if (strcmp(argv[0], "help") == 0) {
        builtin_help(con, argc, argv);
    } else {
        ts_console_err(con, "unknown", "no command %s", argv[0]);
    }
    if (con->replied == REPLY_PENDING) {
        ts_console_err(con, "io", "%s sent no reply", argv[0]);
    }
    con->replied = REPLY_IDLE;
    con->current = NULL;
}

static void end_line(ts_console_t *con)
{
    if (con->overflow) {
        con->lines++;
        err_now(con, "size", "line longer than %d bytes", TS_CONSOLE_LINE_MAX);
    } else if (con->line_len > 0) {
        con->line[con->line_len] = '\0';
        dispatch(con, con->line, con->line_len);
    }
    con->line_len = 0;
    con->overflow = 0;
}

void ts_console_feed(ts_console_t *con, const char *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = bytes[i];
        /* CR and LF both end a line, so "\r\n" ends one line and the empty line after it is
         * ignored; terminals that send a bare CR work too. */
        if (c == '\n' || c == '\r') {
            end_line(con);
        } else if (con->overflow) {
            continue;
        } else if (con->line_len < TS_CONSOLE_LINE_MAX) {
            con->line[con->line_len++] = c;
        } else {
            con->overflow = 1;
        }
    }
}

int ts_console_parse_u32(const char *word, uint32_t max, uint32_t *out)
{
    if (*word == '\0') {
        return 0;
    }
    uint64_t v = 0;
    for (; *word != '\0'; word++) {
        if (*word < '0' || *word > '9') {
            return 0;
        }
        v = v * 10u + (uint64_t)(*word - '0');
        if (v > max) {
            return 0;
        }
    }
    *out = (uint32_t)v;
    return 1;
}

/* ---- base64 (RFC 4648 section 4, padded) ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int ts_base64_encode(const uint8_t *in, size_t len, char *out, size_t out_cap)
{
    if ((in == NULL && len > 0) || out == NULL) {
        return TS_ERR_ARG;
    }
    size_t need = (len + 2) / 3 * 4;
    if (need + 1 > out_cap || need > (size_t)0x7FFFFFFF) {
        return TS_ERR_NOSPACE;
    }
    size_t o = 0;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 0x3F];
        out[o++] = b64_alphabet[(v >> 12) & 0x3F];
        out[o++] = b64_alphabet[(v >> 6) & 0x3F];
        out[o++] = b64_alphabet[v & 0x3F];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64_alphabet[(v >> 18) & 0x3F];
        out[o++] = b64_alphabet[(v >> 12) & 0x3F];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
        out[o++] = b64_alphabet[(v >> 18) & 0x3F];
        out[o++] = b64_alphabet[(v >> 12) & 0x3F];
        out[o++] = b64_alphabet[(v >> 6) & 0x3F];
        out[o++] = '=';
    }
    out[o] = '\0';
    return (int)o;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

int ts_base64_decode(const char *in, size_t len, uint8_t *out, size_t out_cap)
{
    if ((in == NULL || out == NULL) && len > 0) {
        return TS_ERR_ARG;
    }
    if (len % 4 != 0 || len / 4 * 3 > (size_t)0x7FFFFFFF) {
        return TS_ERR_ARG;
    }
    size_t pad = 0;
    if (len > 0 && in[len - 1] == '=') {
        pad = (len > 1 && in[len - 2] == '=') ? 2 : 1;
    }
    size_t out_len = len / 4 * 3 - pad;
    if (out_len > out_cap) {
        return TS_ERR_NOSPACE;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int last = (i + 4 == len);
        int v[4];
        for (int k = 0; k < 4; k++) {
            v[k] = b64_value(in[i + (size_t)k]);
        }
        if (v[0] < 0 || v[1] < 0) {
            return TS_ERR_ARG;
        }
        uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12);
        if (last && pad == 2) {
            /* Strict: the unused low bits must be zero, so every byte string has one encoding. */
            if ((v[1] & 0x0F) != 0) {
                return TS_ERR_ARG;
            }
            out[o++] = (uint8_t)(w >> 16);
            break;
        }
        if (v[2] < 0) {
            return TS_ERR_ARG;
        }
        w |= (uint32_t)v[2] << 6;
        if (last && pad == 1) {
            if ((v[2] & 0x03) != 0) {
                return TS_ERR_ARG;
            }
            out[o++] = (uint8_t)(w >> 16);
            out[o++] = (uint8_t)(w >> 8);
            break;
        }
        if (v[3] < 0) {
            return TS_ERR_ARG;
        }
        w |= (uint32_t)v[3];
        out[o++] = (uint8_t)(w >> 16);
        out[o++] = (uint8_t)(w >> 8);
        out[o++] = (uint8_t)w;
    }
    return (int)o;
}
