# bios-serial.boot.S - a boot sector that talks over COM1 through INT 14h: it initialises the
# port (AH=00h, 9600 8N1), sends "ready\r\n" (AH=01h), then echoes each byte it receives
# (AH=02h, retried while it times out) upper-cased, until it gets '.', and ends the run.
#
# Expect (COM1 input "hi."): COM1 output "ready\r\nHI.", debug-exit 0x42 (66). Under tskvm's
# BIOS the console input goes to COM1, not to the keyboard, because the guest reads COM1.
    .code16
    .include "serial.inc"
    .include "bios.inc"
    .text
    .globl _start
_start:
    xor     %ax, %ax
    mov     %ax, %ds
    cld
    mov     $0x00e3, %ax            # init: 9600 baud (111), no parity, 1 stop bit, 8 bits
    xor     %dx, %dx
    int     $BIOS_SERIAL
    mov     $ready, %si
1:  lodsb
    test    %al, %al
    jz      2f
    mov     $0x01, %ah
    xor     %dx, %dx
    int     $BIOS_SERIAL
    jmp     1b
2:  mov     $0x02, %ah              # receive (AH bit 7: timed out, try again)
    xor     %dx, %dx
    int     $BIOS_SERIAL
    test    $0x80, %ah
    jnz     2b
    cmp     $'a', %al
    jb      3f
    cmp     $'z', %al
    ja      3f
    sub     $0x20, %al
3:  mov     %al, %cl
    mov     $0x01, %ah
    xor     %dx, %dx
    int     $BIOS_SERIAL
    cmp     $'.', %cl
    jne     2b
    debug_exit 0x42
4:  cli
    hlt
    jmp     4b

ready: .asciz "ready\r\n"
