@ The inner loops of the Cortex-M4 3x3 depthwise convolution (depthwise_dsp.c): one output row of one channel
@ from three plane rows of int16 pairs, weights w = {a0 b0 a1 b1 a2 b2}, per kernel row a = (w0, w1) and
@ b = (w1, w2) (doubled). Sums only (no bias): the requantization runs after, so every value here stays in a
@ register.
    .syntax unified
    .cpu cortex-m4
    .thumb
    .text

#include "requantize.inc"

@ Stride 1: outputs 2k and 2k + 1 from words k and k + 1 of each row (r0 r1 r2), sums in r10 r11.
    .macro sums_s1
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
    .endm

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
    sums_s1
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

@ The fused kernels: every output row of one channel's band, sums, bias, requantization and int8 stores in one
@ call, for layers on the full int8 range (a fused clamp takes the sums kernels above and requantizes in C).
@   void ekd_dw_band_s1(const dw_job *job), void ekd_dw_band_s2(const dw_job *job)
@ job (depthwise_dsp.c): {rows, plane, out, out_row, count, pairs, odd, block}. `rows` lists channel 0's plane
@ row for each input row of the band, `plane` bytes on for this channel; `out` is the band's first output of
@ this channel, `out_row` the bytes between output rows; `count` output rows of 2 `pairs` + `odd` outputs.
@ `block` points at the channel's weights w[6]; the five words before them are {bias2, mult, high, right, step}
@ (step: the bytes between two outputs of the channel). Per two outputs: 36 instructions at stride 1, 39 at 2.

@ The bias, requantization and stores of the sums in r10 r11, then the weights back (r12 -> block).
    .macro store_pair
    ldmdb   r12, {r4-r8}            @ bias2, mult, high, right, step
    add     r10, r10, r4
    add     r11, r11, r4
    requantize r10, r3, r5, r6, r7
    requantize r11, r9, r5, r6, r7
    strb    r10, [lr]
    strb    r11, [lr, r8]
    add     lr, lr, r8, lsl #1
    ldm     r12, {r4-r9}
    .endm

@ One output from words 0 and 1 of the rows at r0 r1 r2 (the odd last output); the weights are not restored.
    .macro store_one
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
    ldmdb   r12, {r4-r8}
    add     r10, r10, r4
    requantize r10, r3, r5, r6, r7
    strb    r10, [lr]
    .endm

@ Stride 2: outputs x and x + 1 from words x, x + 1 and x + 2 of one row (a, b: its weights).
    .macro sums_s2_row row, a, b, first
    ldr     r3, [\row], #4
    .if \first
    smuad   r10, \a, r3
    .else
    smlad   r10, \a, r3, r10
    .endif
    ldr     r3, [\row], #4
    smlatb  r10, \b, r3, r10
    .if \first
    smuad   r11, \a, r3
    .else
    smlad   r11, \a, r3, r11
    .endif
    ldr     r3, [\row]
    smlatb  r11, \b, r3, r11
    .endm

@ The whole band. Frame: [sp] rows cursor, [4] plane, [8] out, [12] out_row, [16] rows left, [20] pairs,
@ [24] odd, [28] block, [32] the end of this row's pairs.
    .macro band stride
    push    {r4-r11, lr}
    ldm     r0, {r4-r11}
    sub     sp, #4
    push    {r4-r11}
1:
    ldr     r12, [sp, #0]
    ldm     r12, {r0-r2}            @ channel 0's plane rows for this output row
    add     r12, r12, #4 * \stride
    str     r12, [sp, #0]
    ldr     r3, [sp, #4]
    add     r0, r0, r3
    add     r1, r1, r3
    add     r2, r2, r3
    ldr     r12, [sp, #28]
    ldr     lr, [sp, #8]
    ldr     r3, [r12, #-4]          @ step
    ldr     r4, [sp, #20]
    mul     r4, r4, r3
    add     r4, lr, r4, lsl #1
    str     r4, [sp, #32]
    cmp     lr, r4
    ldm     r12, {r4-r9}            @ the weights (flags kept)
    beq     3f
2:
    .if \stride == 1
    sums_s1
    .else
    sums_s2_row r0, r4, r5, 1
    sums_s2_row r1, r6, r7, 0
    sums_s2_row r2, r8, r9, 0
    .endif
    store_pair
    ldr     r3, [sp, #32]
    cmp     lr, r3
    bne     2b
3:
    ldr     r3, [sp, #24]
    cbz     r3, 4f
    store_one
4:
    ldr     r3, [sp, #8]
    ldr     r4, [sp, #12]
    add     r3, r3, r4
    str     r3, [sp, #8]
    ldr     r3, [sp, #16]
    subs    r3, r3, #1
    str     r3, [sp, #16]
    bne     1b
    add     sp, #36
    pop     {r4-r11, pc}
    .endm

    .global ekd_dw_band_s1
    .type ekd_dw_band_s1, %function
    .thumb_func
ekd_dw_band_s1:
    band 1
    .size ekd_dw_band_s1, . - ekd_dw_band_s1

    .global ekd_dw_band_s2
    .type ekd_dw_band_s2, %function
    .thumb_func
ekd_dw_band_s2:
    band 2
    .size ekd_dw_band_s2, . - ekd_dw_band_s2
