/* Convolutions with the Cortex-M4 DSP extension, bit-exact with the portable reference (integer sums do not
 * depend on order). conv2d (and fully connected) runs as a small matrix product: each output pixel's receptive
 * field is gathered once into int16 with the input offset added (SXTAB16), then two output channels x two pixels
 * are accumulated at a time with SMLAD (two 16-bit MACs per instruction) in dot_2x2.S, so each weight word and
 * each column word loaded feeds two SMLADs. Column words hold [x0 x2][x1 x3] per group of four, the order in
 * which SXTB16 unpacks a weight word, so weights stay int8 in flash and need no reordering. */
#include <arm_acle.h>
#include <stddef.h>
#include <stdint.h>

#include "ekd_kernels.h"

#define MAX_COLUMN 2048 /* receptive field elements; larger layers take the reference path */
#define MAX_CHANNELS 512

static inline uint32_t load32(const void *p) {
    uint32_t v;
    __builtin_memcpy(&v, p, 4); /* an unaligned LDR: allowed on Cortex-M4 */
    return v;
}

static inline uint32_t ror8(uint32_t v) { return (v >> 8) | (v << 24); }

/* floor((x * m + 2^30) / 2^31): TFLite's rounding doubling high multiply when m > 0 (all the compiler emits),
 * since its one saturation case (both INT32_MIN) cannot occur. One SMLAL and two bit operations. */
static inline int32_t high_mul(int32_t x, int32_t m) {
    uint32_t lo = 1u << 30;
    int32_t hi = 0;
    __asm__("smlal %0, %1, %2, %3" : "+r"(lo), "+r"(hi) : "r"(x), "r"(m));
    return (int32_t)((lo >> 31) | ((uint32_t)hi << 1));
}

/* TFLite's rounding divide by 2^right (half away from zero), branch-free. */
static inline int32_t divide_by_pot(int32_t x, int right, int32_t mask) {
    int32_t threshold = (mask >> 1) - (x >> 31); /* + 1 when x < 0 */
    return (x >> right) + ((x & mask) > threshold);
}

static inline int8_t clamp(int32_t v, int32_t lo, int32_t hi) { return (int8_t)(v < lo ? lo : (v > hi ? hi : v)); }

/* One pixel's receptive field as int16 (x + offset; 0 where the kernel overhangs the input). Group g of four
 * lands at int16 index 8g + 4 * which as [x0 x2 x1 x3] (the two pixels of a pair interleaved for one LDM); the
 * last depth % 4 elements go to `tail` in natural order. */
static void gather(const ekd_conv_params *p, const int8_t *in, uint32_t pixel, int which, int16_t *pairs,
                   int16_t *tail) {
    static const uint8_t lane[4] = {0, 2, 1, 3};
    const uint32_t whole = ((uint32_t)p->k_h * p->k_w * p->in_c) & ~3u;
    int oy = (int)(pixel / p->out_w), ox = (int)(pixel % p->out_w);
    int y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
    uint32_t offsets = (uint16_t)p->in_offset | ((uint32_t)(uint16_t)p->in_offset << 16);
    uint32_t e = 0; /* element index in the receptive field */
    for (int fy = 0; fy < p->k_h; fy++) {
        int iy = y0 + fy * p->dil_h;
        for (int fx = 0; fx < p->k_w; fx++) {
            int ix = x0 + fx * p->dil_w;
            int inside = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
            const int8_t *src = in + ((uint32_t)iy * p->in_w + ix) * p->in_c;
            if (p->in_c % 4 == 0) { /* whole groups: two words per four inputs, every fourth word pair */
                uint32_t *dst = (uint32_t *)(pairs + 2 * e) + 2 * which;
                const int8_t *end = src + p->in_c;
                if (!inside) {
                    for (int c = 0; c < p->in_c; c += 4, dst += 4) dst[0] = dst[1] = 0;
                } else {
                    for (; src < end; src += 4, dst += 4) {
                        uint32_t v = load32(src);
                        dst[0] = __sxtab16(offsets, v);
                        dst[1] = __sxtab16(offsets, ror8(v));
                    }
                }
                e += p->in_c;
                continue;
            }
            for (int c = 0; c < p->in_c; c++, e++) {
                int16_t value = (int16_t)(inside ? src[c] + p->in_offset : 0);
                if (e < whole) pairs[2 * (e & ~3u) + 4 * which + lane[e & 3u]] = value;
                else tail[e - whole] = value;
            }
        }
    }
}

void ekd_dot_2x2(const int8_t *wa, const int8_t *wb, const int32_t *columns, uint32_t groups, int32_t acc[4]);
void ekd_conv_channels(const int8_t *filter, const int32_t *columns, uint32_t groups, uint32_t depth, uint32_t pairs,
                       const int32_t *bias, int32_t *acc);

/* The output range; passed by value, since every int8 store may alias the parameter struct and reading it
 * through `p` would reload it after each store. */
typedef struct {
    int32_t out_offset, act_min, act_max;
} output_range;

/* Requantizes the accumulators of two pixels, laid out [channel][pixel], into both pixels' outputs. */
/* 2x * m rounded to its high word: with |x| < 2^30 (the compiler's `narrow`), exactly TFLite's rounding
 * doubling high multiply floor((x * m + 2^30) / 2^31), in one instruction. */
static inline int32_t high_mul_narrow(int32_t x, int32_t m) {
    int32_t high;
    __asm__("smmulr %0, %1, %2" : "=r"(high) : "r"(x * 2), "r"(m));
    return high;
}

__attribute__((noinline)) static void requantize_pair(const int32_t *acc, int channels, const int32_t *mult,
                                                     const int8_t *shift, output_range r, int narrow,
                                                     int8_t *out0, int8_t *out1) {
    for (int c = 0; c < channels; c++) {
        const int32_t m = mult[c], s = shift[c];
        const int left = s & ~(s >> 31), right = left - s;
        const int32_t mask = (int32_t)((1u << right) - 1u);
        const int32_t x0 = (int32_t)((uint32_t)acc[2 * c] << left), x1 = (int32_t)((uint32_t)acc[2 * c + 1] << left);
        int32_t v0, v1;
        if (narrow) {
            v0 = divide_by_pot(high_mul_narrow(x0, m), right, mask);
            v1 = divide_by_pot(high_mul_narrow(x1, m), right, mask);
        } else {
            v0 = divide_by_pot(high_mul(x0, m), right, mask);
            v1 = divide_by_pot(high_mul(x1, m), right, mask);
        }
        out0[c] = clamp(v0 + r.out_offset, r.act_min, r.act_max);
        out1[c] = clamp(v1 + r.out_offset, r.act_min, r.act_max);
    }
}

void ekd_conv2d(const ekd_conv_params *p, const int8_t *in, int8_t *out) {
    const uint32_t depth = (uint32_t)p->k_h * p->k_w * p->in_c, whole = depth & ~3u;
    const uint32_t pixels = (uint32_t)p->out_h * p->out_w;
    const int out_c = p->out_c;
    if (depth > MAX_COLUMN || out_c > MAX_CHANNELS) {
        ekd_conv2d_reference(p, in, out);
        return;
    }
    /* on the stack, so the measured stack peak includes them */
    int32_t columns[whole + 1];    /* two pixels' int16 pairs */
    int32_t acc[2 * out_c];        /* [channel][pixel], started at the bias */
    int16_t tails[2][4];
    const int32_t *bias = p->bias;
    const int8_t *filter = p->filter;
    const output_range range = {p->out_offset, p->act_min, p->act_max};
    for (uint32_t px = 0; px < pixels; px += 2) {
        const int second = px + 1 < pixels; /* an odd last pixel is gathered twice, its twin dropped */
        gather(p, in, px, 0, (int16_t *)columns, tails[0]);
        gather(p, in, second ? px + 1 : px, 1, (int16_t *)columns, tails[1]);
        ekd_conv_channels(filter, columns, whole / 4, depth, (uint32_t)out_c / 2, bias, acc);
        if (out_c % 2) { /* the odd last channel, paired with itself */
            const int oc = out_c - 1;
            int32_t *a = acc + 2 * oc, twin[4];
            twin[0] = twin[1] = twin[2] = twin[3] = bias ? bias[oc] : 0;
            ekd_dot_2x2(filter + (uint32_t)oc * depth, filter + (uint32_t)oc * depth, columns, whole / 4, twin);
            a[0] = twin[0], a[1] = twin[1];
        }
        for (uint32_t k = whole; k < depth; k++) { /* the tail, in natural order */
            for (int oc = 0; oc < out_c; oc++) {
                const int8_t w = filter[(uint32_t)oc * depth + k];
                acc[2 * oc] += w * tails[0][k - whole];
                acc[2 * oc + 1] += w * tails[1][k - whole];
            }
        }
        int8_t *o0 = out + px * out_c;
        /* an odd last pixel's twin holds the same values: writing them twice is harmless */
        requantize_pair(acc, out_c, p->mult, p->shift, range, p->narrow, o0, second ? o0 + out_c : o0);
    }
}

#define MAX_TAPS 64

/* Four output channels over a pixel's valid taps: SMLABB / SMLATT on 16-bit lanes. `broadcast`: one input
 * feeds all four (depth multiplier a multiple of 4); otherwise four neighbouring input channels. */
__attribute__((always_inline)) static inline void depthwise_taps(const int8_t *src, const int8_t *weights, const int32_t *tap_in,
                                  const int32_t *tap_w, int taps, uint32_t offsets, int32_t offset, int broadcast,
                                  int32_t acc[4]) {
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (int t = 0; t < taps; t++) {
        uint32_t x02, x13;
        if (broadcast) {
            x02 = x13 = (uint16_t)(src[tap_in[t]] + offset) * 0x10001u;
        } else {
            uint32_t v = load32(src + tap_in[t]);
            x02 = __sxtab16(offsets, v);
            x13 = __sxtab16(offsets, ror8(v));
        }
        uint32_t w = load32(weights + tap_w[t]);
        uint32_t w02 = __sxtb16(w), w13 = __sxtb16(ror8(w));
        a0 = __smlabb(x02, w02, a0);
        a2 = __smlatt(x02, w02, a2);
        a1 = __smlabb(x13, w13, a1);
        a3 = __smlatt(x13, w13, a3);
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

/* Depthwise: four output channels at a time, each tap's four inputs and four weights unpacked to 16-bit lanes
 * (SXTAB16 adds the input offset on the way) and multiplied lane by lane. The valid taps of a pixel are listed
 * once and reused by every channel group. Handles a depth multiplier of 1 or a multiple of 4; anything else
 * runs the reference. */
void ekd_depthwise_conv2d(const ekd_conv_params *p, const int8_t *in, int8_t *out) {
    const int out_c = p->out_c, in_c = p->in_c, dm = p->depth_mult;
    if (out_c % 4 || !(dm == 1 || dm % 4 == 0) || p->k_h * p->k_w > MAX_TAPS) {
        ekd_depthwise_conv2d_reference(p, in, out);
        return;
    }
    const int8_t *filter = p->filter, *shift = p->shift;
    const int32_t *bias = p->bias, *mult = p->mult;
    const int32_t offset = p->in_offset;
    const uint32_t offsets = (uint16_t)offset | ((uint32_t)(uint16_t)offset << 16);
    const output_range range = {p->out_offset, p->act_min, p->act_max};
    const int broadcast = dm != 1, narrow = p->narrow;
    int32_t tap_in[MAX_TAPS], tap_w[MAX_TAPS];
    for (int oy = 0; oy < p->out_h; oy++) {
        for (int ox = 0; ox < p->out_w; ox++) {
            const int y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
            int taps = 0;
            for (int fy = 0; fy < p->k_h; fy++) {
                const int iy = y0 + fy * p->dil_h;
                for (int fx = 0; fx < p->k_w; fx++) {
                    const int ix = x0 + fx * p->dil_w;
                    if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) continue;
                    tap_in[taps] = (iy * p->in_w + ix) * in_c;
                    tap_w[taps++] = (fy * p->k_w + fx) * out_c;
                }
            }
            int8_t *o = out + (oy * p->out_w + ox) * out_c;
            for (int oc = 0; oc < out_c; oc += 4) {
                int32_t acc[4];
                if (broadcast) /* two call sites: each inlined copy loses the branch */
                    depthwise_taps(in + oc / dm, filter + oc, tap_in, tap_w, taps, offsets, offset, 1, acc);
                else
                    depthwise_taps(in + oc, filter + oc, tap_in, tap_w, taps, offsets, offset, 0, acc);
                for (int k = 0; k < 4; k++) {
                    const int32_t sh = shift[oc + k], left = sh & ~(sh >> 31), right = left - sh;
                    const int32_t x = (int32_t)((uint32_t)(acc[k] + (bias ? bias[oc + k] : 0)) << left);
                    const int32_t high = narrow ? high_mul_narrow(x, mult[oc + k]) : high_mul(x, mult[oc + k]);
                    const int32_t value = divide_by_pot(high, right, (int32_t)((1u << right) - 1u));
                    o[oc + k] = clamp(value + range.out_offset, range.act_min, range.act_max);
                }
            }
        }
    }
}
