/*
 * The board's model slice on ESP-DL 3.x behind a C API (ts_model.cpp): one int16 input tensor,
 * one int16 output tensor, NHWC, real value = v * 2^exponent.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Shape facts of the loaded slice. */
typedef struct {
    size_t input_values;    /* int16 values of the input tensor */
    int8_t input_exponent;
    size_t output_values;   /* int16 values of the output tensor */
    int8_t output_exponent;
} ts_model_info_t;

/** Load the .espdl slice from the data partition `partition_label` and check that it has
 *  exactly one int16 input and one int16 output. Call once. */
esp_err_t ts_model_load(const char *partition_label, ts_model_info_t *out_info);

/** Run the slice: copy `in` (in_values int16 at in_exponent; requantized when the model's input
 *  exponent differs) into the model input, run it on one core, copy the output into
 *  out[out_capacity]. Returns TS_OK, TS_ERR_STATE (no model), TS_ERR_ARG (wrong input size) or
 *  TS_ERR_NOSPACE (output larger than out_capacity). Same shape as ts_stage_ops_t.infer. */
int ts_model_infer(const int16_t *in, size_t in_values, int8_t in_exponent, int16_t *out,
                   size_t out_capacity, size_t *out_values, int8_t *out_exponent);

#ifdef __cplusplus
}
#endif
