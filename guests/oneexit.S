# oneexit.S - flat guest: exactly one VM exit.
#
# Writes 7 to the debug-exit port 0xF4 as its first instruction.
#
# Expect: stdout empty, exactly 1 exit (PIO), reason debug-exit, exitCode 7, CLI status 7.
    .code16
    .include "serial.inc"
    .text
    .globl _start
_start:
    debug_exit 7
1:  cli
    hlt
    jmp     1b
