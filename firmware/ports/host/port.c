/* Host port (gcc): the protocol on stdin/stdout, for tests and fuzzing. Time in nanoseconds. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <time.h>

#include "ekd_protocol.h"
#include "th_port.h"

const char th_timestamp_unit[] = "ns";
const char th_port_name[] = "edgekd-host";

void th_init(void) { setvbuf(stdout, NULL, _IOFBF, 1 << 16); }

int th_serial_read(void) {
    fflush(stdout); /* a reader only blocks once everything written so far is out */
    int c = getchar();
    return c == EOF ? -1 : c;
}

void th_serial_write(const char *data, size_t length) { fwrite(data, 1, length, stdout); }

uint64_t th_timestamp(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

uint32_t th_stack_used(void) { return 0; }

int main(void) {
    th_init();
    ekd_main();
    fflush(stdout);
    return 0;
}
