@ The inner loops of the Cortex-M4 3x3 depthwise convolution (depthwise_dsp.c): one output row of one channel
@ from three plane rows of int16 pairs, weights w = {a0 b0 a1 b1 a2 b2}, per kernel row a = (w0, w1) and
@ b = (w1, w2) (doubled). Sums only (no bias): the requantization runs after, so every value here stays in a
@ register.
    .syntax unified
    .cpu cortex-m4
    .thumb
    .text

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
