/* int8 ADD on the Cortex-M4: TFLite's three MultiplyByQuantizedMultiplier calls per element (both inputs, then
 * the sum) in the closed form of dsp_common.h, a few instructions each instead of 64-bit arithmetic; bit-exact
 * with the portable reference, which takes any layer this form does not cover. An input's scaled contribution
 * depends on its byte alone, so a large layer first tabulates both inputs' 256 values (in the arena's free gap)
 * and an element costs two table loads, an add and the output's requantization. */
#include <stdint.h>

#include "dsp_common.h"
#include "ekd_kernels.h"

#define TABLE_MIN 1024 /* elements: below, building 512 entries costs more than it saves */

typedef struct {
    int32_t mult, high, right, sign_mask;
} scaler;

/* The closed form for x * m * 2^shift (+ zp), for shift in [-22, 0]: with shift 0 it is the rounding doubling
 * high multiply alone (SMMLAR with the zero point as high word, no sign term). */
static int scaler_for(int32_t mult, int shift, int32_t zp, scaler *s) {
    if (shift > 0 || -shift > FAST_RQ_MAX_RIGHT) return 0;
    s->mult = mult;
    s->right = -shift;
    s->high = s->right ? closed_form_high(s->right, zp) : zp;
    s->sign_mask = s->right ? -1 : 0;
    return 1;
}

static inline int32_t scale(int32_t twice, const scaler *s) {
    int32_t high;
    __asm__("smmlar %0, %1, %2, %3"
            : "=r"(high)
            : "r"(twice), "r"(s->mult), "r"(s->high + ((twice >> 31) & s->sign_mask)));
    return high >> s->right;
}

/* Input value v, doubled and shifted as TFLite does ((v + offset) * 2^20, doubled for the closed form), scaled;
 * doubled again for the output's closed form. |result| < 2^30, and the sum of two stays below 2^31. */
static inline int32_t contribution(int32_t v, int32_t offset, const scaler *s) {
    return 2 * scale((v + offset) * (1 << (EKD_ADD_LEFT_SHIFT + 1)), s);
}

void ekd_add(const ekd_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    scaler a, b, o;
    if (!scaler_for(p->in1_mult, p->in1_shift, 0, &a) || !scaler_for(p->in2_mult, p->in2_shift, 0, &b) ||
        !scaler_for(p->out_mult, p->out_shift, p->out_offset, &o)) {
        ekd_add_reference(p, in1, in2, out);
        return;
    }
    const int32_t lo = p->act_min, hi = p->act_max, off1 = p->in1_offset, off2 = p->in2_offset;
    const int clamp = lo != -128 || hi != 127;
    const uint32_t size = p->size;
    if (size < TABLE_MIN || ekd_scratch_bytes < 512 * sizeof(int32_t)) {
        for (uint32_t i = 0; i < size; i++) {
            const int32_t v = __ssat(scale(contribution(in1[i], off1, &a) + contribution(in2[i], off2, &b), &o), 8);
            out[i] = clamp ? clamp_act(v, lo, hi) : (int8_t)v;
        }
        return;
    }
    int32_t *const table = (int32_t *)ekd_scratch; /* [0, 256): input 1 at byte + 128; [256, 512): input 2 */
    for (int32_t v = -128; v < 128; v++) {
        table[v + 128] = contribution(v, off1, &a);
        table[v + 384] = contribution(v, off2, &b);
    }
    const int32_t *const t1 = table + 128, *const t2 = table + 384;
    if (clamp) {
        for (uint32_t i = 0; i < size; i++) out[i] = clamp_act(__ssat(scale(t1[in1[i]] + t2[in2[i]], &o), 8), lo, hi);
        return;
    }
    for (uint32_t i = 0; i < size; i++) out[i] = (int8_t)__ssat(scale(t1[in1[i]] + t2[in2[i]], &o), 8);
}
