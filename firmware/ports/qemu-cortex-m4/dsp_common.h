/* What the Cortex-M4 DSP kernels share: unaligned word access and the fast requantization. */
#ifndef EKD_DSP_COMMON_H
#define EKD_DSP_COMMON_H

#include <arm_acle.h>
#include <stdint.h>

#include "ekd_kernels.h"

static inline uint32_t load32(const void *p) {
    uint32_t v;
    __builtin_memcpy(&v, p, 4); /* an unaligned LDR: allowed on Cortex-M4 */
    return v;
}

static inline void store32(void *p, uint32_t v) { __builtin_memcpy(p, &v, 4); }

/* Two int16 lanes in one word: lo in bits 0-15, hi in 16-31. */
static inline uint32_t pair16(int32_t lo, int32_t hi) { return (uint16_t)lo | ((uint32_t)(uint16_t)hi << 16); }

static inline uint32_t ror8(uint32_t v) { return (v >> 8) | (v << 24); }

/* gcc does not form these from shifts and masks, so they are spelled out. */
static inline uint32_t pack_low_halves(uint32_t a, uint32_t b) { /* (a & 0xFFFF) | (b << 16) */
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

static inline uint32_t pack_high_halves(uint32_t a, uint32_t b) { /* (a & 0xFFFF0000) | (b >> 16) */
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

static inline uint32_t sxtab16_ror8(uint32_t offsets, uint32_t v) { /* __sxtab16(offsets, ror8(v)) */
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(offsets), "r"(v));
    return r;
}

/* TFLite's requantization, out = clamp(RoundingDivideByPOT(SRDHM(acc, m), r) + zp), in four instructions for
 * a doubled accumulator x2 = 2 * acc. SRDHM(acc, m) = floor((x2 * m + 2^31) / 2^32), and the rounding divide
 * (half away from zero) is floor((y + 2^(r-1) - [y < 0]) / 2^r); the two floors nest into one (zero point
 * included, before the clamp):
 *     out = floor((x2 * m + 2^31 + 2^32 * (2^(r-1) + zp * 2^r - [acc < 0])) / 2^(32 + r))
 * which is SMMLAR (x2 * m + 2^31 plus a high word) then ASR r, and SSAT 8. [y < 0] differs from [acc < 0]
 * only for acc = -1 with m = 2^30, where both give the same result. Valid for 1 <= r <= 22 and |x2| < 2^31
 * (the compiler's `narrow` proof): the high word stays within 32 bits. tests/test_mcu_kernels.py checks the
 * closed form against TFLite's steps (ties included); the QEMU tests check every layer against LiteRT. */
typedef struct {
    int32_t mult, high, right;
} fast_rq;

#define FAST_RQ_MAX_RIGHT 22

/* The closed form's high word for a right shift r >= 1 and zero point zp: 2^(r-1) + zp * 2^r. */
static inline int32_t closed_form_high(int right, int32_t zp) {
    return (int32_t)((1u << (right - 1)) + (uint32_t)zp * (1u << right));
}

/* The table for output channels [first, first + count); 0 when the fast path does not apply. */
static inline int fast_rq_prepare(const ekd_conv_params *p, int first, int count, fast_rq *table) {
    if (!p->narrow || p->single_round) return 0;
    for (int c = 0; c < count; c++) {
        const int right = -p->shift[first + c];
        if (right < 1 || right > FAST_RQ_MAX_RIGHT) return 0;
        table[c].mult = p->mult[first + c];
        table[c].right = right;
        table[c].high = closed_form_high(right, p->out_offset);
    }
    return 1;
}

static inline int32_t fast_requantize(int32_t twice_acc, const fast_rq *q) {
    int32_t high;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(high) : "r"(twice_acc), "r"(q->mult), "r"(q->high + (twice_acc >> 31)));
    return __ssat(high >> q->right, 8);
}

/* TFLite's MultiplyByQuantizedMultiplier step by step, for any layer: the rounding doubling high multiply
 * floor((x * m + 2^30) / 2^31) with one SMLAL (m > 0, so its saturation case cannot occur), then the rounding
 * divide by 2^right, half away from zero, branch-free. */
static inline int32_t exact_requantize(int32_t acc, int32_t mult, int shift) {
    const int left = shift > 0 ? shift : 0, right = left - shift;
    uint32_t lo = 1u << 30;
    int32_t hi = 0;
    __asm__("smlal %0, %1, %2, %3" : "+r"(lo), "+r"(hi) : "r"((int32_t)((uint32_t)acc << left)), "r"(mult));
    const int32_t x = (int32_t)((lo >> 31) | ((uint32_t)hi << 1));
    const int32_t mask = (int32_t)((1u << right) - 1u), threshold = (mask >> 1) - (x >> 31);
    return (x >> right) + ((x & mask) > threshold);
}

/* Fused activations narrower than int8 (ReLU with a zero point above -128, say) clamp after. */
static inline int8_t clamp_act(int32_t v, int32_t lo, int32_t hi) { return (int8_t)(v < lo ? lo : (v > hi ? hi : v)); }

#endif
