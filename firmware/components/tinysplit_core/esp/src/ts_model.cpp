/*
 * ESP-DL 3.x slice runner. API checked against esp-dl v3.0.0 and v3.3.9:
 * dl/model/include/dl_model_base.hpp (Model(label, location), get_inputs(), get_outputs(),
 * run(runtime_mode_t)) and dl/tensor/include/dl_tensor_base.hpp (TensorBase::dtype, exponent,
 * get_size(), get_element_ptr<T>()). get_input()/get_output() are avoided: v3.0.0 lacks them.
 */
#include <new>
#include <string.h>

#include "dl_model_base.hpp"
#include "esp_log.h"
#include "esp_partition.h"
#include "ts_frame.h"
#include "ts_model.h"
#include "ts_stage.h"

static const char *TAG = "ts_model";

static dl::Model *s_model;
static dl::TensorBase *s_input;
static dl::TensorBase *s_output;

/* The tensor's exponent as an int: a plain int in v3.0-3.3.8, an ExponentInfo convertible to
 * int (per-tensor value) from v3.3.9. */
static int exponent_of(dl::TensorBase *t)
{
    return static_cast<int>(t->exponent);
}

static esp_err_t check_tensor(const char *what, const std::string &name, dl::TensorBase *t)
{
    if (t == nullptr || t->dtype != dl::DATA_TYPE_INT16) {
        ESP_LOGE(TAG, "%s %s is not int16 (export the slice with num_of_bits=16)", what,
                 name.c_str());
        return ESP_ERR_NOT_SUPPORTED;
    }
    int e = exponent_of(t);
    if (e < INT8_MIN || e > INT8_MAX || t->get_size() <= 0) {
        ESP_LOGE(TAG, "%s %s: exponent %d or size %d out of range", what, name.c_str(), e,
                 t->get_size());
        return ESP_ERR_NOT_SUPPORTED;
    }
    return ESP_OK;
}

esp_err_t ts_model_load(const char *partition_label, ts_model_info_t *out_info)
{
    if (s_model != nullptr) {
        return ESP_ERR_INVALID_STATE;
    }
    /* ESP-DL looks the label up the same way (fbs_loader.cpp); checking first gives a clear error
     * for a partition table without the model partition. */
    if (esp_partition_find_first(ESP_PARTITION_TYPE_DATA, ESP_PARTITION_SUBTYPE_ANY,
                                 partition_label) == nullptr) {
        ESP_LOGE(TAG, "no data partition \"%s\" in the partition table", partition_label);
        return ESP_ERR_NOT_FOUND;
    }
    dl::Model *model =
        new (std::nothrow) dl::Model(partition_label, fbs::MODEL_LOCATION_IN_FLASH_PARTITION);
    if (model == nullptr) {
        return ESP_ERR_NO_MEM;
    }
    /* The constructor reports no error: a model that failed to load has no inputs. */
    std::map<std::string, dl::TensorBase *> &inputs = model->get_inputs();
    std::map<std::string, dl::TensorBase *> &outputs = model->get_outputs();
    if (inputs.size() != 1 || outputs.size() != 1) {
        ESP_LOGE(TAG, "partition \"%s\": %u inputs and %u outputs (a slice has one of each)",
                 partition_label, (unsigned)inputs.size(), (unsigned)outputs.size());
        delete model;
        return inputs.empty() ? ESP_ERR_NOT_FOUND : ESP_ERR_NOT_SUPPORTED;
    }
    esp_err_t err = check_tensor("input", inputs.begin()->first, inputs.begin()->second);
    if (err == ESP_OK) {
        err = check_tensor("output", outputs.begin()->first, outputs.begin()->second);
    }
    if (err != ESP_OK) {
        delete model;
        return err;
    }
    s_model = model;
    s_input = inputs.begin()->second;
    s_output = outputs.begin()->second;
    out_info->input_values = (size_t)s_input->get_size();
    out_info->input_exponent = (int8_t)exponent_of(s_input);
    out_info->output_values = (size_t)s_output->get_size();
    out_info->output_exponent = (int8_t)exponent_of(s_output);
    ESP_LOGI(TAG, "slice \"%s\": input %u values exp %d, output %u values exp %d",
             partition_label, (unsigned)out_info->input_values, out_info->input_exponent,
             (unsigned)out_info->output_values, out_info->output_exponent);
    return ESP_OK;
}

int ts_model_infer(const int16_t *in, size_t in_values, int8_t in_exponent, int16_t *out,
                   size_t out_capacity, size_t *out_values, int8_t *out_exponent)
{
    if (s_model == nullptr) {
        return TS_ERR_STATE;
    }
    size_t n_in = (size_t)s_input->get_size();
    if (in_values != n_in) {
        return TS_ERR_ARG;
    }
    /* get_element_ptr, not data: it is the pointer the modules read (a preload cache if any). */
    int16_t *dst = s_input->get_element_ptr<int16_t>();
    memcpy(dst, in, n_in * sizeof(int16_t));
    int8_t model_exponent = (int8_t)exponent_of(s_input);
    if (in_exponent != model_exponent) {
        ts_requantize(dst, n_in, in_exponent, model_exponent);
    }
    s_model->run(dl::RUNTIME_MODE_SINGLE_CORE);
    size_t n_out = (size_t)s_output->get_size();
    if (n_out > out_capacity) {
        return TS_ERR_NOSPACE;
    }
    memcpy(out, s_output->get_element_ptr<int16_t>(), n_out * sizeof(int16_t));
    *out_values = n_out;
    *out_exponent = (int8_t)exponent_of(s_output);
    return TS_OK;
}
