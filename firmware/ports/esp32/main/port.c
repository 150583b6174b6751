/* ESP32 / ESP32-S3 port (ESP-IDF): the protocol on UART0 at 115200 8N1, esp_timer for time (us), the
 * FreeRTOS stack high-water mark for memory. Everything else is the shared core. Untested here: no ESP32
 * emulator exists; build and flash steps are in README.md. */
#include "driver/uart.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "ekd_protocol.h"
#include "th_port.h"

#define EKD_UART UART_NUM_0
#define TASK_STACK_BYTES 16384

const char th_timestamp_unit[] = "us";
const char th_port_name[] = "edgekd-esp32";

void th_init(void) {
    uart_config_t config = {
        .baud_rate = 115200,
        .data_bits = UART_DATA_8_BITS,
        .parity = UART_PARITY_DISABLE,
        .stop_bits = UART_STOP_BITS_1,
        .flow_ctrl = UART_HW_FLOWCTRL_DISABLE,
    };
    uart_driver_install(EKD_UART, 4096, 4096, 0, NULL, 0);
    uart_param_config(EKD_UART, &config);
}

int th_serial_read(void) {
    uint8_t byte;
    while (uart_read_bytes(EKD_UART, &byte, 1, portMAX_DELAY) != 1) {
    }
    return byte;
}

void th_serial_write(const char *data, size_t length) { uart_write_bytes(EKD_UART, data, length); }

uint64_t th_timestamp(void) { return (uint64_t)esp_timer_get_time(); }

uint32_t th_stack_used(void) {
    return TASK_STACK_BYTES - uxTaskGetStackHighWaterMark(NULL) * sizeof(StackType_t);
}

static void protocol_task(void *unused) {
    (void)unused;
    th_init();
    ekd_main();
    vTaskDelete(NULL);
}

void app_main(void) { xTaskCreate(protocol_task, "edgekd", TASK_STACK_BYTES / sizeof(StackType_t), NULL, 5, NULL); }
