/* Depthwise convolution with the Cortex-M4 DSP extension, bit-exact with the portable reference.
 *
 * 3x3 kernels (stride 1 or 2, any depth multiplier) run on channel planes: each input row is unpacked once per
 * group of four channels into int16 rows (input offset added, zeros where the kernel overhangs), so that two
 * horizontal taps of one channel sit in one word and SMLAD multiplies both. Stride 1 computes two outputs per
 * step from the same words (SMLAD / SMLABT / SMLATB, dw_rows.S). Output rows go in bands whose plane rows fit
 * the arena's free gap during the layer (ekd_scratch), so an input row is unpacked once per band and group.
 * Weights are doubled int16 pairs and requantization takes four instructions (dsp_common.h). Other kernels run
 * four channels at a time on 16-bit lanes (SMLABB / SMLATT). */
#include <stddef.h>
#include <stdint.h>

#include "dsp_common.h"
#include "ekd_kernels.h"

#define GROUP 4        /* input channels unpacked together */
#define STACK_BAND 2048 /* bytes: without room in the arena, one band on the stack at most this large */

typedef struct {
    int32_t bias2;  /* twice the bias */
    fast_rq rq;     /* the requantization */
    uint32_t step;  /* bytes between two outputs of the channel (out_c); dw_rows.S reads these five words */
    uint32_t w[6];  /* per kernel row: (2 w0, 2 w1) and (2 w1, 2 w2) as int16 pairs */
} dw_channel;

/* One channel's band for ekd_dw_band_s1 / _s2 (dw_rows.S reads it in this order). */
typedef struct {
    const uint32_t *const *rows; /* channel 0's plane row for each input row of the band */
    uint32_t plane;              /* bytes from channel 0's plane to this channel's */
    int8_t *out;                 /* the band's first output of this channel */
    uint32_t out_row;            /* bytes between output rows */
    uint32_t count, pairs, odd;  /* output rows; outputs per row = 2 pairs + odd */
    const uint32_t *block;       /* the channel's w (its bias and requantization just before) */
} dw_job;

void ekd_dw_band_s1(const dw_job *job);
void ekd_dw_band_s2(const dw_job *job);

void ekd_dw_sums_s1(const uint32_t *r0, const uint32_t *r1, const uint32_t *r2, const uint32_t w[6], int32_t *acc,
                    uint32_t pairs);
void ekd_dw_sums_s2(const uint32_t *r0, const uint32_t *r1, const uint32_t *r2, const uint32_t w[6], int32_t *acc,
                    uint32_t n);

/* Pass 1 over one output row of one channel (dw_rows.S): the doubled sums, bias not yet added, of `n` outputs
 * from three plane rows of int16 pairs. Stride 1: words k and k + 1 hold taps 2k..2k+3, enough for outputs 2k
 * and 2k + 1; stride 2 (and an odd last output of stride 1): output x from words x and x + 1. */
static void row_sums(const uint32_t *r0, const uint32_t *r1, const uint32_t *r2, const uint32_t w[6], int32_t *acc,
                     int n, int stride) {
    if (stride == 2) {
        ekd_dw_sums_s2(r0, r1, r2, w, acc, (uint32_t)n);
        return;
    }
    const int pairs = n / 2;
    ekd_dw_sums_s1(r0, r1, r2, w, acc, (uint32_t)pairs);
    if (n & 1) ekd_dw_sums_s2(r0 + pairs, r1 + pairs, r2 + pairs, w, acc + 2 * pairs, 1);
}

/* Pass 2 for a fused activation that narrows the range: bias, requantization, clamp and the int8 stores,
 * every `step` bytes. */
static void row_outputs(const int32_t *acc, int n, const dw_channel *ch, int8_t *o, int step, int8_t lo, int8_t hi) {
    const fast_rq q = ch->rq;
    for (int x = 0; x < n; x++, o += step) *o = clamp_act(fast_requantize(acc[x] + ch->bias2, &q), lo, hi);
}

/* Unpacks input row `iy` of channels [c0, c0 + count) into plane rows `plane_words` apart (element pad_left
 * on): x + offset as int16. Four channels at a time: two pixels' words repacked (PKHBT / PKHTB) so that
 * SXTAB16 yields each channel's pair of pixels. */
static void unpack_row(const ekd_conv_params *p, const int8_t *in, int iy, int c0, int count, uint32_t *row,
                       int plane_words) {
    const int in_c = p->in_c, in_w = p->in_w;
    const int8_t *src = in + ((uint32_t)iy * in_w) * in_c + c0;
    int16_t *dst[GROUP];
    for (int c = 0; c < count; c++) dst[c] = (int16_t *)(row + c * plane_words) + p->pad_left;
    int x = 0;
    if (count == GROUP) {
        const uint32_t offsets = pair16(p->in_offset, p->in_offset);
        int8_t *d0 = (int8_t *)dst[0], *d1 = (int8_t *)dst[1], *d2 = (int8_t *)dst[2], *d3 = (int8_t *)dst[3];
        for (; x + 1 < in_w; x += 2, src += 2 * in_c, d0 += 4, d1 += 4, d2 += 4, d3 += 4) {
            const uint32_t a = load32(src), b = load32(src + in_c);
            const uint32_t low = pack_low_halves(a, b), high = pack_high_halves(b, a);
            store32(d0, __sxtab16(offsets, low));
            store32(d1, sxtab16_ror8(offsets, low));
            store32(d2, __sxtab16(offsets, high));
            store32(d3, sxtab16_ror8(offsets, high));
        }
    }
    if (in_c == 1) { /* one channel (a gray stem): contiguous bytes, four per word */
        const uint32_t offsets = pair16(p->in_offset, p->in_offset);
        int8_t *d = (int8_t *)dst[0];
        for (; x + 3 < in_w; x += 4, src += 4, d += 8) {
            const uint32_t v = load32(src), even = __sxtab16(offsets, v), odd = sxtab16_ror8(offsets, v);
            store32(d, pack_low_halves(even, odd));       /* pixels 0, 1 */
            store32(d + 4, pack_high_halves(odd, even));  /* pixels 2, 3 */
        }
    }
    for (; x < in_w; x++, src += in_c)
        for (int c = 0; c < count; c++) dst[c][x] = (int16_t)(src[c] + p->in_offset);
}


/* Word stores, four per loop (the port's memset writes bytes). */
static void zero_words(uint32_t *p, int n) {
    for (; n >= 4; n -= 4, p += 4) p[0] = p[1] = p[2] = p[3] = 0;
    for (; n > 0; n--) *p++ = 0;
}


/* Returns 0 (nothing written) when the layer does not fit this kernel. Output rows go in bands of b rows: the
 * input rows a band needs sit in a ring of (b - 1) * stride + 3 plane rows per channel of the group (every input
 * row is unpacked once per group; rows outside the input point at a zero row), then each channel's band is
 * summed row by row and requantized in one pass (NHWC rows of one channel follow each other every out_c bytes).
 * The ring and the sums live in the arena's free gap with as many rows as fit, else one band on the stack. */
static int depthwise_3x3(const ekd_conv_params *p, const int8_t *in, int8_t *out) {
    const int in_c = p->in_c, dm = p->depth_mult, out_c = p->out_c, stride = p->stride_w, out_w = p->out_w;
    if (p->k_h != 3 || p->k_w != 3 || p->dil_h != 1 || p->dil_w != 1 || stride != p->stride_h || stride > 2)
        return 0;
    const int row_words = ((p->pad_left + p->in_w + 4) & ~1) / 2;
    const int group = in_c < GROUP ? in_c : GROUP;
    const uint32_t row_bytes = 4u * group * row_words, sums_bytes = 4u * out_w;
    const uint32_t one_band = (3 + 1) * row_bytes + sums_bytes; /* three ring rows, the zero row, one row of sums */
    const int in_arena = one_band <= ekd_scratch_bytes;
    if (!in_arena && one_band > STACK_BAND) return 0;
    int band = 1;
    while (in_arena && band < p->out_h &&
           (band * stride + 3 + 1) * row_bytes + (band + 1) * sums_bytes <= ekd_scratch_bytes)
        band++;
    fast_rq check[1];
    for (int c = 0; c < out_c; c++) /* the whole layer takes the fast requantization, or none of it */
        if (!fast_rq_prepare(p, c, 1, check)) return 0;
    const int act = p->act_min != -128 || p->act_max != 127;
    const int8_t lo = p->act_min, hi = p->act_max;
    const int ring = (band - 1) * stride + 3, plane_words = (ring + 1) * row_words; /* slot `ring`: zeros */
    uint32_t on_stack[in_arena ? 1 : one_band / 4]; /* the measured stack peak includes it */
    uint32_t *const planes = in_arena ? (uint32_t *)ekd_scratch : on_stack;
    int32_t *const sums = (int32_t *)(planes + group * plane_words);
    zero_words(planes, group * plane_words); /* padding columns and the zero row stay zero */
    for (int c0 = 0; c0 < in_c; c0 += GROUP) {
        const int count = in_c - c0 < GROUP ? in_c - c0 : GROUP;
        dw_channel channels[count * dm];
        for (int k = 0; k < count * dm; k++) {
            const int oc = c0 * dm + k;
            dw_channel *ch = &channels[k];
            for (int ky = 0; ky < 3; ky++) {
                const int8_t *w = p->filter + (uint32_t)ky * 3 * out_c + oc;
                ch->w[2 * ky] = pair16(2 * w[0], 2 * w[out_c]);
                ch->w[2 * ky + 1] = pair16(2 * w[out_c], 2 * w[2 * out_c]);
            }
            ch->bias2 = p->bias ? 2 * p->bias[oc] : 0;
            ch->step = (uint32_t)out_c;
            fast_rq_prepare(p, oc, 1, &ch->rq);
        }
        int held[ring]; /* the input row in each slot */
        for (int s = 0; s < ring; s++) held[s] = -1;
        for (int oy0 = 0; oy0 < p->out_h; oy0 += band) {
            const int rows = p->out_h - oy0 < band ? p->out_h - oy0 : band, needed = (rows - 1) * stride + 3;
            const int iy0 = oy0 * stride - p->pad_top;
            const uint32_t *row_at[needed]; /* channel 0's plane row for input row iy0 + j */
            for (int j = 0; j < needed; j++) {
                const int iy = iy0 + j, slot = (iy + p->pad_top) % ring;
                if (iy < 0 || iy >= p->in_h) {
                    row_at[j] = planes + ring * row_words;
                    continue;
                }
                if (held[slot] != iy) {
                    unpack_row(p, in, iy, c0, count, planes + slot * row_words, plane_words);
                    held[slot] = iy;
                }
                row_at[j] = planes + slot * row_words;
            }
            int8_t *o = out + (uint32_t)oy0 * out_w * out_c + c0 * dm;
            if (!act) { /* one call per channel: sums, requantization and stores of the whole band */
                dw_job job = {row_at, 0, o, (uint32_t)(out_w * out_c), (uint32_t)rows, (uint32_t)out_w / 2,
                              (uint32_t)out_w & 1, 0};
                for (int k = 0, m = 0; k < count * dm; k++, job.out++) {
                    job.block = channels[k].w;
                    (stride == 1 ? ekd_dw_band_s1 : ekd_dw_band_s2)(&job);
                    if (++m == dm) m = 0, job.plane += 4 * plane_words;
                }
                continue;
            }
            for (int k = 0, channel = 0, m = 0; k < count * dm; k++) {
                for (int r = 0; r < rows; r++) {
                    const uint32_t *const *at = row_at + r * stride;
                    row_sums(at[0] + channel, at[1] + channel, at[2] + channel, channels[k].w, sums + r * out_w,
                             out_w, stride);
                }
                row_outputs(sums, rows * out_w, &channels[k], o + k, out_c, lo, hi);
                if (++m == dm) m = 0, channel += plane_words;
            }
        }
    }
    return 1;
}

#define MAX_TAPS 64

/* Four output channels over a pixel's valid taps: SMLABB / SMLATT on 16-bit lanes. `broadcast`: one input
 * feeds all four (depth multiplier a multiple of 4); otherwise four neighbouring input channels. */
__attribute__((always_inline)) static inline void depthwise_taps(const int8_t *src, const int8_t *weights,
                                                                 const int32_t *tap_in, const int32_t *tap_w,
                                                                 int taps, uint32_t offsets, int32_t offset,
                                                                 int broadcast, int32_t acc[4]) {
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

/* Any kernel size: four output channels at a time, the valid taps of a pixel listed once and reused by every
 * channel group. Handles a depth multiplier of 1 or a multiple of 4; anything else runs the reference. */
static void depthwise_lanes(const ekd_conv_params *p, const int8_t *in, int8_t *out) {
    const int out_c = p->out_c, in_c = p->in_c, dm = p->depth_mult;
    if (out_c % 4 || !(dm == 1 || dm % 4 == 0) || p->k_h * p->k_w > MAX_TAPS) {
        ekd_depthwise_conv2d_reference(p, in, out);
        return;
    }
    const int8_t *filter = p->filter, *shift = p->shift;
    const int32_t *bias = p->bias, *mult = p->mult;
    const int32_t offset = p->in_offset;
    const uint32_t offsets = pair16(offset, offset);
    const int32_t out_offset = p->out_offset, act_min = p->act_min, act_max = p->act_max;
    const int broadcast = dm != 1;
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
                    const int32_t value = exact_requantize(acc[k] + (bias ? bias[oc + k] : 0), mult[oc + k], shift[oc + k]);
                    o[oc + k] = clamp_act(value + out_offset, act_min, act_max);
                }
            }
        }
    }
}

void ekd_depthwise_conv2d(const ekd_conv_params *p, const int8_t *in, int8_t *out) {
    if (!depthwise_3x3(p, in, out)) depthwise_lanes(p, in, out);
}
