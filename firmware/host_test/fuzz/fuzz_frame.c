/*
 * Fuzz target for the frame codec (libFuzzer entry point; fuzz_driver.c runs it without clang).
 *
 * Every input is decoded as a reliable frame and as a paper frame. Whatever decodes is encoded
 * again and must come back byte-identical: a decoder that accepts a frame its own encoder would
 * write differently (or reject) means the two disagree about the format. Out-of-bounds reads are
 * the sanitizers' job; the copy below makes the input buffer exactly `size` bytes so ASan sees
 * any read past the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ts_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[TS_HEADER_BYTES + 0xFFFFu + 1u];

static void check(int ok)
{
    if (!ok) {
        abort(); /* a crash is how a fuzzer reports a finding */
    }
}

static void fuzz_reliable(const uint8_t *frame, size_t size)
{
    ts_frame_header_t h;
    const uint8_t *payload = NULL;
    int err = ts_frame_decode(frame, size, &h, &payload);
    check(err <= 0);
    check(ts_err_name(err)[0] != '\0');
    if (err != TS_OK) {
        check(err == TS_ERR_SHORT || err == TS_ERR_VERSION || err == TS_ERR_LENGTH ||
              err == TS_ERR_CRC || err == TS_ERR_TYPE || err == TS_ERR_FIELD);
        return;
    }
    check(payload == frame + TS_HEADER_BYTES);
    check((size_t)h.length + TS_HEADER_BYTES == size);
    int n = ts_frame_encode(&h, payload, h.length, out, sizeof out);
    check(n > 0 && (size_t)n == size);
    check(memcmp(out, frame, size) == 0);
    /* One byte less of room must be refused, never overrun. */
    check(ts_frame_encode(&h, payload, h.length, out, size - 1u) == TS_ERR_NOSPACE);
}

static void fuzz_paper(const uint8_t *frame, size_t size)
{
    uint32_t inference = 0;
    uint32_t index = 0;
    const uint8_t *payload = NULL;
    size_t payload_len = 0;
    int err = ts_paper_decode(frame, size, &inference, &index, &payload, &payload_len);
    if (size < TS_PAPER_TIMER_ID_BYTES) {
        check(err == TS_ERR_SHORT);
        return;
    }
    check(err == TS_OK && payload_len + TS_PAPER_TIMER_ID_BYTES == size);
    int n = ts_paper_encode(inference, index, payload, payload_len, out, sizeof out);
    check(n > 0 && (size_t)n == size);
    check(memcmp(out, frame, size) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > sizeof out) {
        return 0;
    }
    uint8_t *frame = malloc(size > 0 ? size : 1u);
    if (frame == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(frame, data, size);
    }
    fuzz_reliable(frame, size);
    fuzz_paper(frame, size);
    free(frame);
    return 0;
}
