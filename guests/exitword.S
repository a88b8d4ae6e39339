# exitword.S - flat guest: a 2-byte debug exit.
#
# Writes 0x1234 to the debug-exit port 0xF4 with a 2-byte `outw`.
#
# Expect: stdout empty, reason debug-exit, exitCode 0x1234 (4660), CLI status 0x34 (52).
    .code16
    .include "serial.inc"
    .text
    .globl _start
_start:
    mov     $0x1234, %ax
    mov     $DEBUG_EXIT_PORT, %dx
    outw    %ax, %dx
1:  cli
    hlt
    jmp     1b
