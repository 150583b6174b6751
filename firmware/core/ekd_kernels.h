/* int8 kernels with TFLite's int8 reference semantics (per-channel requantization, its rounding).
 * Tensors are NHWC, batch 1 (a fully connected layer is a 1x1 convolution over rows).
 * All quantization parameters are precomputed by the compiler: no float on the device. */
#ifndef EKD_KERNELS_H
#define EKD_KERNELS_H

#include <stdint.h>

typedef struct {
    const int8_t *filter;  /* conv: [out_c][k_h][k_w][in_c]; depthwise: [k_h][k_w][out_c] */
    const int16_t *filter16; /* or, in builds defining EKD_WIDE_WEIGHTS, these instead (the compiler's choice):
                                a conv's weights widened in its port's order (edgekd/mcu/lower.py) */
    const int32_t *bias;   /* [out_c] or NULL */
    const int32_t *mult;   /* [out_c] quantized multipliers */
    const int8_t *shift;   /* [out_c] exponents (> 0: left shift) */
    uint16_t in_h, in_w, in_c, out_h, out_w, out_c;
    uint8_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, depth_mult;
    int32_t in_offset;  /* -input zero point */
    int32_t out_offset; /* output zero point */
    int8_t act_min, act_max;
    uint8_t narrow; /* every accumulator << left fits in 31 bits (the compiler proves it): a fast path may use it */
    uint8_t single_round; /* one rounding, (acc * mult + 2^(30 - shift)) >> (31 - shift): LiteRT's per-channel
                             FULLY_CONNECTED; every other layer rounds twice (MultiplyByQuantizedMultiplier) */
} ekd_conv_params;

typedef struct {
    uint16_t in_h, in_w, c, out_h, out_w;
    uint8_t k_h, k_w, stride_h, stride_w, pad_top, pad_left;
    int8_t act_min, act_max;
} ekd_pool_params;

typedef struct {
    uint32_t size;
    int32_t in1_offset, in2_offset, out_offset;
    int32_t in1_mult, in2_mult, out_mult;
    int8_t in1_shift, in2_shift, out_shift;
    int8_t act_min, act_max;
} ekd_add_params;

typedef struct {
    uint32_t outer, inner; /* outer reduced rows of inner kept elements: [outer][inner] -> [inner] */
    int32_t in_offset, out_offset;
    int32_t mult; /* input/output scale with 1/outer folded in, as TFLite's integer MEAN */
    int8_t shift;
} ekd_mean_params;

/* Arena bytes no live tensor occupies during the current conv / depthwise layer (the compiler's plan sets them
 * before each call): a port's fast kernels keep their working buffers there rather than on the stack. */
extern int8_t *ekd_scratch;
extern uint32_t ekd_scratch_bytes;

int32_t ekd_requantize(int32_t acc, int32_t mult, int shift);
int32_t ekd_requantize_single(int32_t acc, int32_t mult, int shift);
int8_t ekd_clamp8(int32_t v, int8_t lo, int8_t hi);
void ekd_conv2d(const ekd_conv_params *p, const int8_t *in, int8_t *out);
void ekd_depthwise_conv2d(const ekd_conv_params *p, const int8_t *in, int8_t *out);
/* The portable references. A port with faster convolutions builds with EKD_PORT_CONV and defines
 * ekd_conv2d / ekd_depthwise_conv2d itself, falling back to these for shapes it does not handle. */
void ekd_conv2d_reference(const ekd_conv_params *p, const int8_t *in, int8_t *out);
void ekd_depthwise_conv2d_reference(const ekd_conv_params *p, const int8_t *in, int8_t *out);
#define EKD_ADD_LEFT_SHIFT 20 /* TFLite's int8 ADD scales both inputs up by 2^20 first */
void ekd_add(const ekd_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void ekd_add_reference(const ekd_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out); /* EKD_PORT_ADD */
void ekd_avg_pool(const ekd_pool_params *p, const int8_t *in, int8_t *out);
void ekd_max_pool(const ekd_pool_params *p, const int8_t *in, int8_t *out);
void ekd_mean(const ekd_mean_params *p, const int8_t *in, int8_t *out);
/* Element-wise through a 256-entry table (logistic, tanh, requantize): out[i] = lut[in[i] + 128]. */
void ekd_lut(const int8_t *lut, uint32_t size, const int8_t *in, int8_t *out);
/* Nearest resize with per-axis source indices computed by the compiler. */
void ekd_resize_nearest(const uint16_t *src_y, const uint16_t *src_x, uint16_t out_h, uint16_t out_w,
                        uint16_t in_w, uint16_t c, const int8_t *in, int8_t *out);
/* One input of a concatenation: `inner` bytes of each of `outer` rows, to out at `out_stride`. */
void ekd_concat_part(uint32_t outer, uint32_t inner, uint32_t out_stride, const int8_t *in, int8_t *out);

#endif
