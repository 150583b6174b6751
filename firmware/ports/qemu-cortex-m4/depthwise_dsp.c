/* Depthwise convolution with the Cortex-M4 DSP extension, bit-exact with the portable reference.
 *
 * 3x3 kernels (stride 1 or 2, any depth multiplier, the full int8 range) run on channel planes: each input row is
 * unpacked once per group of four channels into int16 (input offset added, zeros where the kernel overhangs), so
 * that two horizontal taps of one channel sit in one word and SMLAD multiplies both. The four channels' words
 * interleave (word k of channels 0-3, then word k + 1), so one unpacked pixel pair is one STM; a single input
 * channel (a gray stem) keeps a plain plane. One assembly call per channel and band (dw_rows.S) computes four
 * outputs per step from three words per kernel row (five at stride 2), adds the bias, requantizes in four
 * instructions (dsp_common.h) and stores. Output rows go in bands whose plane rows fit the arena's free gap during
 * the layer (ekd_scratch), so an input row is unpacked once per band and group. A gray stem with an even multiplier
 * goes pixel by pixel instead (ekd_dw_stem_row): its nine taps stay in registers while every output channel streams
 * past them. Other kernels, and fused activations narrower than int8, run four channels at a time on 16-bit lanes
 * (SMLABB / SMLATT). */
#include <stddef.h>
#include <stdint.h>

#include "dsp_common.h"
#include "ekd_kernels.h"

#define GROUP 4         /* input channels unpacked together */
#define STACK_BAND 2048 /* bytes: without room in the arena, one band on the stack at most this large */
#define STACK_ROWS 1024 /* bytes: and more output rows per band while the ring stays this small */

typedef struct {
    int32_t bias2;  /* twice the bias */
    fast_rq rq;     /* the requantization */
    uint32_t step;  /* bytes between two outputs of the channel (out_c); dw_rows.S reads these five words */
    uint32_t w[6];  /* per kernel row: (2 w0, 2 w1) and (2 w1, 2 w2) as int16 pairs */
} dw_channel;

/* One channel's band for the dw_rows.S kernels (read in this order). */
typedef struct {
    const uint32_t *const *rows; /* channel 0's plane row for each input row of the band */
    uint32_t plane;              /* bytes from channel 0's words to this channel's */
    int8_t *out;                 /* the band's first output of this channel */
    uint32_t out_row;            /* bytes between output rows */
    uint32_t count, quads, rest; /* output rows; outputs per row = 4 quads + rest */
    const uint32_t *block;       /* the channel's w (its bias and requantization just before) */
} dw_job;

typedef void band_kernel(const dw_job *job);
band_kernel ekd_dw_band_s1, ekd_dw_band_s2, ekd_dw_band_s1_x4, ekd_dw_band_s2_x4;

/* The band kernels' blocks of output channels [first, first + count). */
static void channel_table(const ekd_conv_params *p, int first, int count, dw_channel *table) {
    const int out_c = p->out_c;
    for (int oc = first; oc < first + count; oc++) {
        dw_channel *ch = &table[oc - first];
        for (int ky = 0; ky < 3; ky++) {
            const int8_t *w = p->filter + (uint32_t)ky * 3 * out_c + oc;
            ch->w[2 * ky] = pair16(2 * w[0], 2 * w[out_c]);
            ch->w[2 * ky + 1] = pair16(2 * w[out_c], 2 * w[2 * out_c]);
        }
        ch->bias2 = p->bias ? 2 * p->bias[oc] : 0;
        ch->step = (uint32_t)out_c;
        fast_rq_prepare(p, oc, 1, &ch->rq);
    }
}

/* A gray stem's channel for ekd_dw_stem_row (read with two LDMs, in this order). */
typedef struct {
    uint32_t w[5]; /* doubled int16 pairs (w00 w01) (w10 w11) (w20 w21) (w02 w12) (w22 0) */
    int32_t bias2;
    fast_rq rq;
} stem_channel;

typedef struct {
    const uint32_t *row[3];             /* the plane rows of the three input rows */
    uint32_t step;                      /* bytes between two outputs' first taps */
    int8_t *out, *out_end;              /* the output row, all its channels */
    const stem_channel *table, *table_end;
} stem_job;

void ekd_dw_stem_row(const stem_job *job);

/* A gray stem pixel by pixel (its nine taps in registers, every channel from them) wants an even multiplier. */
static int is_stem(const ekd_conv_params *p) { return p->in_c == 1 && p->depth_mult % 2 == 0; }

static void stem_table(const ekd_conv_params *p, stem_channel *table) {
    const int out_c = p->out_c;
    for (int oc = 0; oc < out_c; oc++) {
        const int8_t *w = p->filter + oc; /* [ky][kx][oc] */
        stem_channel *ch = &table[oc];
        for (int ky = 0; ky < 3; ky++) ch->w[ky] = pair16(2 * w[3 * ky * out_c], 2 * w[(3 * ky + 1) * out_c]);
        ch->w[3] = pair16(2 * w[2 * out_c], 2 * w[5 * out_c]);
        ch->w[4] = pair16(2 * w[8 * out_c], 0);
        ch->bias2 = p->bias ? 2 * p->bias[oc] : 0;
        fast_rq_prepare(p, oc, 1, &ch->rq);
    }
}

/* The rows of a band for a gray stem: every output row in one call. */
static void stem_band(const ekd_conv_params *p, const uint32_t *const *row_at, int rows, int8_t *out,
                      const stem_channel *table) {
    const uint32_t row_outputs = (uint32_t)p->out_w * p->out_c;
    for (int r = 0; r < rows; r++, out += row_outputs) {
        const uint32_t *const *three = row_at + r * p->stride_h;
        const stem_job job = {{three[0], three[1], three[2]}, 2u * p->stride_w, out, out + row_outputs, table,
                              table + p->out_c};
        ekd_dw_stem_row(&job);
    }
}

/* A row of one input channel (a gray stem): contiguous int16 elements, pad_left on; four pixels per step. */
static void unpack_plain(const ekd_conv_params *p, const int8_t *src, uint32_t *row) {
    const uint32_t offsets = pair16(p->in_offset, p->in_offset);
    int16_t *const dst = (int16_t *)row + p->pad_left;
    int8_t *d = (int8_t *)dst;
    int x = 0;
    for (; x + 3 < p->in_w; x += 4, src += 4, d += 8) {
        const uint32_t v = load32(src), even = __sxtab16(offsets, v), odd = sxtab16_ror8(offsets, v);
        store32(d, pack_low_halves(even, odd));      /* pixels 0, 1 */
        store32(d + 4, pack_high_halves(odd, even)); /* pixels 2, 3 */
    }
    for (; x < p->in_w; x++, src++) dst[x] = (int16_t)(*src + p->in_offset);
}

void ekd_dw_unpack4(const int8_t *src, uint32_t in_c, uint32_t *dst, const uint32_t job[4]);

/* A row of `count` channels into interleaved words: element e of channel c is int16 8 (e / 2) + 2 c + e % 2
 * (element = pixel + pad_left). Four channels in dw_rows.S; fewer element by element. */
static void unpack_interleaved(const ekd_conv_params *p, const int8_t *src, int count, uint32_t *row) {
    const int in_c = p->in_c, in_w = p->in_w, pad = p->pad_left;
    if (count == GROUP) {
        const uint32_t lead = (uint32_t)pad & 1, rest = (uint32_t)in_w - lead;
        const uint32_t job[4] = {rest / 2, pair16(p->in_offset, p->in_offset), lead, rest & 1};
        ekd_dw_unpack4(src, (uint32_t)in_c, row + 4 * (pad / 2), job);
        return;
    }
    int16_t *const element = (int16_t *)row;
    for (int x = 0; x < in_w; x++) {
        const int e = x + pad;
        for (int c = 0; c < count; c++)
            element[8 * (e / 2) + 2 * c + e % 2] = (int16_t)(src[x * in_c + c] + p->in_offset);
    }
}

/* Word stores, four per loop (the port's memset writes bytes). */
static void zero_words(uint32_t *p, int n) {
    for (; n >= 4; n -= 4, p += 4) p[0] = p[1] = p[2] = p[3] = 0;
    for (; n > 0; n--) *p++ = 0;
}

/* Returns 0 (nothing written) when the layer does not fit this kernel. Output rows go in bands of b rows: the
 * input rows a band needs sit in a ring of (b - 1) * stride + 3 plane rows (every input row is unpacked once
 * per group; rows outside the input point at a zero row), then one call per channel computes the band. The
 * ring lives in the arena's free gap with as many rows as fit, else one band on the stack. */
static int depthwise_3x3(const ekd_conv_params *p, const int8_t *in, int8_t *out) {
    const int in_c = p->in_c, dm = p->depth_mult, out_c = p->out_c, stride = p->stride_w, out_w = p->out_w;
    if (p->k_h != 3 || p->k_w != 3 || p->dil_h != 1 || p->dil_w != 1 || stride != p->stride_h || stride > 2 ||
        p->act_min != -128 || p->act_max != 127)
        return 0;
    fast_rq check[1];
    for (int c = 0; c < out_c; c++) /* the whole layer takes the fast requantization, or none of it */
        if (!fast_rq_prepare(p, c, 1, check)) return 0;
    const int slots = in_c == 1 ? 1 : GROUP; /* channels whose words interleave */
    const int row_words = slots * (((p->pad_left + p->in_w + 4) & ~1) / 2);
    const uint32_t row_bytes = 4u * row_words, one_band = (3 + 1) * row_bytes; /* three ring rows, the zero row */
    const int in_arena = one_band <= ekd_scratch_bytes;
    if (!in_arena && one_band > STACK_BAND) return 0;
    const uint32_t room = in_arena ? ekd_scratch_bytes : STACK_ROWS;
    int band = 1;
    while (band < p->out_h && (band * stride + 3 + 1) * row_bytes <= room) band++;
    const int ring = (band - 1) * stride + 3; /* slot `ring`: zeros */
    uint32_t on_stack[in_arena ? 1 : (ring + 1) * row_words]; /* the measured stack peak includes it */
    uint32_t *const planes = in_arena ? (uint32_t *)ekd_scratch : on_stack;
    zero_words(planes, (ring + 1) * row_words); /* padding columns and the zero row stay zero */
    band_kernel *const kernel =
        slots == 1 ? (stride == 1 ? ekd_dw_band_s1 : ekd_dw_band_s2) : (stride == 1 ? ekd_dw_band_s1_x4 : ekd_dw_band_s2_x4);
    const int stem = is_stem(p);
    for (int c0 = 0; c0 < in_c; c0 += GROUP) {
        const int count = in_c - c0 < GROUP ? in_c - c0 : GROUP;
        dw_channel channels[stem ? 1 : count * dm];
        stem_channel stem_channels[stem ? out_c : 1];
        if (stem) stem_table(p, stem_channels);
        else channel_table(p, c0 * dm, count * dm, channels);
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
                uint32_t *const row = planes + slot * row_words;
                if (held[slot] != iy) {
                    const int8_t *src = in + (uint32_t)iy * p->in_w * in_c + c0;
                    if (slots == 1) unpack_plain(p, src, row);
                    else unpack_interleaved(p, src, count, row);
                    held[slot] = iy;
                }
                row_at[j] = row;
            }
            if (stem) {
                stem_band(p, row_at, rows, out + (uint32_t)oy0 * out_w * out_c, stem_channels);
                continue;
            }
            dw_job job = {row_at, 0, out + (uint32_t)oy0 * out_w * out_c + c0 * dm, (uint32_t)(out_w * out_c),
                          (uint32_t)rows, (uint32_t)out_w / 4, (uint32_t)out_w % 4, NULL};
            for (int k = 0, m = 0; k < count * dm; k++, job.out++) {
                job.block = channels[k].w;
                kernel(&job);
                if (++m == dm && slots > 1) m = 0, job.plane += 4; /* the next input channel's words */
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
