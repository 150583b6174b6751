/* The MLPerf-Tiny-style serial command protocol (docs/mcu.md). */
#ifndef EKD_PROTOCOL_H
#define EKD_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define EKD_MAX_LINE 1024 /* longer commands are discarded up to the next '%' and answered with an error */

uint32_t ekd_crc32(const uint8_t *data, size_t length);
/* Feeds one received byte; runs a command when it ends with '%'. */
void ekd_protocol_byte(int byte);
/* Reads bytes from th_serial_read() and serves commands until the input closes. */
void ekd_main(void);

#endif
