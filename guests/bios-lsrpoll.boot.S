# bios-lsrpoll.boot.S - a boot sector that reads COM1 by polling LSR.DR, with no BIOS call and no
# receive interrupt: it sends "ready\r\n" (polling THRE), then echoes each byte it receives until
# '.', and ends the run. Under tskvm's BIOS the console input is shared between the keyboard and
# COM1 until the guest shows which it reads: polling LSR for data must count as reading COM1.
#
# Expect (COM1 input "hi."): COM1 output "ready\r\nhi.", debug-exit 0x42 (66).
    .code16
    .include "serial.inc"
    .text
    .globl _start
_start:
    xor     %ax, %ax
    mov     %ax, %ds
    cld
    serial_puts ready
1:  serial_getc                     # polls LSR until DR, then reads RBR
    mov     %al, %cl
    serial_putc
    cmp     $'.', %cl
    jne     1b
    debug_exit 0x42
2:  cli
    hlt
    jmp     2b

ready: .asciz "ready\r\n"
