# portspin.S - flat guest: writes a port that no device decodes, for ever.
#
# Prints "spinning\n", then `1: out %al, $0x80; jmp 1b`: an endless stream of PIO exits that the
# addon takes without returning to JavaScript (port 0x80 is unassigned).
#
# Expect: stdout = "spinning\n", and only a timeout, a signal or stop() ends the run (reason
#         timeout, CLI exit status 124 with --timeout; 130 on SIGINT; 'stopped'), with exits.io
#         counting the port writes. Tests that the native loop still answers kicks.
    .code16
    .include "serial.inc"
    .text
    .globl _start
_start:
    cld
    serial_puts msg
    xor     %al, %al
1:  out     %al, $POST_PORT
    jmp     1b

msg:
    .asciz  "spinning\n"
