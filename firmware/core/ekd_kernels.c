/* Portable int8 reference kernels, bit-exact with TFLite's int8 reference kernels (see ekd_kernels.h). */
#include "ekd_kernels.h"

#include <string.h>

int8_t *ekd_scratch;
uint32_t ekd_scratch_bytes;

/* gemmlowp's SaturatingRoundingDoublingHighMul: (a * b * 2) >> 32 with rounding, saturating one case. */
static int32_t high_mul(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudged = ab + (ab >= 0 ? (1 << 30) : (1 - (1 << 30)));
    /* gemmlowp divides by 2^31 truncating toward zero: shifts, without a 64-bit division call on small cores */
    return (int32_t)(nudged >= 0 ? nudged >> 31 : -((-nudged) >> 31));
}

/* gemmlowp's RoundingDivideByPOT: x / 2^exponent rounded half away from zero. */
static int32_t divide_by_pot(int32_t x, int exponent) {
    int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite's MultiplyByQuantizedMultiplier (double rounding). */
int32_t ekd_requantize(int32_t acc, int32_t mult, int shift) {
    int left = shift > 0 ? shift : 0;
    int right = shift > 0 ? 0 : -shift;
    return divide_by_pot(high_mul((int32_t)((uint32_t)acc << left), mult), right);
}

/* One rounding, half up: what LiteRT's per-channel FULLY_CONNECTED computes (found bit by bit against it:
 * the two-rounding form differs on about 1 output in 1,000). */
int32_t ekd_requantize_single(int32_t acc, int32_t mult, int shift) {
    const int total = 31 - shift;
    return (int32_t)(((int64_t)acc * mult + ((int64_t)1 << (total - 1))) >> total);
}

int8_t ekd_clamp8(int32_t v, int8_t lo, int8_t hi) {
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

void ekd_conv2d_reference(const ekd_conv_params *p, const int8_t *in, int8_t *out) {
    for (int oy = 0; oy < p->out_h; oy++) {
        for (int ox = 0; ox < p->out_w; ox++) {
            int y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
            for (int oc = 0; oc < p->out_c; oc++) {
                const int8_t *filter = p->filter + (uint32_t)oc * p->k_h * p->k_w * p->in_c;
                int32_t acc = 0;
                for (int fy = 0; fy < p->k_h; fy++) {
                    int iy = y0 + fy * p->dil_h;
                    if (iy < 0 || iy >= p->in_h) continue; /* padding: contributes zero after the offset */
                    for (int fx = 0; fx < p->k_w; fx++) {
                        int ix = x0 + fx * p->dil_w;
                        if (ix < 0 || ix >= p->in_w) continue;
                        const int8_t *src = in + ((uint32_t)iy * p->in_w + ix) * p->in_c;
                        const int8_t *w = filter + ((uint32_t)fy * p->k_w + fx) * p->in_c;
                        for (int ic = 0; ic < p->in_c; ic++) acc += w[ic] * (src[ic] + p->in_offset);
                    }
                }
                if (p->bias) acc += p->bias[oc];
                acc = p->single_round ? ekd_requantize_single(acc, p->mult[oc], p->shift[oc])
                                      : ekd_requantize(acc, p->mult[oc], p->shift[oc]);
                *out++ = ekd_clamp8(acc + p->out_offset, p->act_min, p->act_max);
            }
        }
    }
}

void ekd_depthwise_conv2d_reference(const ekd_conv_params *p, const int8_t *in, int8_t *out) {
    for (int oy = 0; oy < p->out_h; oy++) {
        for (int ox = 0; ox < p->out_w; ox++) {
            int y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
            for (int oc = 0; oc < p->out_c; oc++) {
                int ic = oc / p->depth_mult;
                int32_t acc = 0;
                for (int fy = 0; fy < p->k_h; fy++) {
                    int iy = y0 + fy * p->dil_h;
                    if (iy < 0 || iy >= p->in_h) continue;
                    for (int fx = 0; fx < p->k_w; fx++) {
                        int ix = x0 + fx * p->dil_w;
                        if (ix < 0 || ix >= p->in_w) continue;
                        int32_t x = in[((uint32_t)iy * p->in_w + ix) * p->in_c + ic] + p->in_offset;
                        acc += p->filter[((uint32_t)fy * p->k_w + fx) * p->out_c + oc] * x;
                    }
                }
                if (p->bias) acc += p->bias[oc];
                acc = ekd_requantize(acc, p->mult[oc], p->shift[oc]) + p->out_offset;
                *out++ = ekd_clamp8(acc, p->act_min, p->act_max);
            }
        }
    }
}

#ifndef EKD_PORT_CONV
void ekd_conv2d(const ekd_conv_params *p, const int8_t *in, int8_t *out) { ekd_conv2d_reference(p, in, out); }

void ekd_depthwise_conv2d(const ekd_conv_params *p, const int8_t *in, int8_t *out) {
    ekd_depthwise_conv2d_reference(p, in, out);
}
#endif

#ifndef EKD_PORT_ADD
void ekd_add(const ekd_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    ekd_add_reference(p, in1, in2, out);
}
#endif

void ekd_add_reference(const ekd_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    const int left_shift = EKD_ADD_LEFT_SHIFT;
    for (uint32_t i = 0; i < p->size; i++) {
        int32_t a = ekd_requantize((in1[i] + p->in1_offset) * (1 << left_shift), p->in1_mult, p->in1_shift);
        int32_t b = ekd_requantize((in2[i] + p->in2_offset) * (1 << left_shift), p->in2_mult, p->in2_shift);
        int32_t sum = ekd_requantize(a + b, p->out_mult, p->out_shift) + p->out_offset;
        out[i] = ekd_clamp8(sum, p->act_min, p->act_max);
    }
}

static void pool(const ekd_pool_params *p, const int8_t *in, int8_t *out, int average) {
    for (int oy = 0; oy < p->out_h; oy++) {
        for (int ox = 0; ox < p->out_w; ox++) {
            int y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
            for (int c = 0; c < p->c; c++) {
                int32_t acc = average ? 0 : -128, count = 0;
                for (int fy = 0; fy < p->k_h; fy++) {
                    int iy = y0 + fy;
                    if (iy < 0 || iy >= p->in_h) continue;
                    for (int fx = 0; fx < p->k_w; fx++) {
                        int ix = x0 + fx;
                        if (ix < 0 || ix >= p->in_w) continue;
                        int32_t v = in[((uint32_t)iy * p->in_w + ix) * p->c + c];
                        if (average) acc += v;
                        else if (v > acc) acc = v;
                        count++;
                    }
                }
                if (average && count) /* TFLite: round half away from zero */
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                *out++ = ekd_clamp8(acc, p->act_min, p->act_max);
            }
        }
    }
}

void ekd_avg_pool(const ekd_pool_params *p, const int8_t *in, int8_t *out) { pool(p, in, out, 1); }

void ekd_max_pool(const ekd_pool_params *p, const int8_t *in, int8_t *out) { pool(p, in, out, 0); }

void ekd_mean(const ekd_mean_params *p, const int8_t *in, int8_t *out) {
    for (uint32_t j = 0; j < p->inner; j++) {
        int32_t acc = 0;
        for (uint32_t i = 0; i < p->outer; i++) acc += in[i * p->inner + j] + p->in_offset;
        out[j] = ekd_clamp8(ekd_requantize(acc, p->mult, p->shift) + p->out_offset, -128, 127);
    }
}

void ekd_lut(const int8_t *lut, uint32_t size, const int8_t *in, int8_t *out) {
    for (uint32_t i = 0; i < size; i++) out[i] = lut[in[i] + 128];
}

void ekd_resize_nearest(const uint16_t *src_y, const uint16_t *src_x, uint16_t out_h, uint16_t out_w,
                        uint16_t in_w, uint16_t c, const int8_t *in, int8_t *out) {
    for (int y = 0; y < out_h; y++) {
        for (int x = 0; x < out_w; x++) {
            memcpy(out, in + ((uint32_t)src_y[y] * in_w + src_x[x]) * c, c);
            out += c;
        }
    }
}

void ekd_concat_part(uint32_t outer, uint32_t inner, uint32_t out_stride, const int8_t *in, int8_t *out) {
    for (uint32_t i = 0; i < outer; i++, in += inner, out += out_stride) memcpy(out, in, inner);
}
