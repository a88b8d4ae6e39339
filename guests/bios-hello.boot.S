# bios-hello.boot.S - the smallest BIOS boot sector: one line through INT 10h teletype, then halt.
#
# Boots through tskvm's BIOS (or SeaBIOS: bench/bios.mjs boots it under QEMU too). Prints
# "Hello from the BIOS!\r\n" with INT 10h AH=0Eh and halts with interrupts off.
#
# Expect: the console (stdout) shows "Hello from the BIOS!", the screen's first row too; reason halt.
    .code16
    .include "serial.inc"
    .include "bios.inc"
    .text
    .globl _start
_start:
    xor     %ax, %ax
    mov     %ax, %ds
    cld
    bios_puts hello
    cli
1:  hlt
    jmp     1b

hello:
    .asciz  "Hello from the BIOS!\r\n"
