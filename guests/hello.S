# hello.S - flat guest: the "hello world" of tskvm.
#
# Prints "Hello from a tskvm guest!\n" over COM1, polling LSR.THRE before every byte, then writes
# 42 to the debug-exit port 0xF4 as a 4-byte `outl` (exercises a 4-byte OUT).
#
# Expect: stdout = "Hello from a tskvm guest!\n" (26 bytes), reason debug-exit, exitCode 42,
#         CLI exit status 42.
    .code16
    .include "serial.inc"
    .text
    .globl _start
_start:
    cld
    serial_puts msg
    movl    $42, %eax
    mov     $DEBUG_EXIT_PORT, %dx
    outl    %eax, %dx
1:  cli                             # not reached: the VMM ends the run at the OUT above
    hlt
    jmp     1b

msg:
    .asciz  "Hello from a tskvm guest!\n"
