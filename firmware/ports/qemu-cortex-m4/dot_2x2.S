@ ekd_dot_2x2: the inner loop of the Cortex-M4 convolution, two output channels x two pixels.
@   void ekd_dot_2x2(const int8_t *wa, const int8_t *wb, const int32_t *columns, uint32_t groups, int32_t acc[4])
@ wa, wb: 4 * groups int8 weights of each channel (any alignment: LDR may be unaligned on the M4).
@ columns: per group of four inputs the words [x0 x2] [x1 x3] of pixel 0 then of pixel 1, int16 lanes with the
@ input offset added (4-byte aligned, read with LDM). acc: a0 a1 (channel a, pixels 0 1), b0 b1; added to.
@ Per group: 1 LDM + 2 x (LDR + 2 SXTB16 + 4 SMLAD) + CMP + BNE = 17 instructions for 16 MACs.
    .syntax unified
    .cpu cortex-m4
    .thumb
    .text

#include "dsp_macros.inc"

@ One group of four inputs: r2 -> columns [x0 x2][x1 x3] of pixels 0 and 1, r0 / r1 -> the two channels'
@ weights; r4 r5 (channel a, pixels 0 1) and r6 r7 (channel b) accumulate. 15 instructions, 16 MACs.
    .macro dot_group
    ldm     r2!, {r8-r11}
    ldr     r12, [r0], #4
    sxtb16  lr, r12
    sxtb16  r12, r12, ror #8
    smlad   r4, lr, r8, r4
    smlad   r4, r12, r9, r4
    smlad   r5, lr, r10, r5
    smlad   r5, r12, r11, r5
    ldr     r12, [r1], #4
    sxtb16  lr, r12
    sxtb16  r12, r12, ror #8
    smlad   r6, lr, r8, r6
    smlad   r6, r12, r9, r6
    smlad   r7, lr, r10, r7
    smlad   r7, r12, r11, r7
    .endm
    function ekd_dot_2x2
    push    {r4-r11, lr}
    ldr     r12, [sp, #36]
    push    {r12}
    ldm     r12, {r4-r7}
    add     r3, r2, r3, lsl #4
    cmp     r2, r3
    beq     2f
1:
    dot_group
    cmp     r2, r3
    bne     1b
2:
    pop     {r12}
    stm     r12, {r4-r7}
    pop     {r4-r11, pc}
    endfunction ekd_dot_2x2

@ ekd_conv_channels: ekd_dot_2x2 over every pair of output channels, without a call per pair.
@   void ekd_conv_channels(const int8_t *filter, const int32_t *columns, uint32_t groups, uint32_t depth,
@                          uint32_t pairs, const int32_t *bias, int32_t *acc)
@ filter: [channel][depth] int8; pair p uses channels 2p and 2p+1. acc[4p..4p+3] = channel 2p at pixels 0 and 1,
@ channel 2p+1 at pixels 0 and 1, each started at its bias (bias NULL: 0). bias must be 4-byte aligned.
@ groups >= 1, pairs >= 1. Between pairs only the bias, the stores and the pointers move: 18 instructions.
    function ekd_conv_channels
    push    {r4-r11, lr}
    sub     sp, #16                 @ [sp] depth, [4] depth - 4 groups, [8] columns, [12] acc end
    str     r3, [sp, #0]
    sub     r12, r3, r2, lsl #2
    str     r12, [sp, #4]
    str     r1, [sp, #8]
    ldr     r12, [sp, #52]          @ pairs (fifth argument)
    ldr     r4, [sp, #60]           @ acc (seventh argument)
    add     r12, r4, r12, lsl #4
    str     r12, [sp, #12]
    add     r3, r1, r2, lsl #4      @ end of the columns (the same for every pair)
    mov     r2, r1
    ldr     r12, [sp, #0]
    add     r1, r0, r12             @ wb = wa + depth
3:
    ldr     r12, [sp, #56]          @ bias (sixth argument), advanced in place
    cmp     r12, #0
    beq     4f
    ldrd    r4, r6, [r12], #8
    str     r12, [sp, #56]
    mov     r5, r4
    mov     r7, r6
    b       6f
4:
    movs    r4, #0
    movs    r5, #0
    movs    r6, #0
    movs    r7, #0
6:
    dot_group
    cmp     r2, r3
    bne     6b
    ldr     r12, [sp, #60]          @ acc (seventh argument), advanced in place
    stmia   r12!, {r4-r7}
    str     r12, [sp, #60]
    ldr     r11, [sp, #12]
    cmp     r12, r11
    beq     9f
    ldr     r12, [sp, #4]
    add     r0, r1, r12             @ the next pair's wa: past wb's tail
    ldr     r12, [sp, #0]
    add     r1, r0, r12
    ldr     r2, [sp, #8]
    b       3b
9:
    add     sp, #16
    pop     {r4-r11, pc}
    endfunction ekd_conv_channels

@ ekd_conv_requant: requantizes the accumulators of a pixel pair, [channel][pixel], in four instructions each
@ (dsp_common.h) after doubling, into both pixels' int8 outputs. Full int8 range only (no fused clamp).
@   void ekd_conv_requant(const int32_t *acc, uint32_t channels, const int32_t *table, int8_t *out0,
@                         int8_t *out1)
@ table: {mult, high, right} per channel. 17 instructions per channel (two outputs).
    function ekd_conv_requant
    push    {r4-r11, lr}
    ldr     r12, [sp, #36]          @ out1
    add     r1, r0, r1, lsl #3      @ end of acc
1:
    ldm     r2!, {r4-r6}            @ mult, high, right
    ldrd    r7, r8, [r0], #8
    lsl     r7, r7, #1
    lsl     r8, r8, #1
    requantize r7, r9, r4, r5, r6
    requantize r8, r10, r4, r5, r6
    strb    r7, [r3], #1
    strb    r8, [r12], #1
    cmp     r0, r1
    bne     1b
    pop     {r4-r11, pc}
    endfunction ekd_conv_requant

@ ekd_conv_wide: two output channels x two pixels over every pair of channels with the requantization fused in,
@ for the layers the compiler widened (lower.py: whole groups of four inputs, the full int8 range, the closed
@ form's shifts): the weights are int16 already, so a group is one LDM, two LDRD and eight SMLAD, and each pair's
@ four accumulators go from the loop to the four-instruction closed form (dsp_common.h) and the int8 stores
@ without leaving registers.
@   void ekd_conv_wide(const int16_t *filter16, const int32_t *columns, uint32_t groups, const int32_t *table,
@                      uint32_t pairs, int8_t *out, uint32_t step)
@ filter16: per pair, per group, channel a's words (w0 w2) (w1 w3) then channel b's. columns: as for ekd_dot_2x2
@ but doubled (2 (x + offset)), so the sums come out doubled as the closed form wants. table: per pair the
@ doubled biases {a, a, b, b} then {mult, high, right} of a and of b (10 words). out: pixel 0's channel 0; pixel 1's
@ outputs `step` bytes on (0: a lone pixel). ekd_conv_wide2 takes an even number of groups, two per loop.
@ Per group 11 instructions for 16 MACs; between pairs 29, the requantization and stores of four outputs included.
    .macro dot_wide
    ldm     r2!, {r8-r11}
    ldrd    r12, lr, [r0], #8       @ channel a
    smlad   r4, r12, r8, r4
    smlad   r4, lr, r9, r4
    smlad   r5, r12, r10, r5
    smlad   r5, lr, r11, r5
    ldrd    r12, lr, [r0], #8       @ channel b
    smlad   r6, r12, r8, r6
    smlad   r6, lr, r9, r6
    smlad   r7, r12, r10, r7
    smlad   r7, lr, r11, r7
    .endm

@ Every channel pair for the two pixels whose columns are at r2..r3 (r0 -> filter16, r1 -> table). Frame:
@ [sp] columns, [4] out (advanced), [8] step, [12] the table's end.
    .macro channel_pairs unroll
1:
    ldm     r1!, {r4-r7}            @ the sums start at the biases
2:
    dot_wide
    .if \unroll == 2
    dot_wide
    .endif
    cmp     r2, r3
    bne     2b
    ldm     r1!, {r8-r10}
    requantize r4, r11, r8, r9, r10
    requantize r5, r11, r8, r9, r10
    ldm     r1!, {r8-r10}
    requantize r6, r11, r8, r9, r10
    requantize r7, r11, r8, r9, r10
    ldrd    r10, r11, [sp, #4]      @ out, step
    strb    r5, [r10, r11]
    strb    r4, [r10], #1
    strb    r7, [r10, r11]
    strb    r6, [r10], #1
    str     r10, [sp, #4]
    ldr     r2, [sp, #0]
    ldr     r12, [sp, #12]
    cmp     r1, r12
    bne     1b
    .endm

    .macro conv_wide unroll
    push    {r4-r11, lr}
    sub     sp, #16                 @ the channel_pairs frame
    str     r1, [sp, #0]
    ldr     r12, [sp, #52]          @ pairs (fifth argument)
    movs    lr, #40
    mla     r12, r12, lr, r3
    str     r12, [sp, #12]
    ldr     r12, [sp, #56]          @ out
    str     r12, [sp, #4]
    ldr     r12, [sp, #60]          @ step
    str     r12, [sp, #8]
    mov     r12, r3
    add     r3, r1, r2, lsl #4      @ end of the columns (the same for every pair)
    mov     r2, r1
    mov     r1, r12                 @ the table
    channel_pairs \unroll
    add     sp, #16
    pop     {r4-r11, pc}
    .endm

    function ekd_conv_wide
    conv_wide 1
    endfunction ekd_conv_wide

    function ekd_conv_wide2
    conv_wide 2
    endfunction ekd_conv_wide2

@ ekd_pointwise_wide: a whole widened stride-1 1x1 conv with an even number of output channels, pixel pair by
@ pixel pair: both pixels' inputs gathered into doubled columns (13 instructions per group of four), then every
@ channel pair as in ekd_conv_wide.
@   void ekd_pointwise_wide(const pointwise_job *job)
@ job (kernels_dsp.c): {columns, out, out_c, table_end, in, in_end, in_c, offsets, groups, filter16, table,
@ unroll}: `in` to `in_end` an even number of pixels, `unroll` 2 for an even number of groups.
    function ekd_pointwise_wide
    push    {r4-r11, lr}
    sub     sp, #48
    ldm     r0, {r1-r12}
    stm     sp, {r1-r12}            @ [sp] the channel_pairs frame, [16] in, [20] in_end, [24] in_c, [28] offsets,
                                    @ [32] groups, [36] filter16, [40] table, [44] unroll
3:
    ldr     r4, [sp, #16]           @ pixel 0
    ldr     r6, [sp, #24]
    add     r6, r4, r6              @ pixel 1
    ldr     r7, [sp, #28]
    ldr     r2, [sp, #0]
    ldr     r3, [sp, #32]
4:
    ldr     r8, [r4], #4
    ldr     r9, [r6], #4
    sxtab16 r10, r7, r8
    sxtab16 r11, r7, r8, ror #8
    sxtab16 r12, r7, r9
    sxtab16 lr, r7, r9, ror #8
    sadd16  r10, r10, r10
    sadd16  r11, r11, r11
    sadd16  r12, r12, r12
    sadd16  lr, lr, lr
    stmia   r2!, {r10-r12, lr}
    subs    r3, r3, #1
    bne     4b
    str     r6, [sp, #16]           @ the next pair's pixel 0
    mov     r3, r2
    ldr     r2, [sp, #0]
    ldr     r0, [sp, #36]
    ldr     r1, [sp, #40]
    ldr     r12, [sp, #44]
    cmp     r12, #2
    beq     6f
    channel_pairs 1
    b       7f
6:
    channel_pairs 2
7:
    ldrd    r10, r11, [sp, #4]      @ out (past pixel 0's outputs), step: past pixel 1's
    add     r10, r10, r11
    str     r10, [sp, #4]
    ldrd    r4, r5, [sp, #16]
    cmp     r4, r5
    bne     3b
    add     sp, #48
    pop     {r4-r11, pc}
    endfunction ekd_pointwise_wide
