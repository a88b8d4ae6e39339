# strio.S - flat guest: string I/O instructions (KVM_EXIT_IO with count > 1).
#
# (a) `rep outsb` of "String I/O: rep outsb works\n" to COM1 THR (0x3F8) in one instruction
#     (CX = 28, no THRE polling);
# (b) `rep insb` of 16 bytes from the unassigned port 0x0200 into a zeroed buffer, then checks all
#     16 bytes are 0xFF (unassigned ports read all ones);
# (c) `rep outsw` of 4 words to port 0x80 (POST codes, ignored);
# then prints "insb ok\n" (or "insb bad\n") with THRE polling and writes 0 (ok) / 1 (bad) to 0xF4.
#
# Expect: stdout = "String I/O: rep outsb works\ninsb ok\n", reason debug-exit, exitCode 0,
#         CLI status 0.
# Exits (measured on the development host, kvm_pvm): the `rep outsb` and `rep outsw` come out as
# one KVM_EXIT_IO per element (count = 1), the `rep insb` as one exit with count = 16; 50 exits in
# all. Another KVM may batch differently: a VMM must honour io.count either way.
    .code16
    .include "serial.inc"
    .set UNASSIGNED_PORT, 0x0200
    .text
    .globl _start
_start:
    cld
    # (a) one rep outsb of the whole message
    mov     $msg, %si
    mov     $msg_len, %cx
    mov     $COM1_THR, %dx
    rep outsb

    # (b) rep insb of 16 bytes from an unassigned port into buf (%es:%di)
    mov     $buf, %di
    mov     $16, %cx
    mov     $UNASSIGNED_PORT, %dx
    rep insb
    mov     $buf, %si
    mov     $16, %cx
1:  lodsb
    cmp     $0xff, %al
    jne     bad
    loop    1b

    # (c) rep outsw of 4 words to port 0x80
    mov     $words, %si
    mov     $4, %cx
    mov     $POST_PORT, %dx
    rep outsw

    serial_puts ok_msg
    debug_exit 0
bad:
    serial_puts bad_msg
    debug_exit 1
2:  cli
    hlt
    jmp     2b

msg:
    .ascii  "String I/O: rep outsb works\n"
    .set msg_len, . - msg
ok_msg:
    .asciz  "insb ok\n"
bad_msg:
    .asciz  "insb bad\n"
    .balign 2
words:
    .word   0x1111, 0x2222, 0x3333, 0x4444
buf:
    .fill   16, 1, 0
