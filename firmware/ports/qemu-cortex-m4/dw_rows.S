@ The Cortex-M4 3x3 depthwise convolution's inner loops (depthwise_dsp.c): every output row of one channel's
@ band, sums, bias, requantization and int8 stores in one call, for layers on the full int8 range.
@   void ekd_dw_band_s1(const dw_job *job), ekd_dw_band_s2 (one input channel: a plain int16 plane, words 4
@   bytes apart), ekd_dw_band_s1_x4, ekd_dw_band_s2_x4 (four channels' words interleaved, 16 bytes apart)
@ job (depthwise_dsp.c): {rows, plane, out, out_row, count, quads, rest, block}. `rows` lists channel 0's plane
@ row for each input row of the band, `plane` bytes on for this channel; `out` is the band's first output of
@ this channel, `out_row` the bytes between output rows; `count` output rows of 4 `quads` + `rest` outputs.
@ `block` points at the channel's weights w = {a0 b0 a1 b1 a2 b2}: per kernel row a = (w0, w1), b = (w1, w2),
@ doubled int16 pairs; the five words before them are {bias2, mult, high, right, step} (step: the bytes
@ between two outputs of the channel). Four outputs per step: 63 instructions at stride 1, 69 at stride 2; a
@ last pair and a last single output take their own steps.
    .syntax unified
    .cpu cortex-m4
    .thumb
    .text

#include "dsp_macros.inc"

@ Stride 1: outputs 2k and 2k + 1 from words k and k + 1 of one row (a = (w0, w1), b = (w1, w2): its weights;
@ ws: bytes between words); sums in r10 r11, doubled, no bias. The first row starts them.
    .macro sums_s1_row row, a, b, first, ws
    ldr     r3, [\row], #\ws
    .if \first
    smuad   r10, \a, r3              @ w0 x0 + w1 x1
    smulbt  r11, \a, r3              @ w0 x1
    .else
    smlad   r10, \a, r3, r10
    smlabt  r11, \a, r3, r11
    .endif
    ldr     r3, [\row]
    smlatb  r10, \b, r3, r10         @ + w2 x2
    smlad   r11, \b, r3, r11         @ + w1 x2 + w2 x3
    .endm

@ Stride 2: outputs x and x + 1 from words x, x + 1 and x + 2 of one row (a, b: its weights).
    .macro sums_s2_row row, a, b, first, ws
    ldr     r3, [\row], #\ws
    .if \first
    smuad   r10, \a, r3
    .else
    smlad   r10, \a, r3, r10
    .endif
    ldr     r3, [\row], #\ws
    smlatb  r10, \b, r3, r10
    .if \first
    smuad   r11, \a, r3
    .else
    smlad   r11, \a, r3, r11
    .endif
    ldr     r3, [\row]
    smlatb  r11, \b, r3, r11
    .endm

@ acc += a * x by `op`, the first kernel row starting at the bias in r10 instead.
    .macro mac op, acc, a, x, first
    .if \first
    \op     \acc, \a, \x, r10
    .else
    \op     \acc, \a, \x, \acc
    .endif
    .endm

@ Four outputs from one kernel row at stride 1: words k, k + 1, k + 2 of the row, its weights a, b loaded from
@ `wofs` bytes into the block (r12); sums in r6-r9.
    .macro quad_s1_row row, first, wofs, ws
    ldrd    r4, r5, [r12, #\wofs]
    ldr     r3, [\row], #\ws        @ (x0 x1)
    mac     smlad, r6, r4, r3, \first   @ w0 x0 + w1 x1
    mac     smlabt, r7, r4, r3, \first  @ w0 x1
    ldr     r3, [\row], #\ws        @ (x2 x3)
    smlatb  r6, r5, r3, r6          @ + w2 x2
    smlad   r7, r5, r3, r7          @ + w1 x2 + w2 x3
    mac     smlad, r8, r4, r3, \first
    mac     smlabt, r9, r4, r3, \first
    ldr     r3, [\row]              @ (x4 x5)
    smlatb  r8, r5, r3, r8
    smlad   r9, r5, r3, r9
    .endm

@ The same at stride 2: output i from words i (w0, w1) and i + 1 (w2), words k to k + 4.
    .macro quad_s2_row row, first, wofs, ws
    ldrd    r4, r5, [r12, #\wofs]
    ldr     r3, [\row], #\ws
    mac     smlad, r6, r4, r3, \first
    ldr     r3, [\row], #\ws
    smlatb  r6, r5, r3, r6
    mac     smlad, r7, r4, r3, \first
    ldr     r3, [\row], #\ws
    smlatb  r7, r5, r3, r7
    mac     smlad, r8, r4, r3, \first
    ldr     r3, [\row], #\ws
    smlatb  r8, r5, r3, r8
    mac     smlad, r9, r4, r3, \first
    ldr     r3, [\row]
    smlatb  r9, r5, r3, r9
    .endm

@ Four outputs: sums from the rows at r0 r1 r2, requantization, stores at lr (advanced).
    .macro quad stride, ws
    ldr     r10, [r12, #-20]        @ bias2
    quad_s\stride\()_row r0, 1, 0, \ws
    quad_s\stride\()_row r1, 0, 8, \ws
    quad_s\stride\()_row r2, 0, 16, \ws
    ldmdb   r12, {r3, r4, r5, r10, r11} @ bias2 (unused), mult, high, right, step
    requantize r6, r3, r4, r5, r10
    requantize r7, r3, r4, r5, r10
    requantize r8, r3, r4, r5, r10
    requantize r9, r3, r4, r5, r10
    strb    r6, [lr]
    strb    r7, [lr, r11]
    add     lr, lr, r11, lsl #1
    strb    r8, [lr]
    strb    r9, [lr, r11]
    add     lr, lr, r11, lsl #1
    .endm

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
    .macro store_one ws
    ldr     r3, [r0]
    smuad   r10, r4, r3
    ldr     r3, [r0, #\ws]
    smlatb  r10, r5, r3, r10
    ldr     r3, [r1]
    smlad   r10, r6, r3, r10
    ldr     r3, [r1, #\ws]
    smlatb  r10, r7, r3, r10
    ldr     r3, [r2]
    smlad   r10, r8, r3, r10
    ldr     r3, [r2, #\ws]
    smlatb  r10, r9, r3, r10
    ldmdb   r12, {r4-r8}
    add     r10, r10, r4
    requantize r10, r3, r5, r6, r7
    strb    r10, [lr]
    .endm

@ A whole band. Frame: [sp] rows cursor, [4] plane, [8] out, [12] out_row, [16] rows left, [20] quads,
@ [24] rest, [28] block, [32] the end of this row's quads.
    .macro band stride, ws
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
    add     r4, lr, r4, lsl #2
    str     r4, [sp, #32]
    cmp     lr, r4
    beq     3f
2:
    quad    \stride, \ws
    ldr     r3, [sp, #32]
    cmp     lr, r3
    bne     2b
3:
    ldr     r3, [sp, #24]           @ rest: 0-3 outputs
    cmp     r3, #0
    beq     5f
    ldm     r12, {r4-r9}            @ the weights (flags kept)
    cmp     r3, #2
    blo     4f
    .if \stride == 1
    sums_s1_row r0, r4, r5, 1, \ws
    sums_s1_row r1, r6, r7, 0, \ws
    sums_s1_row r2, r8, r9, 0, \ws
    .else
    sums_s2_row r0, r4, r5, 1, \ws
    sums_s2_row r1, r6, r7, 0, \ws
    sums_s2_row r2, r8, r9, 0, \ws
    .endif
    store_pair
    ldr     r3, [sp, #24]
    tst     r3, #1
    beq     5f
4:
    store_one \ws
5:
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

    .macro band_function name, stride, ws
    function \name
    band \stride, \ws
    endfunction \name
    .endm

    band_function ekd_dw_band_s1, 1, 4
    band_function ekd_dw_band_s2, 2, 4
    band_function ekd_dw_band_s1_x4, 1, 16
    band_function ekd_dw_band_s2_x4, 2, 16

@ void ekd_dw_stem_row(const stem_job *job): one output row of a gray stem (one input channel, an even depth
@ multiplier m), pixel by pixel: the pixel's nine taps are gathered once into five words, held in r0-r4 while
@ every channel's five doubled weight pairs, bias and requantization stream in with two LDMs.
@ job (depthwise_dsp.c): {row0, row1, row2, step, out, out_end, table, table_end}: the plain int16 plane rows of
@ the three input rows at the first output's first tap, `step` bytes between two outputs' first taps, the row's
@ m * out_w outputs, and per channel {w[5], bias2, mult, high, right} with w = (w00 w01) (w10 w11) (w20 w21)
@ (w02 w12) (w22 0) for taps (row0 row0) (row1 row1) (row2 row2) (row0 row1) (row2 its right neighbour).
@ 13 instructions per output, 16 per pixel.
    .macro stem_channel
    ldm     r11!, {r5-r10}          @ weights, bias2 (the sum starts there)
    smlad   r10, r0, r5, r10
    smlad   r10, r1, r6, r10
    smlad   r10, r2, r7, r10
    smlad   r10, r3, r8, r10
    smlad   r10, r4, r9, r10
    ldm     r11!, {r5-r7}           @ mult, high, right
    requantize r10, r8, r5, r6, r7
    strb    r10, [r12], #1
    .endm

    function ekd_dw_stem_row
    push    {r4-r11, lr}
    ldm     r0, {r4-r11}
    push    {r4-r11}                @ frame: [sp] rows, [12] step, [16] out, [20] out_end, [24] table, [28] end
    mov     r12, r8
    mov     lr, r11
1:
    ldm     sp, {r5-r8}             @ the three rows, step
    ldr     r0, [r5]                @ (x00 x01)
    ldr     r3, [r5, #4]            @ (x02 x03)
    ldr     r1, [r6]                @ (x10 x11)
    ldr     r9, [r6, #4]            @ (x12 x13)
    ldr     r2, [r7]                @ (x20 x21)
    ldr     r4, [r7, #4]            @ (x22 x23): x23 meets a zero weight
    pkhbt   r3, r3, r9, lsl #16     @ (x02 x12)
    add     r5, r5, r8
    add     r6, r6, r8
    add     r7, r7, r8
    stm     sp, {r5-r7}
    ldr     r11, [sp, #24]
2:
    stem_channel
    stem_channel
    cmp     r11, lr
    bne     2b
    ldr     r5, [sp, #20]
    cmp     r12, r5
    bne     1b
    add     sp, #32
    pop     {r4-r11, pc}
    endfunction ekd_dw_stem_row

@ void ekd_dw_unpack4(const int8_t *src, uint32_t in_c, uint32_t *dst, const uint32_t job[4])
@ One input row of four channels into interleaved int16 words (x + offset): word k holds elements 2k, 2k + 1 of
@ channels 0-3 in turn. job = {pairs, offsets, lead, trail}: `lead` 1 when pixel 0 ends a word (an odd left
@ padding; the element before it stays 0), then `pairs` pixel pairs, then `trail` 1 for a last pixel alone
@ (the element after it 0). A pair: two pixels' words repacked (PKHBT / PKHTB) so that SXTAB16 yields each
@ channel's pair; 12 instructions for eight elements.
    function ekd_dw_unpack4
    push    {r4-r11, lr}
    ldr     r11, [r3, #12]          @ trail
    push    {r11}
    ldm     r3, {r3, r12, lr}       @ pairs, offsets, lead
    cmp     lr, #0
    beq     1f
    ldr     r4, [r0]
    add     r0, r0, r1
    sxtab16 r5, r12, r4             @ channels 0 and 2
    sxtab16 r6, r12, r4, ror #8     @ channels 1 and 3
    movs    r7, #0
    lsl     r8, r5, #16             @ (0, x) for each channel
    lsl     r9, r6, #16
    pkhtb   r10, r5, r7, asr #16
    pkhtb   r11, r6, r7, asr #16
    stmia   r2!, {r8-r11}
1:
    cbz     r3, 3f
2:
    ldr     r5, [r0, r1]            @ pixel x + 1
    ldr     r4, [r0]                @ pixel x
    add     r0, r0, r1, lsl #1
    pkhbt   r6, r4, r5, lsl #16     @ bytes x0 x1 y0 y1
    pkhtb   r7, r5, r4, asr #16     @ bytes x2 x3 y2 y3
    sxtab16 r8, r12, r6
    sxtab16 r9, r12, r6, ror #8
    sxtab16 r10, r12, r7
    sxtab16 r11, r12, r7, ror #8
    stmia   r2!, {r8-r11}
    subs    r3, r3, #1
    bne     2b
3:
    pop     {r3}
    cbz     r3, 4f
    ldr     r4, [r0]
    sxtab16 r5, r12, r4
    sxtab16 r6, r12, r4, ror #8
    uxth    r8, r5                  @ (x, 0) for each channel
    uxth    r9, r6
    lsr     r10, r5, #16
    lsr     r11, r6, #16
    stmia   r2!, {r8-r11}
4:
    pop     {r4-r11, pc}
    endfunction ekd_dw_unpack4
