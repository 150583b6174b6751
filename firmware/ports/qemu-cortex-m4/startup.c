/* Vector table and reset for the mps2-an386 board: copy .data, zero .bss, paint the stack (so the port can
 * report its high-water mark), start SysTick, run the protocol. */
#include <stdint.h>

#include "ekd_protocol.h"
#include "th_port.h"

extern uint32_t _data_start, _data_end, _data_load, _bss_start, _bss_end, _stack_bottom, _stack_top;

void Reset_Handler(void);
void SysTick_Handler(void);
static void Fault_Handler(void) {
    for (;;) {
    }
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_stack_top), Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, SysTick_Handler,
};

#define STACK_PAINT 0xC0FFEE11u

void Reset_Handler(void) {
    uint32_t *src = &_data_load, *dst = &_data_start;
    while (dst < &_data_end) *dst++ = *src++;
    for (dst = &_bss_start; dst < &_bss_end; dst++) *dst = 0;
    volatile uint32_t *word = &_stack_bottom;
    uint32_t here;
    uintptr_t stop = (uintptr_t)&here - 64; /* stop short of this frame */
    while ((uintptr_t)word < stop) *word++ = STACK_PAINT;
    th_init();
    ekd_main();
    for (;;) {
    }
}

uint32_t th_stack_used(void) {
    const uint32_t *word = &_stack_bottom;
    while (word < &_stack_top && *word == STACK_PAINT) word++;
    return (uint32_t)((uintptr_t)&_stack_top - (uintptr_t)word);
}
