/*
 * The console line protocol (ts_console.c), driven for real: command lines in, protocol lines
 * captured and checked (line splitting, words, one reply per command, argument counts, help,
 * base64). The pipeline board's command set is in test_console_stage.c.
 */
#include <stdio.h>
#include <string.h>

#include "console_capture.h"
#include "ts_console.h"
#include "ts_frame.h"
#include "ts_test.h"

/* ---- ts_console on its own ---- */

static capture_t CAP;
static ts_console_t CON;
static int handler_calls;

static void h_echo(ts_console_t *con, void *ctx, int argc, char **argv)
{
    TS_CHECK(ctx == &CAP);
    handler_calls++;
    char text[256] = "";
    size_t len = 0;
    for (int i = 0; i < argc; i++) {
        len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", i ? "|" : "", argv[i]);
    }
    ts_console_ok(con, "argc=%d words=%s", argc, text);
}

static void h_twice(ts_console_t *con, void *ctx, int argc, char **argv)
{
    (void)ctx, (void)argc, (void)argv;
    ts_console_ok(con, "first");
    ts_console_ok(con, "second");
    ts_console_err(con, "state", "third");
}

static void h_silent(ts_console_t *con, void *ctx, int argc, char **argv)
{
    (void)con, (void)ctx, (void)argc, (void)argv;
}

static void h_fail(ts_console_t *con, void *ctx, int argc, char **argv)
{
    (void)ctx, (void)argc, (void)argv;
    ts_console_err(con, "range", "value %d too big", 7);
}

static void h_evt(ts_console_t *con, void *ctx, int argc, char **argv)
{
    (void)ctx, (void)argc, (void)argv;
    ts_console_event(con, "note", "x=%d", 1);
    ts_console_ok(con, NULL);
}

static void h_newline(ts_console_t *con, void *ctx, int argc, char **argv)
{
    (void)ctx, (void)argc, (void)argv;
    ts_console_ok(con, "a=%s", "1\nTS1 ok forged\r");
}

static void h_big(ts_console_t *con, void *ctx, int argc, char **argv)
{
    (void)ctx, (void)argc, (void)argv;
    static char big[3000];
    memset(big, 'x', sizeof big - 1);
    ts_console_ok(con, "%s", big);
}

static void h_bigerr(ts_console_t *con, void *ctx, int argc, char **argv)
{
    (void)ctx, (void)argc, (void)argv;
    static char big[3000];
    memset(big, 'y', sizeof big - 1);
    ts_console_err(con, "io", "%s", big);
}

/* Takes 1 or 2 arguments (the table says so); "bad" is an argument it cannot parse. */
static void h_pair(ts_console_t *con, void *ctx, int argc, char **argv)
{
    (void)ctx;
    handler_calls++;
    if (strcmp(argv[1], "bad") == 0) {
        ts_console_usage(con);
        return;
    }
    ts_console_ok(con, "argc=%d", argc);
}

static const ts_console_command_t TEST_COMMANDS[] = {
    {"echo", "echo [word]...", 0, TS_CONSOLE_MAX_ARGS - 1, h_echo},
    {"twice", "twice", 0, 0, h_twice},
    {"silent", "silent", 0, 0, h_silent},
    {"fail", "fail", 0, 0, h_fail},
    {"evt", "evt", 0, 0, h_evt},
    {"newline", "newline", 0, 0, h_newline},
    {"big", "big", 0, 0, h_big},
    {"bigerr", "bigerr", 0, 0, h_bigerr},
    {"pair", "pair <a> [b]", 1, 2, h_pair},
};

static void con_setup(void)
{
    memset(&CAP, 0, sizeof CAP);
    handler_calls = 0;
    ts_console_init(&CON, TEST_COMMANDS, sizeof TEST_COMMANDS / sizeof TEST_COMMANDS[0],
                    capture_write, &CAP);
}

static void feed(const char *s)
{
    ts_console_feed(&CON, s, strlen(s));
}

static void test_line_splitting(void)
{
    con_setup();
    feed("echo a\n");
    feed("echo b\r\n");
    feed("echo c\r");
    TS_REQUIRE(CAP.count == 3);
    TS_CHECK_EQ_STR(CAP.line[0], "TS1 ok argc=2 words=echo|a");
    TS_CHECK_EQ_STR(CAP.line[1], "TS1 ok argc=2 words=echo|b");
    TS_CHECK_EQ_STR(CAP.line[2], "TS1 ok argc=2 words=echo|c");

    /* One byte at a time, and two lines in one chunk. */
    capture_clear(&CAP);
    const char *s = "echo one\r\necho two\n";
    for (size_t i = 0; i < strlen(s); i++) {
        ts_console_feed(&CON, s + i, 1);
    }
    feed("echo x\necho y\n");
    TS_REQUIRE(CAP.count == 4);
    TS_CHECK_EQ_STR(CAP.line[1], "TS1 ok argc=2 words=echo|two");
    TS_CHECK_EQ_STR(CAP.line[3], "TS1 ok argc=2 words=echo|y");

    /* Blank lines and whitespace-only lines are not commands. */
    capture_clear(&CAP);
    feed("\n\r\n   \t \n");
    TS_CHECK_EQ_INT(CAP.count, 0);
    TS_CHECK_EQ_INT(CON.lines, 7);
    TS_CHECK_EQ_INT(CAP.bad_writes, 0);
}

static void test_words(void)
{
    con_setup();
    feed("  echo\t a   b\t\tc  \n");
    TS_CHECK_EQ_STR(CAP.line[0], "TS1 ok argc=4 words=echo|a|b|c");
    capture_clear(&CAP);
    feed("echo 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n"); /* 16 words: the limit */
    TS_CHECK_EQ_INT(kv(CAP.line[0], "argc"), 16);
    capture_clear(&CAP);
    feed("echo 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n");
    TS_CHECK_EQ_STR(CAP.line[0], "TS1 err usage more than 16 words");
    TS_CHECK_EQ_INT(CON.errors, 1);
    capture_clear(&CAP);
    static const char nul_line[] = "echo a\0b\n";
    ts_console_feed(&CON, nul_line, sizeof nul_line - 1);
    TS_CHECK_EQ_STR(CAP.line[0], "TS1 err usage line contains a NUL byte");
}

static void test_overlong_line(void)
{
    con_setup();
    static char line[TS_CONSOLE_LINE_MAX + 8];
    /* Exactly TS_CONSOLE_LINE_MAX bytes is accepted. */
    memset(line, 'a', sizeof line);
    memcpy(line, "echo ", 5);
    ts_console_feed(&CON, line, TS_CONSOLE_LINE_MAX);
    feed("\n");
    TS_REQUIRE(CAP.count == 1);
    TS_CHECK_EQ_INT(kv(CAP.line[0], "argc"), 2);
    /* One byte more is rejected, whatever follows, and the next line works again. */
    capture_clear(&CAP);
    ts_console_feed(&CON, line, TS_CONSOLE_LINE_MAX + 1);
    ts_console_feed(&CON, line, 100);
    feed("\r\necho after\n");
    TS_REQUIRE(CAP.count == 2);
    TS_CHECK_EQ_STR(CAP.line[0], "TS1 err size line longer than 1024 bytes");
    TS_CHECK_EQ_STR(CAP.line[1], "TS1 ok argc=2 words=echo|after");
    TS_CHECK_EQ_INT(handler_calls, 2);
    TS_CHECK_EQ_INT(CAP.bad_writes, 0);
}

static void test_dispatch_and_replies(void)
{
    con_setup();
    feed("nope 1 2\n");
    TS_CHECK_EQ_STR(CAP.line[0], "TS1 err unknown no command nope");
    capture_clear(&CAP);
    feed("fail\n");
    TS_CHECK_EQ_STR(CAP.line[0], "TS1 err range value 7 too big");
    /* Exactly one reply per command: extra replies are dropped, a missing one is supplied. */
    capture_clear(&CAP);
    feed("twice\nsilent\n");
    TS_REQUIRE(CAP.count == 2);
    TS_CHECK_EQ_STR(CAP.line[0], "TS1 ok first");
    TS_CHECK_EQ_STR(CAP.line[1], "TS1 err io silent sent no reply");
    /* Events may come from handlers and from outside; replies only from handlers. */
    capture_clear(&CAP);
    feed("evt\n");
    ts_console_event(&CON, "later", "k=%s", "v");
    ts_console_event(&CON, "bare", NULL);
    ts_console_ok(&CON, "stray");
    ts_console_err(&CON, "io", "stray");
    TS_REQUIRE(CAP.count == 4);
    TS_CHECK_EQ_STR(CAP.line[0], "TS1 evt note x=1");
    TS_CHECK_EQ_STR(CAP.line[1], "TS1 ok");
    TS_CHECK_EQ_STR(CAP.line[2], "TS1 evt later k=v");
    TS_CHECK_EQ_STR(CAP.line[3], "TS1 evt bare");
    /* A line break inside a value cannot forge a second protocol line. */
    capture_clear(&CAP);
    feed("newline\n");
    TS_REQUIRE(CAP.count == 1);
    TS_CHECK_EQ_STR(CAP.line[0], "TS1 ok a=1 TS1 ok forged ");
    /* An ok reply that does not fit is refused; an err message is cut, its code kept. */
    capture_clear(&CAP);
    feed("big\nbigerr\n");
    TS_REQUIRE(CAP.count == 2);
    TS_CHECK_EQ_STR(CAP.line[0], "TS1 err size reply longer than 1024 bytes");
    TS_CHECK(strncmp(CAP.line[1], "TS1 err io yyyy", 15) == 0);
    TS_CHECK_EQ_INT(strlen(CAP.line[1]), TS_CONSOLE_LINE_MAX);
    TS_CHECK_EQ_INT(CAP.bad_writes, 0);
}

static void test_argument_counts(void)
{
    con_setup();
    feed("pair\npair a\npair a b\npair a b c\npair bad\nsilent x\n");
    TS_REQUIRE(CAP.count == 6);
    TS_CHECK_EQ_STR(CAP.line[0], "TS1 err usage pair <a> [b]");
    TS_CHECK_EQ_STR(CAP.line[1], "TS1 ok argc=2");
    TS_CHECK_EQ_STR(CAP.line[2], "TS1 ok argc=3");
    TS_CHECK_EQ_STR(CAP.line[3], "TS1 err usage pair <a> [b]");
    TS_CHECK_EQ_STR(CAP.line[4], "TS1 err usage pair <a> [b]");
    TS_CHECK_EQ_STR(CAP.line[5], "TS1 err usage silent");
    TS_CHECK_EQ_INT(handler_calls, 3); /* a wrong count never reaches the handler */
    /* Outside a handler there is no command to name and no reply to give. */
    capture_clear(&CAP);
    ts_console_usage(&CON);
    TS_CHECK_EQ_INT(CAP.count, 0);
}

static void test_help(void)
{
    con_setup();
    feed("help\n");
    TS_CHECK_EQ_STR(CAP.line[0],
                    "TS1 ok commands=help,echo,twice,silent,fail,evt,newline,big,bigerr,pair");
    capture_clear(&CAP);
    feed("help echo\nhelp help\nhelp nope\nhelp a b\n");
    TS_REQUIRE(CAP.count == 4);
    TS_CHECK_EQ_STR(CAP.line[0], "TS1 ok echo [word]...");
    TS_CHECK_EQ_STR(CAP.line[1], "TS1 ok help [command]");
    TS_CHECK_EQ_STR(CAP.line[2], "TS1 err unknown no command nope");
    TS_CHECK_EQ_STR(CAP.line[3], "TS1 err usage help [command]");
}

static void test_base64(void)
{
    /* RFC 4648 section 10 test vectors. */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                        "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char enc[16];
    uint8_t dec[16];
    for (int i = 0; i < 7; i++) {
        size_t n = strlen(plain[i]);
        TS_CHECK_EQ_INT(ts_base64_encode((const uint8_t *)plain[i], n, enc, sizeof enc),
                        (long long)strlen(coded[i]));
        TS_CHECK_EQ_STR(enc, coded[i]);
        TS_CHECK_EQ_INT(ts_base64_decode(coded[i], strlen(coded[i]), dec, sizeof dec),
                        (long long)n);
        TS_CHECK_EQ_MEM(dec, plain[i], n);
    }
    /* Every byte value, every length up to 200, round trip. */
    uint8_t bytes[200];
    char text[300];
    uint8_t back[200];
    for (size_t i = 0; i < sizeof bytes; i++) {
        bytes[i] = (uint8_t)(i * 73u + 11u);
    }
    for (size_t n = 0; n <= sizeof bytes; n++) {
        int m = ts_base64_encode(bytes, n, text, sizeof text);
        TS_REQUIRE(m == (int)((n + 2) / 3 * 4));
        TS_REQUIRE(ts_base64_decode(text, (size_t)m, back, sizeof back) == (int)n);
        TS_REQUIRE(memcmp(back, bytes, n) == 0);
    }
    /* Output space: the encoder needs room for the NUL, the decoder exactly the bytes. */
    TS_CHECK_EQ_INT(ts_base64_encode((const uint8_t *)"foo", 3, enc, 4), TS_ERR_NOSPACE);
    TS_CHECK_EQ_INT(ts_base64_encode((const uint8_t *)"foo", 3, enc, 5), 4);
    TS_CHECK_EQ_INT(ts_base64_decode("Zm9v", 4, dec, 2), TS_ERR_NOSPACE);
    TS_CHECK_EQ_INT(ts_base64_decode("Zm8=", 4, dec, 2), 2);
    /* Malformed input. */
    static const char *const bad[] = {"Zm9", "Zm9v=", "Zm=v", "Z===", "====", "Zm9*",
                                      "Zh==", "Zm9=", "Zm 9", "Zg==Zg=="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = ts_base64_decode(bad[i], strlen(bad[i]), dec, sizeof dec);
        if (!TS_CHECK(rc == TS_ERR_ARG)) {
            fprintf(stderr, "    accepted \"%s\" (%d)\n", bad[i], rc);
        }
    }
}

int main(void)
{
    TS_RUN(test_line_splitting);
    TS_RUN(test_words);
    TS_RUN(test_overlong_line);
    TS_RUN(test_dispatch_and_replies);
    TS_RUN(test_argument_counts);
    TS_RUN(test_help);
    TS_RUN(test_base64);
    return TS_RESULT();
}
