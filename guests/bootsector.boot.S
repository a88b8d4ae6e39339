# bootsector.boot.S - boot sector guest: 512 bytes ending 0x55 0xAA, linked at 0x7C00.
#
# Loaded at 0x7C00 with CS:IP = 0000:7C00, DL = 0x80, SS:SP = 0000:7C00. Sets DS = ES = 0 itself
# (the contract only fixes CS, SS, SP, IP and DL), prints "Hello from the boot sector\n", then
# checks DL == 0x80 and CS == 0 and prints "dl ok\n" (or "dl bad\n"), and writes 0x55 to 0xF4.
#
# Expect: stdout = "Hello from the boot sector\ndl ok\n", reason debug-exit, exitCode 0x55 (85),
#         CLI status 85. The image is exactly 512 bytes; guests/build.mjs adds the signature.
    .code16
    .include "serial.inc"
    .text
    .globl _start
_start:
    cli
    cld
    xor     %ax, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %dl, %bl                # keep the boot drive: serial_putc clobbers %dx
    serial_puts hello_msg
    cmp     $0x80, %bl
    jne     bad
    mov     %cs, %ax
    test    %ax, %ax
    jnz     bad
    serial_puts ok_msg
    jmp     done
bad:
    serial_puts bad_msg
done:
    debug_exit 0x55
1:  hlt
    jmp     1b

hello_msg:
    .asciz  "Hello from the boot sector\n"
ok_msg:
    .asciz  "dl ok\n"
bad_msg:
    .asciz  "dl bad\n"
