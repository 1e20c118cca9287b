/*
 * Requantization of a received tensor to the exponent the slice expects (docs/protocol.md,
 * "Requantization"); bit-exact with tinysplit.model.quantize.requantize_exponent.
 */
#include "ts_stage.h"

#define TS_INT16_MIN (-32768L)
#define TS_INT16_MAX 32767L

static int16_t saturate(long v)
{
    if (v < TS_INT16_MIN) {
        return (int16_t)TS_INT16_MIN;
    }
    if (v > TS_INT16_MAX) {
        return (int16_t)TS_INT16_MAX;
    }
    return (int16_t)v;
}

/* floor(x / 2^s) without right-shifting a negative number (implementation-defined in C11). */
static long floor_shift(long x, int s)
{
    long d = 1L << s;
    return x >= 0 ? x / d : -((-x + d - 1) / d);
}

void ts_requantize(int16_t *values, size_t count, int8_t from, int8_t to)
{
    if (values == NULL || from == to) {
        return;
    }
    int shift = (int)to - (int)from;
    if (shift > 0) {
        /* Coarser: round half up. |v| <= 2^15, so from s = 16 on every value rounds to 0. */
        for (size_t i = 0; i < count; i++) {
            values[i] = shift >= 16 ? 0 : saturate(floor_shift(values[i] + (1L << (shift - 1)),
                                                               shift));
        }
    } else {
        /* Finer: multiply by 2^-shift and saturate; from 16 bits on every non-zero value
         * saturates, so the factor is capped there (no overflow in a 32-bit long). */
        int up = -shift < 16 ? -shift : 16;
        for (size_t i = 0; i < count; i++) {
            values[i] = saturate((long)values[i] * (1L << up));
        }
    }
}
