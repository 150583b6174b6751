/* int8 ADD on the Cortex-M4: TFLite's three MultiplyByQuantizedMultiplier calls per element (both inputs, then
 * the sum) in the closed form of dsp_common.h, a few instructions each instead of 64-bit arithmetic; bit-exact
 * with the portable reference, which takes any layer this form does not cover. */
#include <stdint.h>

#include "dsp_common.h"
#include "ekd_kernels.h"

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

void ekd_add(const ekd_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    scaler a, b, o;
    if (!scaler_for(p->in1_mult, p->in1_shift, 0, &a) || !scaler_for(p->in2_mult, p->in2_shift, 0, &b) ||
        !scaler_for(p->out_mult, p->out_shift, p->out_offset, &o)) {
        ekd_add_reference(p, in1, in2, out);
        return;
    }
    /* doubled inputs, (x + offset) * 2^21: |x| < 2^29, and the scaled sum stays below 2^30 */
    const int32_t offset1 = p->in1_offset * (1 << (EKD_ADD_LEFT_SHIFT + 1));
    const int32_t offset2 = p->in2_offset * (1 << (EKD_ADD_LEFT_SHIFT + 1));
    const int32_t lo = p->act_min, hi = p->act_max;
    for (uint32_t i = 0; i < p->size; i++) {
        const int32_t x1 = offset1 + in1[i] * (1 << (EKD_ADD_LEFT_SHIFT + 1));
        const int32_t x2 = offset2 + in2[i] * (1 << (EKD_ADD_LEFT_SHIFT + 1));
        const int32_t sum = scale(x1, &a) + scale(x2, &b);
        out[i] = clamp_act(__ssat(scale(2 * sum, &o), 8), lo, hi);
    }
}
