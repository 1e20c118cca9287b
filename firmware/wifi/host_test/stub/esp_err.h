/* Host stand-in for ESP-IDF's esp_err.h: the codes wifi_links.c uses. */
#pragma once
#include <stdio.h>
typedef int esp_err_t;
#define ESP_OK 0
#define ESP_FAIL -1
#define ESP_ERR_NO_MEM 0x101
#define ESP_ERR_INVALID_ARG 0x102
#define ESP_ERR_INVALID_STATE 0x103
#define ESP_ERR_INVALID_SIZE 0x104
#define ESP_ERR_NOT_FOUND 0x105
#define ESP_ERR_TIMEOUT 0x107
static inline const char *esp_err_to_name(esp_err_t err)
{
    return err == ESP_ERR_TIMEOUT ? "ESP_ERR_TIMEOUT" : err == ESP_FAIL ? "ESP_FAIL" : "ESP_ERR";
}
