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
    .global ekd_dot_2x2
    .type ekd_dot_2x2, %function
    .thumb_func
ekd_dot_2x2:
    push    {r4-r11, lr}
    ldr     r12, [sp, #36]
    push    {r12}
    ldm     r12, {r4-r7}
    add     r3, r2, r3, lsl #4
    cmp     r2, r3
    beq     2f
1:
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
    cmp     r2, r3
    bne     1b
2:
    pop     {r12}
    stm     r12, {r4-r7}
    pop     {r4-r11, pc}
    .size ekd_dot_2x2, . - ekd_dot_2x2
