/* Port hooks: the only functions the core calls that touch hardware (MLPerf Tiny's th_* style).
 * Each port (host, qemu-cortex-m4, esp32) implements them in one file. */
#ifndef TH_PORT_H
#define TH_PORT_H

#include <stddef.h>
#include <stdint.h>

void th_init(void);
/* Blocks until a byte arrives; returns it (0..255), or -1 when the input is closed (host port only). */
int th_serial_read(void);
void th_serial_write(const char *data, size_t length);
/* A monotonic counter in th_timestamp_unit (e.g. "instr" under QEMU -icount, "us", "ns"). */
uint64_t th_timestamp(void);
extern const char th_timestamp_unit[];
extern const char th_port_name[];
/* Peak stack bytes used so far (0 when the port cannot tell). */
uint32_t th_stack_used(void);

#endif
