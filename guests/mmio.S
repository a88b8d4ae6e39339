# mmio.S - flat guest: MMIO exits just above RAM. Run it with --memory 1M (1048576 bytes).
#
# Reads the byte at guest-physical 0x100000 (segment 0xFFFF, offset 0x10: just above 1 MiB of RAM,
# so KVM_EXIT_MMIO), checks it is 0xFF (unassigned MMIO reads all ones), writes 0x5A there (ignored,
# another MMIO exit), reads it again and checks it is still 0xFF, then prints "mmio ok\n" (or
# "mmio bad\n") and writes 0 (ok) / 1 (bad) to 0xF4.
#
# Expect (--memory 1M): stdout = "mmio ok\n", reason debug-exit, exitCode 0, CLI status 0.
# With more RAM the address is ordinary RAM (reads back 0x5A): "mmio bad\n", exitCode 1.
    .code16
    .include "serial.inc"
    .text
    .globl _start
_start:
    cld
    mov     $0xffff, %ax
    mov     %ax, %es                # %es:0x10 = 0xFFFF0 + 0x10 = 0x100000
    movb    %es:0x10, %al
    cmp     $0xff, %al
    jne     bad
    movb    $0x5a, %es:0x10
    movb    %es:0x10, %al
    cmp     $0xff, %al
    jne     bad
    serial_puts ok_msg
    debug_exit 0
bad:
    serial_puts bad_msg
    debug_exit 1
1:  cli
    hlt
    jmp     1b

ok_msg:
    .asciz  "mmio ok\n"
bad_msg:
    .asciz  "mmio bad\n"
