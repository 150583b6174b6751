/* Command parser and handlers. Every command ends with '%' and is answered by zero or more `m-...`
 * lines then `m-ready`; errors are `m-error-<reason>` lines. Bad bytes, over-long lines and bad CRCs
 * never leave state behind: the parser starts afresh after every '%'. */
#include "ekd_protocol.h"

#include <string.h>

#include "ekd_model.h"
#include "th_port.h"

#define MAX_LAYERS 128

static char line[EKD_MAX_LINE + 1];
static size_t line_length;
static int line_overflow, line_bad_byte;
static uint32_t upload_expected, upload_received;
static uint64_t layer_ticks[MAX_LAYERS];

uint32_t ekd_crc32(const uint8_t *data, size_t length) { /* CRC-32 (IEEE, as zlib.crc32) */
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < length; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void put(const char *s) { th_serial_write(s, strlen(s)); }

static void put_u64(uint64_t v) {
    char digits[21];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    char text[21];
    for (int i = 0; i < n; i++) text[i] = digits[n - 1 - i];
    th_serial_write(text, (size_t)n);
}

static void put_kv(const char *key, uint64_t value) {
    put(key);
    put_u64(value);
    put("\r\n");
}

static void reply_error(const char *reason) {
    put("m-error-");
    put(reason);
    put("\r\n");
}

#define FAIL(reason)        \
    do {                    \
        reply_error(reason); \
        return;             \
    } while (0)

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Parses a decimal number; returns the next position or NULL when there is none. */
static const char *parse_u32(const char *s, uint32_t *value) {
    uint64_t v = 0;
    const char *start = s;
    while (*s >= '0' && *s <= '9' && v <= 0xFFFFFFFFu) v = v * 10 + (uint64_t)(*s++ - '0');
    if (s == start || v > 0xFFFFFFFFu) return NULL;
    *value = (uint32_t)v;
    return s;
}

static void command_profile(void) {
    put("m-profile-model-");
    put(ekd_model.name);
    put("\r\nm-profile-unit-");
    put(th_timestamp_unit);
    put("\r\n");
    put_kv("m-profile-input-", ekd_model.input_bytes);
    put_kv("m-profile-outputs-", ekd_model.n_outputs);
    put_kv("m-profile-layers-", ekd_model.n_layers);
    put_kv("m-profile-arena-", ekd_model.arena_bytes);
    put_kv("m-profile-stack-", th_stack_used());
}

/* `db load N`: expect N input bytes; `db HEX CRC`: a chunk and the CRC-32 of its bytes, in hex. */
static void command_db(const char *args) {
    uint32_t n;
    if (strncmp(args, "load ", 5) == 0) {
        const char *end = parse_u32(args + 5, &n);
        if (!end || *end) FAIL("bad-length");
        if (n != ekd_model.input_bytes) FAIL("size-mismatch");
        upload_expected = n;
        upload_received = 0;
        put_kv("m-load-", n);
        return;
    }
    const char *space = strchr(args, ' ');
    size_t hex_length = space ? (size_t)(space - args) : 0;
    if (!space || hex_length == 0 || hex_length % 2 || strlen(space + 1) != 8) FAIL("bad-chunk");
    if (upload_received + hex_length / 2 > upload_expected) FAIL("overflow");
    uint32_t crc = 0;
    for (int i = 0; i < 8; i++) {
        int v = hex_value(space[1 + i]);
        if (v < 0) FAIL("bad-chunk");
        crc = (crc << 4) | (uint32_t)v;
    }
    uint8_t *dst = (uint8_t *)ekd_model.input + upload_received;
    static uint8_t chunk[EKD_MAX_LINE / 2];
    for (size_t i = 0; i < hex_length / 2; i++) {
        int hi = hex_value(args[2 * i]), lo = hex_value(args[2 * i + 1]);
        if (hi < 0 || lo < 0) FAIL("bad-chunk");
        chunk[i] = (uint8_t)(hi << 4 | lo);
    }
    if (ekd_crc32(chunk, hex_length / 2) != crc) FAIL("crc");
    memcpy(dst, chunk, hex_length / 2);
    upload_received += (uint32_t)(hex_length / 2);
    put_kv("m-db-", upload_received);
}

/* `infer N W`: W warm-up runs, then N timed runs; per-run laps and per-layer totals of the timed runs. */
static void command_infer(const char *args) {
    uint32_t runs, warmup;
    const char *end = parse_u32(args, &runs);
    if (!end || *end != ' ' || !(end = parse_u32(end + 1, &warmup)) || *end || runs == 0)
        FAIL("bad-arguments");
    if (upload_received != ekd_model.input_bytes) FAIL("no-input");
    for (uint32_t i = 0; i < warmup; i++) ekd_model_run(NULL);
    uint32_t layers = ekd_model.n_layers < MAX_LAYERS ? ekd_model.n_layers : MAX_LAYERS;
    memset(layer_ticks, 0, sizeof layer_ticks);
    for (uint32_t i = 0; i < runs; i++) {
        uint64_t start = th_timestamp();
        ekd_model_run(ekd_model.n_layers <= MAX_LAYERS ? layer_ticks : NULL);
        uint64_t lap = th_timestamp() - start;
        put("m-lap-");
        put(th_timestamp_unit);
        put_kv("-", lap);
    }
    for (uint32_t k = 0; k < layers; k++) {
        put("m-layer-");
        put_u64(k);
        put_kv("-", layer_ticks[k]);
    }
}

static void command_results(void) {
    static const char digits[] = "0123456789abcdef";
    for (uint32_t k = 0; k < ekd_model.n_outputs; k++) {
        put("m-results-");
        put_u64(k);
        put("-");
        const uint8_t *data = (const uint8_t *)ekd_model.outputs[k];
        for (uint32_t i = 0; i < ekd_model.output_bytes[k]; i++) {
            char pair[2] = {digits[data[i] >> 4], digits[data[i] & 15]};
            th_serial_write(pair, 2);
        }
        put("\r\n");
    }
}

static void run_command(const char *cmd) {
    if (strcmp(cmd, "name") == 0) {
        put("m-name-");
        put(th_port_name);
        put("\r\n");
    } else if (strcmp(cmd, "profile") == 0) {
        command_profile();
    } else if (strncmp(cmd, "db ", 3) == 0) {
        command_db(cmd + 3);
    } else if (strncmp(cmd, "infer ", 6) == 0) {
        command_infer(cmd + 6);
    } else if (strcmp(cmd, "results") == 0) {
        command_results();
    } else {
        reply_error("unknown-command");
    }
}

void ekd_protocol_byte(int byte) {
    if (byte == '%') {
        line[line_length] = '\0';
        if (line_overflow) reply_error("too-long");
        else if (line_bad_byte) reply_error("bad-byte");
        else run_command(line);
        put("m-ready\r\n");
        line_length = 0;
        line_overflow = line_bad_byte = 0;
        return;
    }
    if (line_length == 0 && (byte == '\r' || byte == '\n' || byte == ' ')) return; /* between commands */
    if (byte < 0x20 || byte > 0x7e) {
        line_bad_byte = 1;
        return;
    }
    if (line_length >= EKD_MAX_LINE) {
        line_overflow = 1;
        return;
    }
    line[line_length++] = (char)byte;
}

void ekd_main(void) {
    put("m-boot\r\nm-ready\r\n");
    for (;;) {
        int byte = th_serial_read();
        if (byte < 0) return;
        ekd_protocol_byte(byte);
    }
}
