# halt.S - flat guest: halts for good.
#
# Prints "halting\n", then `cli; hlt` (interrupts off, nothing can wake it).
#
# Expect: stdout = "halting\n", reason halt, CLI exit status 0.
    .code16
    .include "serial.inc"
    .text
    .globl _start
_start:
    cld
    serial_puts msg
1:  cli
    hlt
    jmp     1b                      # if something did wake it, halt again

msg:
    .asciz  "halting\n"
