/* qemu-cortex-m4 port: CMSDK APB UART0 for the protocol, SysTick for time. Under `qemu -icount shift=0`
 * one instruction takes 1 ns and SysTick runs at the 25 MHz system clock, so one tick is 40 instructions
 * and th_timestamp() counts instructions deterministically (DWT's cycle counter does not tick in QEMU). */
#include <stdint.h>

#include "th_port.h"

#define UART0 0x40004000u
#define UART_DATA (*(volatile uint32_t *)(UART0 + 0x0))
#define UART_STATE (*(volatile uint32_t *)(UART0 + 0x4))
#define UART_CTRL (*(volatile uint32_t *)(UART0 + 0x8))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0 + 0x10))
#define STATE_TX_FULL 1u
#define STATE_RX_FULL 2u

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYSTICK_RELOAD 0xFFFFFFu
#define INSTRUCTIONS_PER_TICK 40u

const char th_timestamp_unit[] = "instr";
const char th_port_name[] = "edgekd-qemu-cortex-m4";

static volatile uint32_t systick_wraps;

void SysTick_Handler(void) { systick_wraps++; }

void th_init(void) {
    UART_BAUDDIV = 16;
    UART_CTRL = 3; /* TX and RX enable: without RX enable QEMU delivers no input */
    SYST_RVR = SYSTICK_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 7; /* processor clock, interrupt on wrap, enable */
}

int th_serial_read(void) {
    while (!(UART_STATE & STATE_RX_FULL)) {
    }
    return (int)(UART_DATA & 0xFFu);
}

void th_serial_write(const char *data, size_t length) {
    for (size_t i = 0; i < length; i++) {
        while (UART_STATE & STATE_TX_FULL) {
        }
        UART_DATA = (uint8_t)data[i];
    }
}

uint64_t th_timestamp(void) {
    uint32_t wraps, value;
    do { /* a wrap between the two reads is seen as a changed count: read again */
        wraps = systick_wraps;
        value = SYST_CVR;
    } while (wraps != systick_wraps);
    uint64_t ticks = ((uint64_t)wraps << 24) + (SYSTICK_RELOAD - value);
    return ticks * INSTRUCTIONS_PER_TICK;
}
