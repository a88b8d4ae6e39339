# echo.S - flat guest: serial echo.
#
# Reads bytes from COM1 (poll LSR.DR, read RBR) and writes each one back (poll LSR.THRE, write
# THR). A NUL byte (0x00) is not echoed: the guest then writes the number of bytes it echoed so
# far, as a 32-bit `outl`, to the debug-exit port 0xF4, ending the run.
#
# Expect: with stdin = "abc\0", stdout = "abc", reason debug-exit, exitCode 3, CLI status 3.
#         In general stdout = the input up to the first NUL, exitCode = its length (CLI status =
#         length & 0xFF). Without a NUL in the input the guest waits for more forever (a timeout,
#         or EOF handling by the test, ends it; EOF of stdin does not end the run).
    .code16
    .include "serial.inc"
    .text
    .globl _start
_start:
    cld
    xorl    %ebx, %ebx              # 32-bit count of echoed bytes
next:
    serial_getc
    test    %al, %al
    jz      done
    serial_putc
    incl    %ebx
    jmp     next
done:
    movl    %ebx, %eax
    mov     $DEBUG_EXIT_PORT, %dx
    outl    %eax, %dx
1:  cli
    hlt
    jmp     1b
