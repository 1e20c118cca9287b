/*
 * ts_requantize (src/ts_requant.c): every int16 value for a spread of exponent pairs against a
 * 64-bit reference, run under the sanitizers (shift amounts are where C has undefined behaviour).
 * The shared vectors check it against Python from pytest.
 */
#include <stdint.h>

#include "ts_stage.h"
#include "ts_test.h"

/* floor(v * 2^(from - to) + 1/2) saturated to int16, in 64-bit arithmetic. */
static int16_t reference(int16_t v, int from, int to)
{
    long long x = v;
    int shift = to - from;
    if (shift > 0) {
        if (shift >= 20) {
            return 0; /* |v| / 2^20 < 1/2 */
        }
        long long d = 1LL << shift;
        long long num = 2 * x + d; /* floor((2v + d) / 2d) = floor(v/d + 1/2) */
        long long q = num >= 0 ? num / (2 * d) : -((-num + 2 * d - 1) / (2 * d));
        x = q;
    } else if (shift < 0) {
        x = -shift >= 20 ? (x > 0 ? 32767 : (x < 0 ? -32768 : 0)) : x * (1LL << -shift);
    }
    if (x > 32767) {
        x = 32767;
    }
    if (x < -32768) {
        x = -32768;
    }
    return (int16_t)x;
}

static void test_every_value(void)
{
    static const int8_t pairs[][2] = {
        {0, 0},    {-8, -7},  {-10, -8}, {-15, -1}, {-15, 0},  {-16, 0},    {-17, 0},
        {-128, 127}, {-7, -8}, {-9, -12}, {-1, -15}, {0, -16}, {100, -100}, {127, -128},
    };
    static int16_t values[65536];
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        for (long i = 0; i < 65536; i++) {
            values[i] = (int16_t)(i - 32768);
        }
        ts_requantize(values, 65536, pairs[p][0], pairs[p][1]);
        long bad = 0;
        for (long i = 0; i < 65536; i++) {
            bad += values[i] != reference((int16_t)(i - 32768), pairs[p][0], pairs[p][1]);
        }
        TS_CHECK_EQ_INT(bad, 0);
    }
}

static void test_examples(void)
{
    int16_t v[7] = {-3, -2, -1, 0, 1, 2, 3};
    ts_requantize(v, 7, -1, 0); /* halves round up */
    const int16_t want[7] = {-1, -1, 0, 0, 1, 1, 2};
    TS_CHECK_EQ_MEM(v, want, sizeof want);
    int16_t s[3] = {16384, -16385, 5};
    ts_requantize(s, 3, -5, -6); /* one bit finer: saturates */
    TS_CHECK_EQ_INT(s[0], 32767);
    TS_CHECK_EQ_INT(s[1], -32768);
    TS_CHECK_EQ_INT(s[2], 10);
    ts_requantize(NULL, 3, 0, 1); /* no-op */
}

int main(void)
{
    TS_RUN(test_every_value);
    TS_RUN(test_examples);
    return TS_RESULT();
}
