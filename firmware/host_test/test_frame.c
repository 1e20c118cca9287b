/*
 * Unit tests of the frame codec and the CRCs (components/tinysplit_core/src/ts_frame.c, ts_crc.c).
 * The shared test vectors are checked from pytest (tests/firmware/test_codec_vectors.py) through
 * the ts_core_host library; these tests cover what is easier to state in C: check values,
 * bounds, argument errors and the validation order.
 */
#include <stdint.h>
#include <string.h>

#include "ts_frame.h"
#include "ts_test.h"

static const uint8_t CHECK_INPUT[] = "123456789";

static uint16_t crc16_bitwise(const uint8_t *data, size_t len)
{
    uint16_t crc = 0xFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(data[i] << 8);
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

static uint32_t crc32_bitwise(const uint8_t *data, size_t len)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc & 1u) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
    }
    return ~crc;
}

static void test_crc_check_values(void)
{
    TS_CHECK_EQ_INT(ts_crc16_ccitt(CHECK_INPUT, 9), 0x29B1);
    TS_CHECK_EQ_INT(ts_crc32(CHECK_INPUT, 9), 0xCBF43926u);
    TS_CHECK_EQ_INT(ts_crc16_ccitt(NULL, 0), 0xFFFF);
    TS_CHECK_EQ_INT(ts_crc32(NULL, 0), 0);
}

static void test_crc_tables_match_the_bitwise_definition(void)
{
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = (uint8_t)(i * 37u + 11u);
    }
    for (unsigned b = 0; b < 256; b++) {
        uint8_t one = (uint8_t)b;
        TS_CHECK_EQ_INT(ts_crc16_ccitt(&one, 1), crc16_bitwise(&one, 1));
        TS_CHECK_EQ_INT(ts_crc32(&one, 1), crc32_bitwise(&one, 1));
    }
    TS_CHECK_EQ_INT(ts_crc16_ccitt(buf, sizeof buf), crc16_bitwise(buf, sizeof buf));
    TS_CHECK_EQ_INT(ts_crc32(buf, sizeof buf), crc32_bitwise(buf, sizeof buf));
}

static void test_crc_update_continues_a_crc(void)
{
    for (size_t split = 0; split <= 9; split++) {
        uint16_t c16 = ts_crc16_ccitt_update(0xFFFFu, CHECK_INPUT, split);
        c16 = ts_crc16_ccitt_update(c16, CHECK_INPUT + split, 9 - split);
        TS_CHECK_EQ_INT(c16, 0x29B1);
        uint32_t c32 = ts_crc32_update(0, CHECK_INPUT, split);
        c32 = ts_crc32_update(c32, CHECK_INPUT + split, 9 - split);
        TS_CHECK_EQ_INT(c32, 0xCBF43926u);
    }
}

static ts_frame_header_t data_header(uint16_t chunk, uint16_t chunks, uint16_t length)
{
    ts_frame_header_t h = {
        .type = TS_FRAME_DATA,
        .stage = 2,
        .flags = chunk + 1u == chunks ? TS_FLAG_LAST : 0,
        .inference = 7,
        .chunk = chunk,
        .chunks = chunks,
        .length = length,
        .exponent = -5,
    };
    return h;
}

static void test_header_layout(void)
{
    const uint8_t payload[4] = {1, 2, 3, 4};
    ts_frame_header_t h = data_header(8, 9, 4);
    uint8_t out[64];
    TS_REQUIRE(ts_frame_encode(&h, payload, 4, out, sizeof out) == 20);
    const uint8_t head[14] = {1, TS_FRAME_DATA, 2, TS_FLAG_LAST, 7, 0, 8, 0, 9, 0, 4, 0, 0xFB, 0};
    TS_CHECK_EQ_MEM(out, head, sizeof head);
    uint8_t zeroed[20];
    memcpy(zeroed, out, sizeof zeroed);
    zeroed[14] = 0;
    zeroed[15] = 0;
    uint16_t crc = ts_crc16_ccitt(zeroed, sizeof zeroed);
    TS_CHECK_EQ_INT(out[14] | (out[15] << 8), crc);
    TS_CHECK_EQ_MEM(out + 16, payload, 4);
}

static void test_round_trip(void)
{
    uint8_t payload[TS_MAX_FRAME_BYTES - TS_HEADER_BYTES];
    for (size_t i = 0; i < sizeof payload; i++) {
        payload[i] = (uint8_t)(i ^ 0x5Au);
    }
    ts_frame_header_t h = data_header(0, 3, (uint16_t)sizeof payload);
    h.flags |= TS_FLAG_RETRANSMISSION;
    uint8_t out[TS_MAX_FRAME_BYTES];
    TS_REQUIRE(ts_frame_encode(&h, payload, sizeof payload, out, sizeof out) ==
               TS_MAX_FRAME_BYTES);
    ts_frame_header_t got;
    const uint8_t *body = NULL;
    TS_REQUIRE(ts_frame_decode(out, sizeof out, &got, &body) == TS_OK);
    TS_CHECK_EQ_INT(got.type, h.type);
    TS_CHECK_EQ_INT(got.stage, h.stage);
    TS_CHECK_EQ_INT(got.flags, h.flags);
    TS_CHECK_EQ_INT(got.inference, h.inference);
    TS_CHECK_EQ_INT(got.chunk, h.chunk);
    TS_CHECK_EQ_INT(got.chunks, h.chunks);
    TS_CHECK_EQ_INT(got.length, h.length);
    TS_CHECK_EQ_INT(got.exponent, h.exponent);
    TS_CHECK(body == out + TS_HEADER_BYTES);
    TS_CHECK_EQ_MEM(body, payload, sizeof payload);
}

static void test_encode_in_place(void)
{
    uint8_t out[32] = {0};
    memcpy(out + TS_HEADER_BYTES, "\x10\x20\x30\x40", 4);
    ts_frame_header_t h = data_header(0, 1, 4);
    TS_REQUIRE(ts_frame_encode(&h, out + TS_HEADER_BYTES, 4, out, sizeof out) == 20);
    ts_frame_header_t got;
    const uint8_t *body;
    TS_REQUIRE(ts_frame_decode(out, 20, &got, &body) == TS_OK);
    TS_CHECK_EQ_MEM(body, "\x10\x20\x30\x40", 4);
}

static void test_encode_errors(void)
{
    uint8_t payload[4] = {0};
    uint8_t out[32];
    ts_frame_header_t h = data_header(0, 1, 4);
    TS_CHECK_EQ_INT(ts_frame_encode(NULL, payload, 4, out, sizeof out), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_frame_encode(&h, payload, 4, NULL, sizeof out), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_frame_encode(&h, NULL, 4, out, sizeof out), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_frame_encode(&h, payload, 3, out, sizeof out), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_frame_encode(&h, payload, 4, out, 19), TS_ERR_NOSPACE);
    TS_CHECK_EQ_INT(ts_frame_encode(&h, payload, 4, out, 0), TS_ERR_NOSPACE);
    TS_CHECK_EQ_INT(ts_frame_encode(&h, payload, 4, out, 20), 20);
    h.flags = 0; /* the last chunk without FLAG_LAST */
    TS_CHECK_EQ_INT(ts_frame_encode(&h, payload, 4, out, sizeof out), TS_ERR_FIELD);
    h = data_header(0, 1, 4);
    h.type = 9;
    TS_CHECK_EQ_INT(ts_frame_encode(&h, payload, 4, out, sizeof out), TS_ERR_FIELD);
}

/* Encode `h` + payload with no field checks (bytes a broken or hostile peer could send). */
static size_t raw_frame(uint8_t *out, uint8_t version, const ts_frame_header_t *h, uint8_t reserved,
                        const uint8_t *payload, size_t payload_len)
{
    out[0] = version;
    out[1] = h->type;
    out[2] = h->stage;
    out[3] = h->flags;
    out[4] = (uint8_t)(h->inference & 0xFF);
    out[5] = (uint8_t)(h->inference >> 8);
    out[6] = (uint8_t)(h->chunk & 0xFF);
    out[7] = (uint8_t)(h->chunk >> 8);
    out[8] = (uint8_t)(h->chunks & 0xFF);
    out[9] = (uint8_t)(h->chunks >> 8);
    out[10] = (uint8_t)(h->length & 0xFF);
    out[11] = (uint8_t)(h->length >> 8);
    out[12] = (uint8_t)h->exponent;
    out[13] = reserved;
    out[14] = 0;
    out[15] = 0;
    if (payload_len > 0) {
        memcpy(out + TS_HEADER_BYTES, payload, payload_len);
    }
    size_t len = TS_HEADER_BYTES + payload_len;
    uint16_t crc = ts_crc16_ccitt(out, len);
    out[14] = (uint8_t)(crc & 0xFF);
    out[15] = (uint8_t)(crc >> 8);
    return len;
}

static int decode_raw(uint8_t version, const ts_frame_header_t *h, uint8_t reserved,
                      const uint8_t *payload, size_t payload_len)
{
    uint8_t buf[128];
    size_t len = raw_frame(buf, version, h, reserved, payload, payload_len);
    ts_frame_header_t got;
    const uint8_t *body;
    return ts_frame_decode(buf, len, &got, &body);
}

static void test_decode_validation_order(void)
{
    uint8_t buf[64];
    uint8_t payload[4] = {1, 2, 3, 4};
    ts_frame_header_t h = data_header(0, 1, 4);
    size_t len = raw_frame(buf, 1, &h, 0, payload, 4);
    ts_frame_header_t got;
    const uint8_t *body;
    TS_CHECK_EQ_INT(ts_frame_decode(buf, len, &got, &body), TS_OK);
    for (size_t short_len = 0; short_len < TS_HEADER_BYTES; short_len++) {
        TS_CHECK_EQ_INT(ts_frame_decode(buf, short_len, &got, &body), TS_ERR_SHORT);
    }
    /* A bad version wins over a wrong length and a bad CRC. */
    buf[0] = 2;
    TS_CHECK_EQ_INT(ts_frame_decode(buf, len - 1, &got, &body), TS_ERR_VERSION);
    buf[0] = 1;
    /* A wrong length wins over a bad CRC: the truncated frame fails on length. */
    TS_CHECK_EQ_INT(ts_frame_decode(buf, len - 1, &got, &body), TS_ERR_LENGTH);
    TS_CHECK_EQ_INT(ts_frame_decode(buf, TS_HEADER_BYTES, &got, &body), TS_ERR_LENGTH);
    buf[len - 1] ^= 0x80u;
    TS_CHECK_EQ_INT(ts_frame_decode(buf, len, &got, &body), TS_ERR_CRC);
    /* An unknown type wins over inconsistent fields (reserved byte set). */
    h.type = 0;
    TS_CHECK_EQ_INT(decode_raw(1, &h, 1, payload, 4), TS_ERR_TYPE);
    h.type = 5;
    TS_CHECK_EQ_INT(decode_raw(1, &h, 0, payload, 4), TS_ERR_TYPE);
    h.type = TS_FRAME_DATA;
    TS_CHECK_EQ_INT(decode_raw(1, &h, 1, payload, 4), TS_ERR_FIELD);
    TS_CHECK_EQ_INT(decode_raw(0, &h, 0, payload, 4), TS_ERR_VERSION);
}

static void test_data_field_rules(void)
{
    uint8_t p[4] = {0};
    ts_frame_header_t h = data_header(2, 3, 4);
    TS_CHECK_EQ_INT(decode_raw(1, &h, 0, p, 4), TS_OK);
    h.flags = 0;
    TS_CHECK_EQ_INT(decode_raw(1, &h, 0, p, 4), TS_ERR_FIELD); /* last chunk, no FLAG_LAST */
    h = data_header(1, 3, 4);
    h.flags = TS_FLAG_LAST;
    TS_CHECK_EQ_INT(decode_raw(1, &h, 0, p, 4), TS_ERR_FIELD); /* FLAG_LAST too early */
    h = data_header(3, 3, 4);
    h.flags = TS_FLAG_LAST;
    TS_CHECK_EQ_INT(decode_raw(1, &h, 0, p, 4), TS_ERR_FIELD); /* chunk == chunks */
    h = data_header(0, 0, 4);
    TS_CHECK_EQ_INT(decode_raw(1, &h, 0, p, 4), TS_ERR_FIELD); /* chunks == 0 */
    h = data_header(0, 1, 0);
    TS_CHECK_EQ_INT(decode_raw(1, &h, 0, p, 0), TS_ERR_FIELD); /* empty */
    h = data_header(0, 1, 4);
    h.flags |= 0x04u;
    TS_CHECK_EQ_INT(decode_raw(1, &h, 0, p, 4), TS_ERR_FIELD); /* unknown flag */
    h = data_header(0xFFFEu, 0xFFFFu, 4);
    TS_CHECK_EQ_INT(decode_raw(1, &h, 0, p, 4), TS_OK);
    h.exponent = -128;
    h.flags |= TS_FLAG_RETRANSMISSION;
    TS_CHECK_EQ_INT(decode_raw(1, &h, 0, p, 4), TS_OK);
}

static void test_ack_nack_ctrl_field_rules(void)
{
    uint8_t bitmap[5] = {0xFF, 0, 0, 0x80, 0};
    ts_frame_header_t ack = {.type = TS_FRAME_ACK, .stage = 3, .chunk = 9, .chunks = 9,
                             .length = 4};
    TS_CHECK_EQ_INT(decode_raw(1, &ack, 0, bitmap, 4), TS_OK);
    ack.chunk = 10;
    TS_CHECK_EQ_INT(decode_raw(1, &ack, 0, bitmap, 4), TS_ERR_FIELD);
    ack.chunk = 0;
    ack.length = 5;
    TS_CHECK_EQ_INT(decode_raw(1, &ack, 0, bitmap, 5), TS_ERR_FIELD);
    ack.length = 4;
    ack.flags = TS_FLAG_LAST;
    TS_CHECK_EQ_INT(decode_raw(1, &ack, 0, bitmap, 4), TS_ERR_FIELD);
    ack.flags = 0;
    ack.exponent = 1;
    TS_CHECK_EQ_INT(decode_raw(1, &ack, 0, bitmap, 4), TS_ERR_FIELD);

    ts_frame_header_t nack = {.type = TS_FRAME_NACK, .stage = 3, .length = 1};
    for (int reason = 0; reason < 256; reason++) {
        uint8_t r = (uint8_t)reason;
        int expect = (reason >= TS_NACK_TENSOR_CRC && reason <= TS_NACK_TOO_LARGE) ? TS_OK
                                                                                  : TS_ERR_FIELD;
        TS_CHECK_EQ_INT(decode_raw(1, &nack, 0, &r, 1), expect);
    }
    nack.length = 0;
    TS_CHECK_EQ_INT(decode_raw(1, &nack, 0, NULL, 0), TS_ERR_FIELD);
    nack.length = 1;
    nack.flags = 2;
    uint8_t busy = TS_NACK_BUSY;
    TS_CHECK_EQ_INT(decode_raw(1, &nack, 0, &busy, 1), TS_ERR_FIELD);

    uint8_t ping[5] = {TS_CTRL_PING, 0x78, 0x56, 0x34, 0x12};
    ts_frame_header_t ctrl = {.type = TS_FRAME_CTRL, .stage = 1, .length = 5};
    TS_CHECK_EQ_INT(decode_raw(1, &ctrl, 0, ping, 5), TS_OK);
    ping[0] = TS_CTRL_PONG;
    TS_CHECK_EQ_INT(decode_raw(1, &ctrl, 0, ping, 5), TS_OK);
    ctrl.length = 4;
    TS_CHECK_EQ_INT(decode_raw(1, &ctrl, 0, ping, 4), TS_ERR_FIELD);
    ping[0] = TS_CTRL_ABORT;
    ctrl.length = 1;
    TS_CHECK_EQ_INT(decode_raw(1, &ctrl, 0, ping, 1), TS_OK);
    ctrl.length = 5;
    TS_CHECK_EQ_INT(decode_raw(1, &ctrl, 0, ping, 5), TS_ERR_FIELD);
    ctrl.length = 0;
    TS_CHECK_EQ_INT(decode_raw(1, &ctrl, 0, NULL, 0), TS_ERR_FIELD);
    ping[0] = 0;
    ctrl.length = 1;
    TS_CHECK_EQ_INT(decode_raw(1, &ctrl, 0, ping, 1), TS_ERR_FIELD);
    ping[0] = TS_CTRL_ABORT;
    ctrl.flags = 1;
    TS_CHECK_EQ_INT(decode_raw(1, &ctrl, 0, ping, 1), TS_ERR_FIELD);
}

static void test_decode_argument_errors(void)
{
    uint8_t buf[TS_HEADER_BYTES] = {0};
    ts_frame_header_t h;
    const uint8_t *body;
    TS_CHECK_EQ_INT(ts_frame_decode(NULL, 16, &h, &body), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_frame_decode(buf, 16, NULL, &body), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_frame_decode(buf, 16, &h, NULL), TS_ERR_ARG);
}

static void test_paper_frames(void)
{
    /* The paper's BLE write: 8-byte timer id + 252 int16 values = 512 bytes. */
    uint8_t values[504];
    for (size_t i = 0; i < sizeof values; i++) {
        values[i] = (uint8_t)i;
    }
    uint8_t out[512];
    TS_REQUIRE(ts_paper_encode(0x01020304u, 0xA0B0C0D0u, values, sizeof values, out, sizeof out) ==
               512);
    const uint8_t id[8] = {4, 3, 2, 1, 0xD0, 0xC0, 0xB0, 0xA0};
    TS_CHECK_EQ_MEM(out, id, 8);
    uint32_t inference = 0;
    uint32_t index = 0;
    const uint8_t *payload = NULL;
    size_t payload_len = 0;
    TS_REQUIRE(ts_paper_decode(out, 512, &inference, &index, &payload, &payload_len) == TS_OK);
    TS_CHECK_EQ_INT(inference, 0x01020304u);
    TS_CHECK_EQ_INT(index, 0xA0B0C0D0u);
    TS_CHECK(payload == out + 8);
    TS_CHECK_EQ_INT(payload_len, 504);
    TS_CHECK_EQ_INT(ts_paper_decode(out, 8, &inference, &index, &payload, &payload_len), TS_OK);
    TS_CHECK_EQ_INT(payload_len, 0);
    TS_CHECK_EQ_INT(ts_paper_decode(out, 7, &inference, &index, &payload, &payload_len),
                    TS_ERR_SHORT);
    TS_CHECK_EQ_INT(ts_paper_encode(1, 2, values, sizeof values, out, 511), TS_ERR_NOSPACE);
    TS_CHECK_EQ_INT(ts_paper_encode(1, 2, NULL, 0, out, 8), 8);
    TS_CHECK_EQ_INT(ts_paper_encode(1, 2, NULL, 1, out, 8), TS_ERR_ARG);
}

static void test_sizes(void)
{
    TS_CHECK_EQ_INT(ts_data_payload_bytes(512, 0), 504);
    TS_CHECK_EQ_INT(ts_data_payload_bytes(512, 1), 496);
    TS_CHECK_EQ_INT(ts_data_payload_bytes(514, 1), 498);
    TS_CHECK_EQ_INT(ts_data_payload_bytes(513, 0), 504);
    TS_CHECK_EQ_INT(ts_data_payload_bytes(250, 0), 242);
    TS_CHECK_EQ_INT(ts_data_payload_bytes(250, 1), 234);
    TS_CHECK_EQ_INT(ts_data_payload_bytes(1470, 1), 1454);
    TS_CHECK_EQ_INT(ts_data_payload_bytes(1440, 1), 1424);
    TS_CHECK_EQ_INT(ts_data_payload_bytes(10, 0), 2);
    TS_CHECK_EQ_INT(ts_data_payload_bytes(9, 0), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_data_payload_bytes(18, 1), 2);
    TS_CHECK_EQ_INT(ts_data_payload_bytes(17, 1), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_data_payload_bytes(0, 1), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_data_payload_bytes(200000, 1), 0xFFFE);

    TS_CHECK_EQ_INT(ts_frames_for_tensor(401408, 512, 0), 797);
    TS_CHECK_EQ_INT(ts_frames_for_tensor(401408, 512, 1), 810);
    TS_CHECK_EQ_INT(ts_frames_for_tensor(496, 512, 1), 2);
    TS_CHECK_EQ_INT(ts_frames_for_tensor(492, 512, 1), 1);
    TS_CHECK_EQ_INT(ts_frames_for_tensor(0, 512, 0), 1);
    TS_CHECK_EQ_INT(ts_frames_for_tensor(0, 512, 1), 1);
    TS_CHECK_EQ_INT(ts_frames_for_tensor(65535u * 2u - 4u, 18, 1), 65535);
    TS_CHECK_EQ_INT(ts_frames_for_tensor(65535u * 2u - 3u, 18, 1), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_frames_for_tensor(100, 9, 1), TS_ERR_ARG);
}

static void test_err_names(void)
{
    TS_CHECK_EQ_STR(ts_err_name(TS_OK), "ok");
    TS_CHECK_EQ_STR(ts_err_name(TS_ERR_SHORT), "short");
    TS_CHECK_EQ_STR(ts_err_name(TS_ERR_VERSION), "version");
    TS_CHECK_EQ_STR(ts_err_name(TS_ERR_LENGTH), "length");
    TS_CHECK_EQ_STR(ts_err_name(TS_ERR_CRC), "crc");
    TS_CHECK_EQ_STR(ts_err_name(TS_ERR_TYPE), "type");
    TS_CHECK_EQ_STR(ts_err_name(TS_ERR_FIELD), "field");
    TS_CHECK_EQ_STR(ts_err_name(TS_ERR_ARG), "arg");
    TS_CHECK_EQ_STR(ts_err_name(TS_ERR_NOSPACE), "nospace");
    TS_CHECK_EQ_STR(ts_err_name(TS_ERR_STATE), "state");
    TS_CHECK_EQ_STR(ts_err_name(TS_ERR_TIMEOUT), "timeout");
    TS_CHECK_EQ_STR(ts_err_name(-99), "unknown");
    TS_CHECK_EQ_STR(ts_err_name(5), "unknown");
}

int main(void)
{
    TS_RUN(test_crc_check_values);
    TS_RUN(test_crc_tables_match_the_bitwise_definition);
    TS_RUN(test_crc_update_continues_a_crc);
    TS_RUN(test_header_layout);
    TS_RUN(test_round_trip);
    TS_RUN(test_encode_in_place);
    TS_RUN(test_encode_errors);
    TS_RUN(test_decode_validation_order);
    TS_RUN(test_data_field_rules);
    TS_RUN(test_ack_nack_ctrl_field_rules);
    TS_RUN(test_decode_argument_errors);
    TS_RUN(test_paper_frames);
    TS_RUN(test_sizes);
    TS_RUN(test_err_names);
    return TS_RESULT();
}
