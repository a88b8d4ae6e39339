# bios-bench.boot.S - the boot-time benchmark's guest (bench/bios.mjs): one line through INT 10h
# teletype, then a write to the debug-exit port, so tskvm and QEMU (with isa-debug-exit at 0xF4)
# both end the run the moment the line is out. BIOS_BENCH_LINES (default 1) repeats the line:
# the benchmark builds a second image with 100 lines to price one teletype call.
#
# Expect: "Hello from the BIOS!\r\n" (times the line count) on the screen and console, then
# debug-exit 0x31 (49; QEMU reports (0x31 << 1) | 1 = 99).
    .code16
    .include "serial.inc"
    .include "bios.inc"
    .ifndef BIOS_BENCH_LINES
    .set    BIOS_BENCH_LINES, 1
    .endif
    .text
    .globl _start
_start:
    xor     %ax, %ax
    mov     %ax, %ds
    cld
    mov     $BIOS_BENCH_LINES, %cx
1:  push    %cx
    bios_puts hello
    pop     %cx
    loop    1b
    debug_exit 0x31
2:  cli
    hlt
    jmp     2b

hello:
    .asciz  "Hello from the BIOS!\r\n"
