# reset.S - flat guest: resets the machine through the i8042.
#
# Prints "resetting\n", then writes 0xFE (pulse reset line) to the i8042 command port 0x64.
#
# Expect: stdout = "resetting\n", reason reset, CLI exit status 0.
    .code16
    .include "serial.inc"
    .text
    .globl _start
_start:
    cld
    serial_puts msg
    mov     $I8042_CMD_RESET, %al
    out     %al, $I8042_CMD_PORT
1:  cli                             # not reached when the VMM honours the reset
    hlt
    jmp     1b

msg:
    .asciz  "resetting\n"
