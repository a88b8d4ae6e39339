# spin.S - flat guest: spins forever without a single VM exit.
#
# Prints "spinning\n", then `1: jmp 1b` (no I/O, no MMIO, no hlt).
#
# Expect: stdout = "spinning\n", and only a timeout ends the run: reason timeout, CLI exit status
#         124 (e.g. with --timeout 500ms). Useful to test the vCPU kick (immediate_exit + signal).
    .code16
    .include "serial.inc"
    .text
    .globl _start
_start:
    cld
    serial_puts msg
1:  jmp     1b

msg:
    .asciz  "spinning\n"
