/*
 * Standalone driver for fuzz_frame.c where libFuzzer is not available (gcc only on the CI host).
 *
 *     fuzz_frame ITERATIONS [VECTORS_JSON] [SEED]
 *
 * Deterministic for given arguments (splitmix64 PRNG). Each iteration feeds
 * LLVMFuzzerTestOneInput one of:
 *   - random bytes of a random length (mostly short, sometimes up to a full ESP-NOW v2 frame);
 *   - a mutation (bit flips, byte writes, truncation, extension) of a seed frame, the seeds being
 *     every "frame" hex string in the test vectors plus frames encoded here, and about half of
 *     the mutated frames get their length field and CRC-16 repaired so the mutation reaches
 *     the type and field checks instead of stopping at the CRC;
 *   - a header with random small field values and a correct CRC (the field rules' corners).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SEEDS 256
#define BUF_BYTES (TS_MAX_FRAME_BYTES + 64)

typedef struct {
    uint8_t bytes[BUF_BYTES];
    size_t len;
} seed_t;

static seed_t seeds[MAX_SEEDS];
static size_t seed_count;
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform-enough value in [0, n) for the small n used here. */
static size_t rng_below(size_t n)
{
    return n == 0 ? 0 : (size_t)(rng_next() % n);
}

static uint8_t rng_byte(void)
{
    return (uint8_t)(rng_next() & 0xFFu);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Every `"frame": "<hex>"` string of the vectors file becomes a seed (no JSON parser needed:
 * the generator writes that key only for frame bytes). */
static void load_vector_seeds(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "fuzz_frame: cannot open %s\n", path);
        exit(2);
    }
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *key = "\"frame\": \"";
    for (const char *p = strstr(text, key); p != NULL && seed_count < MAX_SEEDS;
         p = strstr(p, key)) {
        p += strlen(key);
        seed_t *s = &seeds[seed_count];
        s->len = 0;
        while (hex_value(p[0]) >= 0 && hex_value(p[1]) >= 0 && s->len < BUF_BYTES) {
            s->bytes[s->len++] = (uint8_t)(hex_value(p[0]) * 16 + hex_value(p[1]));
            p += 2;
        }
        seed_count++;
    }
}

static void add_encoded_seed(const ts_frame_header_t *h, const uint8_t *payload)
{
    if (seed_count >= MAX_SEEDS) {
        return;
    }
    int n = ts_frame_encode(h, payload, h->length, seeds[seed_count].bytes, BUF_BYTES);
    if (n <= 0) {
        fprintf(stderr, "fuzz_frame: built-in seed rejected (%s)\n", ts_err_name(n));
        exit(2);
    }
    seeds[seed_count++].len = (size_t)n;
}

static void add_builtin_seeds(void)
{
    static const uint8_t payload[8] = {TS_CTRL_PING, 1, 2, 3, 4, 5, 6, 7};
    static const uint8_t nack[1] = {TS_NACK_BUSY};
    ts_frame_header_t data = {.type = TS_FRAME_DATA, .stage = 1, .flags = TS_FLAG_LAST,
                              .chunk = 0, .chunks = 1, .length = 8, .exponent = -7};
    ts_frame_header_t ack = {.type = TS_FRAME_ACK, .stage = 2, .chunk = 3, .chunks = 9,
                             .length = TS_ACK_BITMAP_BYTES};
    ts_frame_header_t nak = {.type = TS_FRAME_NACK, .stage = 2, .length = TS_NACK_BYTES};
    ts_frame_header_t ctrl = {.type = TS_FRAME_CTRL, .stage = 1, .length = 5};
    add_encoded_seed(&data, payload);
    add_encoded_seed(&ack, payload);
    add_encoded_seed(&nak, nack);
    add_encoded_seed(&ctrl, payload);
}

/* Make the length field and the CRC-16 agree with the (mutated) bytes. */
static void repair(uint8_t *buf, size_t len)
{
    if (len < TS_HEADER_BYTES) {
        return;
    }
    size_t payload = len - TS_HEADER_BYTES;
    if (payload <= 0xFFFFu) {
        buf[10] = (uint8_t)(payload & 0xFFu);
        buf[11] = (uint8_t)(payload >> 8);
    }
    buf[14] = 0;
    buf[15] = 0;
    uint16_t crc = ts_crc16_ccitt(buf, len);
    buf[14] = (uint8_t)(crc & 0xFFu);
    buf[15] = (uint8_t)(crc >> 8);
}

static size_t random_buffer(uint8_t *buf)
{
    size_t len = rng_below(4) == 0 ? rng_below(BUF_BYTES + 1) : rng_below(40);
    for (size_t i = 0; i < len; i++) {
        buf[i] = rng_byte();
    }
    if (len >= 1 && rng_below(2) == 0) {
        buf[0] = TS_PROTOCOL_VERSION; /* get past the version check more often */
        if (rng_below(2) == 0) {
            repair(buf, len);
        }
    }
    return len;
}

static size_t mutated_seed(uint8_t *buf)
{
    const seed_t *s = &seeds[rng_below(seed_count)];
    size_t len = s->len;
    memcpy(buf, s->bytes, len);
    size_t edits = 1 + rng_below(4);
    for (size_t e = 0; e < edits; e++) {
        switch (rng_below(5)) {
        case 0: /* flip one bit */
            if (len > 0) {
                size_t bit = rng_below(len * 8u);
                buf[bit / 8u] ^= (uint8_t)(1u << (bit % 8u));
            }
            break;
        case 1: /* overwrite a header byte with a boundary-ish value */
            if (len > 0) {
                static const uint8_t values[] = {0, 1, 2, 3, 4, 5, 0x7F, 0x80, 0xFE, 0xFF};
                buf[rng_below(len < TS_HEADER_BYTES ? len : TS_HEADER_BYTES)] =
                    values[rng_below(sizeof values)];
            }
            break;
        case 2: /* truncate */
            len = rng_below(len + 1);
            break;
        case 3: /* extend with random bytes */
        {
            size_t extra = rng_below(8) + 1;
            for (size_t i = 0; i < extra && len < BUF_BYTES; i++) {
                buf[len++] = rng_byte();
            }
            break;
        }
        default: /* random byte anywhere */
            if (len > 0) {
                buf[rng_below(len)] = rng_byte();
            }
            break;
        }
    }
    if (rng_below(2) == 0) {
        repair(buf, len);
    }
    return len;
}

static size_t random_header(uint8_t *buf)
{
    static const uint16_t small[] = {0, 1, 2, 3, 4, 5, 0x7FFF, 0xFFFE, 0xFFFF};
    size_t payload = rng_below(3) == 0 ? rng_below(64) : rng_below(7);
    size_t len = TS_HEADER_BYTES + payload;
    for (size_t i = 0; i < len; i++) {
        buf[i] = rng_byte();
    }
    buf[0] = TS_PROTOCOL_VERSION;
    buf[1] = (uint8_t)rng_below(6);
    buf[3] = (uint8_t)rng_below(5);
    for (size_t off = 6; off <= 8; off += 2) { /* chunk, chunks */
        uint16_t v = small[rng_below(sizeof small / sizeof small[0])];
        buf[off] = (uint8_t)(v & 0xFFu);
        buf[off + 1] = (uint8_t)(v >> 8);
    }
    buf[12] = (uint8_t)(rng_below(2) == 0 ? 0 : rng_byte());
    buf[13] = (uint8_t)(rng_below(8) == 0 ? 1 : 0);
    if (payload > 0) {
        buf[TS_HEADER_BYTES] = (uint8_t)rng_below(5); /* NACK reason / CTRL opcode */
    }
    repair(buf, len);
    return len;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: fuzz_frame ITERATIONS [VECTORS_JSON] [SEED]\n");
        return 2;
    }
    long iterations = strtol(argv[1], NULL, 10);
    if (argc >= 3) {
        load_vector_seeds(argv[2]);
    }
    rng_state = argc >= 4 ? strtoull(argv[3], NULL, 0) : 0x7473706C6974ull; /* "tsplit" */
    size_t from_vectors = seed_count;
    add_builtin_seeds();

    static uint8_t buf[BUF_BYTES];
    long decoded = 0;
    for (long i = 0; i < iterations; i++) {
        size_t len;
        switch (rng_below(3)) {
        case 0:
            len = random_buffer(buf);
            break;
        case 1:
            len = mutated_seed(buf);
            break;
        default:
            len = random_header(buf);
            break;
        }
        LLVMFuzzerTestOneInput(buf, len);
        ts_frame_header_t h;
        const uint8_t *payload;
        decoded += ts_frame_decode(buf, len, &h, &payload) == TS_OK;
    }
    printf("fuzz_frame: %ld inputs (%zu seeds from vectors, %zu in all), %ld decoded as valid "
           "reliable frames\n",
           iterations, from_vectors, seed_count, decoded);
    return 0;
}
