/* Convolutions with the Cortex-M4 DSP extension, bit-exact with the portable reference (integer sums do not
 * depend on order). conv2d (and fully connected) runs as a small matrix product: each output pixel's receptive
 * field is gathered once into int16 with the input offset added (SXTAB16), then two output channels x two pixels
 * are accumulated at a time with SMLAD (two 16-bit MACs per instruction) in dot_2x2.S, so each weight word and
 * each column word loaded feeds two SMLADs. Column words hold [x0 x2][x1 x3] per group of four, the order in
 * which SXTB16 unpacks an int8 weight word. Layers the compiler widened (whole groups of four, the full int8
 * range, the closed form's shifts: filter16, int16 weights in the loop's order) gather doubled columns and
 * requantize inside the SMLAD loop (ekd_conv_wide; a stride-1 1x1 conv whole in ekd_pointwise_wide); the rest
 * read int8 weights, accumulate first and requantize after. */
#include <stddef.h>
#include <stdint.h>

#include "dsp_common.h"
#include "ekd_kernels.h"

#define MAX_COLUMN 2048 /* receptive field elements; larger layers take the reference path */
#define MAX_CHANNELS 512

/* One pixel's receptive field as int16 (x + offset; 0 where the kernel overhangs the input). Group g of four
 * lands at int16 index 8g + 4 * which as [x0 x2 x1 x3] (the two pixels of a pair interleaved for one LDM); the
 * last depth % 4 elements go to `tail` in natural order. */
static void gather(const ekd_conv_params *p, const int8_t *in, uint32_t pixel, int which, int twice, int16_t *pairs,
                   int16_t *tail) {
    static const uint8_t lane[4] = {0, 2, 1, 3};
    const uint32_t whole = ((uint32_t)p->k_h * p->k_w * p->in_c) & ~3u;
    int oy = (int)(pixel / p->out_w), ox = (int)(pixel % p->out_w);
    int y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
    uint32_t offsets = pair16(p->in_offset, p->in_offset);
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
                        uint32_t v = load32(src), even = __sxtab16(offsets, v), odd = __sxtab16(offsets, ror8(v));
                        dst[0] = twice ? (uint32_t)__sadd16(even, even) : even;
                        dst[1] = twice ? (uint32_t)__sadd16(odd, odd) : odd;
                    }
                }
                e += p->in_c;
                continue;
            }
            for (int c = 0; c < p->in_c; c++, e++) {
                int16_t value = (int16_t)(inside ? (src[c] + p->in_offset) * (1 + twice) : 0);
                if (e < whole) pairs[2 * (e & ~3u) + 4 * which + lane[e & 3u]] = value;
                else tail[e - whole] = value;
            }
        }
    }
}

/* gather() for a stride-1 1x1 conv: two pixels' inputs, four at a time, straight into the column layout
 * (doubled for ekd_conv_wide). */
static void gather_pointwise(const int8_t *pixel0, const int8_t *pixel1, uint32_t groups, uint32_t offsets,
                             int twice, int32_t *columns) {
    uint32_t *dst = (uint32_t *)columns;
    if (twice) {
        for (uint32_t g = 0; g < groups; g++, pixel0 += 4, pixel1 += 4, dst += 4) {
            const uint32_t a = load32(pixel0), b = load32(pixel1);
            const uint32_t a02 = __sxtab16(offsets, a), a13 = __sxtab16(offsets, ror8(a));
            const uint32_t b02 = __sxtab16(offsets, b), b13 = __sxtab16(offsets, ror8(b));
            dst[0] = __sadd16(a02, a02), dst[1] = __sadd16(a13, a13);
            dst[2] = __sadd16(b02, b02), dst[3] = __sadd16(b13, b13);
        }
        return;
    }
    for (uint32_t g = 0; g < groups; g++, pixel0 += 4, pixel1 += 4, dst += 4) {
        const uint32_t a = load32(pixel0), b = load32(pixel1);
        dst[0] = __sxtab16(offsets, a);
        dst[1] = __sxtab16(offsets, ror8(a));
        dst[2] = __sxtab16(offsets, b);
        dst[3] = __sxtab16(offsets, ror8(b));
    }
}

void ekd_dot_2x2(const int8_t *wa, const int8_t *wb, const int32_t *columns, uint32_t groups, int32_t acc[4]);
void ekd_conv_channels(const int8_t *filter, const int32_t *columns, uint32_t groups, uint32_t depth, uint32_t pairs,
                       const int32_t *bias, int32_t *acc);

void ekd_conv_requant(const int32_t *acc, uint32_t channels, const fast_rq *table, int8_t *out0, int8_t *out1);
typedef void wide_kernel(const int16_t *filter16, const int32_t *columns, uint32_t groups, const int32_t *table,
                         uint32_t pairs, int8_t *out, uint32_t step);
wide_kernel ekd_conv_wide, ekd_conv_wide2; /* any number of groups; an even number, two per loop */

/* ekd_pointwise_wide's job (read in this order). */
typedef struct {
    int32_t *columns;
    int8_t *out;
    uint32_t out_c;
    const int32_t *table_end;
    const int8_t *in, *in_end; /* an even number of pixels */
    uint32_t in_c, offsets, groups;
    const int16_t *filter16;
    const int32_t *table;
    uint32_t unroll; /* 2: an even number of groups */
} pointwise_job;

void ekd_pointwise_wide(const pointwise_job *job);

#define FUSED_WORDS(out_c) (10 * (((out_c) + 1) / 2))

/* ekd_conv_wide's table (dot_2x2.S): per pair of channels their doubled biases {a, a, b, b}, then {mult, high,
 * right} of a and of b; a block for an odd last channel too. 0 when the fast requantization does not apply. */
static int fused_table(const ekd_conv_params *p, int32_t *table) {
    const int out_c = p->out_c;
    for (int c = 0; c < out_c; c += 2, table += 10) {
        for (int k = 0; k < 2; k++) table[2 * k] = table[2 * k + 1] = c + k < out_c && p->bias ? 2 * p->bias[c + k] : 0;
        if (!fast_rq_prepare(p, c, c + 1 < out_c ? 2 : 1, (fast_rq *)(table + 4))) return 0;
    }
    return 1;
}

/* A channel's doubled bias and {mult, high, right} in the fused table. */
static inline int32_t fused_bias(const int32_t *table, int c) { return table[10 * (c / 2) + 2 * (c % 2)]; }
static inline const fast_rq *fused_rq(const int32_t *table, int c) {
    return (const fast_rq *)(table + 10 * (c / 2) + 4 + 3 * (c % 2));
}

/* A widened layer's odd last channel at both pixels (its groups follow the pairs' in filter16). */
static void odd_channel_wide(const int16_t *w, const int32_t *columns, uint32_t groups, int32_t bias2, int32_t acc[2]) {
    int32_t a0 = bias2, a1 = bias2;
    for (uint32_t g = 0; g < groups; g++, w += 4, columns += 4) {
        const int32_t w02 = (int32_t)load32(w), w13 = (int32_t)load32(w + 2);
        a0 = __smlad(w02, columns[0], a0);
        a0 = __smlad(w13, columns[1], a0);
        a1 = __smlad(w02, columns[2], a1);
        a1 = __smlad(w13, columns[3], a1);
    }
    acc[0] = a0, acc[1] = a1;
}

/* Requantizes the accumulators of two pixels, laid out [channel][pixel], into both pixels' outputs: the fast
 * path when the layer has its table (dsp_common.h; in dot_2x2.S for the full int8 range), else TFLite's
 * arithmetic step by step. */
__attribute__((noinline)) static void requantize_pair(const int32_t *acc, const ekd_conv_params *p,
                                                     const fast_rq *table, int8_t *out0, int8_t *out1) {
    const int channels = p->out_c;
    const int32_t lo = p->act_min, hi = p->act_max;
    if (table && lo == -128 && hi == 127) {
        ekd_conv_requant(acc, (uint32_t)channels, table, out0, out1);
        return;
    }
    const int32_t zp = p->out_offset;
    for (int c = 0; c < channels; c++) {
        if (table) {
            out0[c] = clamp_act(fast_requantize(acc[2 * c] * 2, &table[c]), lo, hi);
            out1[c] = clamp_act(fast_requantize(acc[2 * c + 1] * 2, &table[c]), lo, hi);
        } else {
            const int32_t m = p->mult[c], s = p->shift[c];
            const int32_t v0 = p->single_round ? ekd_requantize_single(acc[2 * c], m, s) : exact_requantize(acc[2 * c], m, s);
            const int32_t v1 =
                p->single_round ? ekd_requantize_single(acc[2 * c + 1], m, s) : exact_requantize(acc[2 * c + 1], m, s);
            out0[c] = clamp_act(v0 + zp, lo, hi);
            out1[c] = clamp_act(v1 + zp, lo, hi);
        }
    }
}

/* Two pixels of a widened layer from their doubled columns: every channel pair with the requantization in the
 * loop (dot_2x2.S), then an odd last channel. `second` 0: a lone last pixel. */
static void wide_pixel_pair(const ekd_conv_params *p, const int32_t *columns, const int32_t *fused, int8_t *out,
                            int second) {
    const uint32_t depth = (uint32_t)p->k_h * p->k_w * p->in_c, groups = depth / 4;
    const int out_c = p->out_c;
    const uint32_t pairs = (uint32_t)out_c / 2;
    if (pairs)
        (groups % 2 ? ekd_conv_wide : ekd_conv_wide2)(p->filter16, columns, groups, fused, pairs, out,
                                                      second ? (uint32_t)out_c : 0);
    if (out_c % 2) {
        const int oc = out_c - 1;
        int32_t sums[2];
        odd_channel_wide(p->filter16 + pairs * 2 * depth, columns, groups, fused_bias(fused, oc), sums);
        out[oc] = (int8_t)fast_requantize(sums[0], fused_rq(fused, oc));
        if (second) out[out_c + oc] = (int8_t)fast_requantize(sums[1], fused_rq(fused, oc));
    }
}

/* Two pixels of a layer on int8 weights: every channel pair's sums (dot_2x2.S), an odd last channel paired with
 * itself, the tail of fewer than four inputs in C, then the requantization. `columns` and `tails` hold the
 * gathered inputs; an odd last pixel's twin holds the same values, so writing its outputs twice is harmless. */
static void int8_pixel_pair(const ekd_conv_params *p, const int32_t *columns, int16_t tails[2][4], int32_t *acc,
                            const fast_rq *table, int8_t *out0, int8_t *out1) {
    const uint32_t depth = (uint32_t)p->k_h * p->k_w * p->in_c, whole = depth & ~3u;
    const int out_c = p->out_c;
    const int32_t *bias = p->bias;
    const int8_t *filter = p->filter;
    if (whole && out_c >= 2) {
        ekd_conv_channels(filter, columns, whole / 4, depth, (uint32_t)out_c / 2, bias, acc);
    } else { /* no whole group of four inputs: the accumulators start at the bias, the tail does the rest */
        for (int oc = 0; oc < out_c - out_c % 2; oc++) acc[2 * oc] = acc[2 * oc + 1] = bias ? bias[oc] : 0;
    }
    if (out_c % 2) {
        const int oc = out_c - 1;
        int32_t twin[4];
        twin[0] = twin[1] = twin[2] = twin[3] = bias ? bias[oc] : 0;
        ekd_dot_2x2(filter + (uint32_t)oc * depth, filter + (uint32_t)oc * depth, columns, whole / 4, twin);
        acc[2 * oc] = twin[0], acc[2 * oc + 1] = twin[1];
    }
    for (uint32_t k = whole; k < depth; k++) { /* the tail, in natural order */
        for (int oc = 0; oc < out_c; oc++) {
            const int8_t w = filter[(uint32_t)oc * depth + k];
            acc[2 * oc] += w * tails[0][k - whole];
            acc[2 * oc + 1] += w * tails[1][k - whole];
        }
    }
    requantize_pair(acc, p, table, out0, out1);
}

void ekd_conv2d(const ekd_conv_params *p, const int8_t *in, int8_t *out) {
    const uint32_t depth = (uint32_t)p->k_h * p->k_w * p->in_c, whole = depth & ~3u;
    const uint32_t pixels = (uint32_t)p->out_h * p->out_w;
    const int out_c = p->out_c;
    if (depth > MAX_COLUMN || out_c > MAX_CHANNELS) {
        ekd_conv2d_reference(p, in, out);
        return;
    }
    /* two pixels' int16 pairs, their accumulators [channel][pixel] and the requantization tables: in the arena's
     * free gap when they fit, else on the stack (where the measured stack peak includes them) */
    const uint32_t words = whole + 1 + 2u * out_c + 3u * out_c + FUSED_WORDS(out_c);
    const int in_arena = 4 * words <= ekd_scratch_bytes;
    int32_t on_stack[in_arena ? 1 : words];
    int32_t *const columns = in_arena ? (int32_t *)ekd_scratch : on_stack;
    int32_t *const acc = columns + whole + 1;
    fast_rq *const table = (fast_rq *)(acc + 2 * out_c);
    int32_t *const fused = (int32_t *)(table + out_c);
    int16_t tails[2][4];
    /* requantization inside the SMLAD loop on widened weights, doubled columns: the layers the compiler widened
     * (whole groups of four, the full int8 range, the closed form's shifts; lower.py); else the per-channel
     * table for the second pass */
    const int twice = p->filter16 && fused_table(p, fused);
    const int fast = twice || fast_rq_prepare(p, 0, out_c, table);
    /* a 1x1 conv over whole groups of four channels with stride 1 reads each pixel's inputs in place */
    const int pointwise = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->in_c % 4 == 0 &&
                          p->pad_top == 0 && p->pad_left == 0 && p->in_h == p->out_h && p->in_w == p->out_w;
    const uint32_t offsets = pair16(p->in_offset, p->in_offset);
    uint32_t px = 0;
    if (twice && pointwise && out_c % 2 == 0) { /* every pixel pair in one call; an odd last pixel below */
        const uint32_t even = pixels & ~1u;
        const pointwise_job job = {columns, out, (uint32_t)out_c, fused + 10 * (out_c / 2), in, in + even * p->in_c,
                                   p->in_c, offsets, whole / 4, p->filter16, fused, whole % 8 ? 1 : 2};
        if (even) ekd_pointwise_wide(&job);
        px = even;
    }
    for (; px < pixels; px += 2) {
        const int second = px + 1 < pixels; /* an odd last pixel is gathered twice, its twin dropped */
        int8_t *o0 = out + px * out_c;
        if (pointwise) {
            gather_pointwise(in + px * p->in_c, in + (second ? px + 1 : px) * p->in_c, whole / 4, offsets, twice,
                             columns);
        } else {
            gather(p, in, px, 0, twice, (int16_t *)columns, tails[0]);
            gather(p, in, second ? px + 1 : px, 1, twice, (int16_t *)columns, tails[1]);
        }
        if (twice) wide_pixel_pair(p, columns, fused, o0, second);
        else int8_pixel_pair(p, columns, tails, acc, fast ? table : NULL, o0, second ? o0 + out_c : o0);
    }
}
