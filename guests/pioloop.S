# pioloop.S - flat guest: PIO exit benchmark.
#
# Executes `out %al, $0x80` 200000 times (port 0x80 is ignored; a 32-bit loop counter), then writes
# 0 to 0xF4. Nothing is printed.
#
# Expect: stdout empty, exactly 200001 PIO exits (200000 to port 0x80 + 1 debug exit),
#         reason debug-exit, exitCode 0, CLI status 0.
    .code16
    .include "serial.inc"
    .set ITERATIONS, 200000
    .text
    .globl _start
_start:
    movl    $ITERATIONS, %ecx
    xor     %al, %al
1:  out     %al, $POST_PORT
    decl    %ecx
    jnz     1b
    debug_exit 0
2:  cli
    hlt
    jmp     2b
