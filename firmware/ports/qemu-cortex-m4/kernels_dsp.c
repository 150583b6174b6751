/* Convolutions with the Cortex-M4 DSP extension, bit-exact with the portable reference (integer sums do not
 * depend on order). conv2d (and fully connected) runs as a small matrix product: each output pixel's receptive
 * field is gathered once into an int16 column with the input offset added (SXTAB16), then two output channels x
 * two pixels are accumulated at a time with SMLAD (two 16-bit MACs per instruction), so each weight word and
 * each column word loaded feeds two SMLADs. Column words hold [x0 x2][x1 x3] per group of four, the order in
 * which SXTB16 unpacks a weight word, so weights stay int8 in flash and need no reordering. */
#include <arm_acle.h>
#include <stdint.h>

#include "ekd_kernels.h"

#define MAX_COLUMN 2048 /* receptive field elements; larger layers take the reference path */

static inline uint32_t load32(const void *p) {
    uint32_t v;
    __builtin_memcpy(&v, p, 4); /* an unaligned LDR: allowed on Cortex-M4 */
    return v;
}

static inline uint32_t ror8(uint32_t v) { return (v >> 8) | (v << 24); }

/* TFLite's MultiplyByQuantizedMultiplier for mult > 0 (all the compiler emits): the rounding doubling high
 * multiply is then exactly floor((a*b + 2^30) / 2^31), with no saturation case. */
static inline int32_t requantize(int32_t acc, int32_t mult, int shift) {
    int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    int64_t product = (int64_t)(int32_t)((uint32_t)acc << left) * mult;
    int32_t high = (int32_t)((product + (1ll << 30)) >> 31);
    int32_t mask = (int32_t)((1u << right) - 1u);
    int32_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
    return (high >> right) + ((high & mask) > threshold ? 1 : 0);
}

/* One pixel's receptive field as int16 (x + offset; 0 where the kernel overhangs the input), grouped by four. */
static void gather(const ekd_conv_params *p, const int8_t *in, uint32_t pixel, int16_t *column) {
    int oy = (int)(pixel / p->out_w), ox = (int)(pixel % p->out_w);
    int y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
    int16_t *dst = column;
    uint32_t offsets = (uint16_t)p->in_offset | ((uint32_t)(uint16_t)p->in_offset << 16);
    for (int fy = 0; fy < p->k_h; fy++) {
        int iy = y0 + fy * p->dil_h;
        for (int fx = 0; fx < p->k_w; fx++) {
            int ix = x0 + fx * p->dil_w;
            int inside = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
            const int8_t *src = in + ((uint32_t)iy * p->in_w + ix) * p->in_c;
            if (inside && p->in_c % 4 == 0) {
                for (int c = 0; c < p->in_c; c += 4, dst += 4) {
                    uint32_t v = load32(src + c);
                    uint32_t even = __sxtab16(offsets, v), odd = __sxtab16(offsets, ror8(v));
                    __builtin_memcpy(dst, &even, 4);
                    __builtin_memcpy(dst + 2, &odd, 4);
                }
            } else {
                for (int c = 0; c < p->in_c; c++) *dst++ = (int16_t)(inside ? src[c] + p->in_offset : 0);
            }
        }
    }
    if (p->in_c % 4) { /* generic fill left natural order: swap the middle two of each group of four */
        uint32_t groups = (uint32_t)(dst - column) / 4;
        for (uint32_t g = 0; g < groups; g++) {
            int16_t t = column[4 * g + 1];
            column[4 * g + 1] = column[4 * g + 2];
            column[4 * g + 2] = t;
        }
    }
}

static void finish(const ekd_conv_params *p, int oc, int32_t acc, int8_t *out) {
    if (p->bias) acc += p->bias[oc];
    *out = ekd_clamp8(requantize(acc, p->mult[oc], p->shift[oc]) + p->out_offset, p->act_min, p->act_max);
}

void ekd_conv2d(const ekd_conv_params *p, const int8_t *in, int8_t *out) {
    const uint32_t depth = (uint32_t)p->k_h * p->k_w * p->in_c, whole = depth & ~3u;
    const uint32_t pixels = (uint32_t)p->out_h * p->out_w;
    if (depth > MAX_COLUMN) {
        ekd_conv2d_reference(p, in, out);
        return;
    }
    const uint32_t stride = (depth + 3u) & ~3u;
    int16_t columns[2 * stride]; /* on the stack, so the measured stack peak includes it */
    for (uint32_t px = 0; px < pixels; px += 2) {
        const int second = px + 1 < pixels; /* an odd last pixel reuses the first column, result dropped */
        gather(p, in, px, columns);
        if (second) gather(p, in, px + 1, columns + stride);
        const int16_t *c0 = columns, *c1 = second ? columns + stride : columns;
        for (int oc = 0; oc < p->out_c; oc += 2) {
            const int pair = oc + 1 < p->out_c;
            const int8_t *wa = p->filter + (uint32_t)oc * depth, *wb = pair ? wa + depth : wa;
            int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
            for (uint32_t k = 0; k < whole; k += 4) {
                uint32_t wa_word = load32(wa + k), wb_word = load32(wb + k);
                uint32_t wa02 = __sxtb16(wa_word), wa13 = __sxtb16(ror8(wa_word));
                uint32_t wb02 = __sxtb16(wb_word), wb13 = __sxtb16(ror8(wb_word));
                uint32_t x02 = load32(c0 + k), x13 = load32(c0 + k + 2);
                uint32_t y02 = load32(c1 + k), y13 = load32(c1 + k + 2);
                a0 = __smlad(wa02, x02, a0);
                a0 = __smlad(wa13, x13, a0);
                a1 = __smlad(wa02, y02, a1);
                a1 = __smlad(wa13, y13, a1);
                b0 = __smlad(wb02, x02, b0);
                b0 = __smlad(wb13, x13, b0);
                b1 = __smlad(wb02, y02, b1);
                b1 = __smlad(wb13, y13, b1);
            }
            for (uint32_t k = whole; k < depth; k++) { /* the tail stays in natural order */
                a0 += wa[k] * c0[k];
                a1 += wa[k] * c1[k];
                b0 += wb[k] * c0[k];
                b1 += wb[k] * c1[k];
            }
            int8_t *o0 = out + px * p->out_c + oc;
            finish(p, oc, a0, o0);
            if (pair) finish(p, oc + 1, b0, o0 + 1);
            if (second) {
                finish(p, oc, a1, o0 + p->out_c);
                if (pair) finish(p, oc + 1, b1, o0 + p->out_c + 1);
            }
        }
    }
}

void ekd_depthwise_conv2d(const ekd_conv_params *p, const int8_t *in, int8_t *out) {
    ekd_depthwise_conv2d_reference(p, in, out);
}
