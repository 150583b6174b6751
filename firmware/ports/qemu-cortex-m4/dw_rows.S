@ The inner loops of the Cortex-M4 3x3 depthwise convolution (depthwise_dsp.c): one output row of one channel
@ from three plane rows of int16 pairs, weights w = {a0 b0 a1 b1 a2 b2}, per kernel row a = (w0, w1) and
@ b = (w1, w2) (doubled). Sums only (no bias): the requantization runs after, so every value here stays in a
@ register.
    .syntax unified
    .cpu cortex-m4
    .thumb
    .text

#include "requantize.inc"

@ void ekd_dw_sums_s1(const uint32_t *r0, const uint32_t *r1, const uint32_t *r2, const uint32_t w[6],
@                     int32_t *acc, uint32_t pairs)
@ Stride 1: outputs 2k and 2k + 1 from words k and k + 1 of each row. 21 instructions per two outputs.
    .global ekd_dw_sums_s1
    .type ekd_dw_sums_s1, %function
    .thumb_func
ekd_dw_sums_s1:
    push    {r4-r11, lr}
    ldr     r12, [sp, #36]          @ acc
    ldr     lr, [sp, #40]           @ pairs
    ldm     r3, {r4-r9}
    add     lr, r12, lr, lsl #3     @ end of acc
    cmp     r12, lr
    beq     2f
1:
    ldr     r3, [r0], #4
    smuad   r10, r4, r3             @ w0 x0 + w1 x1
    smulbt  r11, r4, r3             @ w0 x1
    ldr     r3, [r0]
    smlatb  r10, r5, r3, r10        @ + w2 x2
    smlad   r11, r5, r3, r11        @ + w1 x2 + w2 x3
    ldr     r3, [r1], #4
    smlad   r10, r6, r3, r10
    smlabt  r11, r6, r3, r11
    ldr     r3, [r1]
    smlatb  r10, r7, r3, r10
    smlad   r11, r7, r3, r11
    ldr     r3, [r2], #4
    smlad   r10, r8, r3, r10
    smlabt  r11, r8, r3, r11
    ldr     r3, [r2]
    smlatb  r10, r9, r3, r10
    smlad   r11, r9, r3, r11
    stmia   r12!, {r10, r11}
    cmp     r12, lr
    bne     1b
2:
    pop     {r4-r11, pc}
    .size ekd_dw_sums_s1, . - ekd_dw_sums_s1

@ void ekd_dw_sums_s2(const uint32_t *r0, const uint32_t *r1, const uint32_t *r2, const uint32_t w[6],
@                     int32_t *acc, uint32_t n)
@ Stride 2: output x from words x and x + 1 of each row; two outputs per step share the middle word.
@ 24 instructions per two outputs.
    .global ekd_dw_sums_s2
    .type ekd_dw_sums_s2, %function
    .thumb_func
ekd_dw_sums_s2:
    push    {r4-r11, lr}
    ldr     r12, [sp, #36]          @ acc
    ldr     lr, [sp, #40]           @ n
    ldm     r3, {r4-r9}
    add     lr, r12, lr, lsl #2     @ end of acc
    sub     lr, lr, #4              @ two or more outputs left while acc < end - 4
    cmp     r12, lr
    bhs     3f
1:
    ldr     r3, [r0], #4            @ word x
    smuad   r10, r4, r3
    ldr     r3, [r0], #4            @ word x + 1
    smlatb  r10, r5, r3, r10
    smuad   r11, r4, r3
    ldr     r3, [r0]                @ word x + 2
    smlatb  r11, r5, r3, r11
    ldr     r3, [r1], #4
    smlad   r10, r6, r3, r10
    ldr     r3, [r1], #4
    smlatb  r10, r7, r3, r10
    smlad   r11, r6, r3, r11
    ldr     r3, [r1]
    smlatb  r11, r7, r3, r11
    ldr     r3, [r2], #4
    smlad   r10, r8, r3, r10
    ldr     r3, [r2], #4
    smlatb  r10, r9, r3, r10
    smlad   r11, r8, r3, r11
    ldr     r3, [r2]
    smlatb  r11, r9, r3, r11
    stmia   r12!, {r10, r11}
    cmp     r12, lr
    blo     1b
3:
    add     lr, lr, #4
    cmp     r12, lr
    beq     4f                      @ the odd last output
    ldr     r3, [r0]
    smuad   r10, r4, r3
    ldr     r3, [r0, #4]
    smlatb  r10, r5, r3, r10
    ldr     r3, [r1]
    smlad   r10, r6, r3, r10
    ldr     r3, [r1, #4]
    smlatb  r10, r7, r3, r10
    ldr     r3, [r2]
    smlad   r10, r8, r3, r10
    ldr     r3, [r2, #4]
    smlatb  r10, r9, r3, r10
    str     r10, [r12]
4:
    pop     {r4-r11, pc}
    .size ekd_dw_sums_s2, . - ekd_dw_sums_s2

@ void ekd_dw_requant(const int32_t *acc, uint32_t n, const int32_t q[4], int8_t *out, uint32_t step)
@ q = {bias2, mult, high, right}: adds the doubled bias to each doubled sum and requantizes it in four
@ instructions (dsp_common.h), storing int8 every `step` bytes. Full int8 range only (no fused clamp).
@ 16 instructions per two outputs.
    .global ekd_dw_requant
    .type ekd_dw_requant, %function
    .thumb_func
ekd_dw_requant:
    push    {r4-r11, lr}
    ldr     r12, [sp, #36]          @ step
    ldm     r2, {r4-r7}             @ bias2, mult, high, right
    add     r1, r0, r1, lsl #2      @ end of acc
    sub     r1, r1, #4              @ two or more left while acc < end - 4
    cmp     r0, r1
    bhs     3f
1:
    ldrd    r8, r9, [r0], #8
    add     r8, r8, r4
    add     r9, r9, r4
    requantize r8, r10, r5, r6, r7
    requantize r9, r11, r5, r6, r7
    strb    r8, [r3]
    strb    r9, [r3, r12]
    add     r3, r3, r12, lsl #1
    cmp     r0, r1
    blo     1b
3:
    add     r1, r1, #4
    cmp     r0, r1
    beq     4f                      @ the odd last output
    ldr     r8, [r0]
    add     r8, r8, r4
    requantize r8, r10, r5, r6, r7
    strb    r8, [r3]
4:
    pop     {r4-r11, pc}
    .size ekd_dw_requant, . - ekd_dw_requant
