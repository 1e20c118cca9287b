/*
 * A tiny assertion harness for the host tests (firmware/host_test/test_*.c).
 *
 *     static void test_something(void) {
 *         TS_CHECK(x == 1);            // records a failure and goes on
 *         TS_CHECK_EQ_INT(f(), 42);    // prints both values on failure
 *         TS_REQUIRE(ptr != NULL);     // records a failure and leaves the test function
 *     }
 *     int main(void) {
 *         TS_RUN(test_something);
 *         return TS_RESULT();          // non-zero when any check failed
 *     }
 *
 * Header-only: every test executable includes it once (state lives in one static function).
 */
#pragma once

#include <stdio.h>
#include <string.h>

typedef struct {
    long checks;
    long failures;
    int tests;
    int failed_tests;
} ts_test_state_t;

/* One state per executable without a .c file: a static local in a static inline function. */
static inline ts_test_state_t *ts_test_state(void)
{
    static ts_test_state_t state;
    return &state;
}

static inline int ts_test_fail(const char *file, int line, const char *what)
{
    ts_test_state()->failures++;
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    return 0;
}

static inline int ts_test_check(int ok, const char *file, int line, const char *what)
{
    ts_test_state()->checks++;
    return ok ? 1 : ts_test_fail(file, line, what);
}

/** Record one check; on failure print the expression. Evaluates to 1 (pass) or 0 (fail). */
#define TS_CHECK(cond) ts_test_check((cond) ? 1 : 0, __FILE__, __LINE__, #cond)

/** Like TS_CHECK, and return from the (void) test function on failure. */
#define TS_REQUIRE(cond)                                                                       \
    do {                                                                                       \
        if (!TS_CHECK(cond)) {                                                                 \
            return;                                                                            \
        }                                                                                      \
    } while (0)

/** Integers (any integer type up to 64 bits signed or 32 bits unsigned) compared as long long. */
#define TS_CHECK_EQ_INT(a, b)                                                                  \
    do {                                                                                       \
        long long ts_check_a_ = (long long)(a);                                                \
        long long ts_check_b_ = (long long)(b);                                                \
        ts_test_state()->checks++;                                                             \
        if (ts_check_a_ != ts_check_b_) {                                                      \
            ts_test_fail(__FILE__, __LINE__, #a " == " #b);                                    \
            fprintf(stderr, "    left %lld (0x%llx), right %lld (0x%llx)\n", ts_check_a_,        \
                    (unsigned long long)ts_check_a_, ts_check_b_,                              \
                    (unsigned long long)ts_check_b_);                                          \
        }                                                                                      \
    } while (0)

/** `n` bytes at `a` and `b` are equal; prints the first differing offset. */
#define TS_CHECK_EQ_MEM(a, b, n)                                                               \
    do {                                                                                       \
        const unsigned char *ts_check_pa_ = (const unsigned char *)(a);                        \
        const unsigned char *ts_check_pb_ = (const unsigned char *)(b);                        \
        size_t ts_check_n_ = (size_t)(n);                                                      \
        ts_test_state()->checks++;                                                             \
        for (size_t ts_check_i_ = 0; ts_check_i_ < ts_check_n_; ts_check_i_++) {               \
            if (ts_check_pa_[ts_check_i_] != ts_check_pb_[ts_check_i_]) {                      \
                ts_test_fail(__FILE__, __LINE__, "memory " #a " == " #b);                      \
                fprintf(stderr, "    first difference at byte %zu: 0x%02x != 0x%02x\n",         \
                        ts_check_i_, ts_check_pa_[ts_check_i_], ts_check_pb_[ts_check_i_]);    \
                break;                                                                         \
            }                                                                                  \
        }                                                                                      \
    } while (0)

/** NUL-terminated strings are equal. */
#define TS_CHECK_EQ_STR(a, b)                                                                  \
    do {                                                                                       \
        const char *ts_check_sa_ = (a);                                                        \
        const char *ts_check_sb_ = (b);                                                        \
        ts_test_state()->checks++;                                                             \
        if (ts_check_sa_ == NULL || ts_check_sb_ == NULL ||                                    \
            strcmp(ts_check_sa_, ts_check_sb_) != 0) {                                         \
            ts_test_fail(__FILE__, __LINE__, #a " == " #b);                                    \
            fprintf(stderr, "    left \"%s\", right \"%s\"\n",                                 \
                    ts_check_sa_ ? ts_check_sa_ : "(null)",                                    \
                    ts_check_sb_ ? ts_check_sb_ : "(null)");                                   \
        }                                                                                      \
    } while (0)

/** Run one `void fn(void)` test and print ok / FAIL with its name. */
#define TS_RUN(fn)                                                                             \
    do {                                                                                       \
        long ts_run_before_ = ts_test_state()->failures;                                       \
        ts_test_state()->tests++;                                                              \
        fn();                                                                                  \
        if (ts_test_state()->failures != ts_run_before_) {                                     \
            ts_test_state()->failed_tests++;                                                   \
            printf("FAIL %s\n", #fn);                                                          \
        } else {                                                                               \
            printf("ok   %s\n", #fn);                                                          \
        }                                                                                      \
    } while (0)

/** Print a summary; the exit status for main: 0 when every check passed, else 1. */
static inline int ts_test_result(void)
{
    const ts_test_state_t *s = ts_test_state();
    printf("%d tests, %ld checks, %d failed tests, %ld failed checks\n", s->tests, s->checks,
           s->failed_tests, s->failures);
    return s->failures == 0 ? 0 : 1;
}

#define TS_RESULT() ts_test_result()
