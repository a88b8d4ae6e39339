# flood.elf64.S - 64-bit kernel that floods COM1, honouring THRE, for the bounded-memory tests:
# whatever the reader does, tskvm's memory must not grow with what the guest writes.
#
# Output: BURSTS × 4096 bytes of the repeating byte pattern 0x00, 0x01, ..., 0xFF (`rep outsb`;
# on a host where KVM emulates string I/O a byte per exit, that is ~8 us a byte). BURSTS is the
# 32-bit little-endian word right after the 8-byte marker "FLOODCNT" in the image (default 16384,
# 64 MiB): tests patch it. Before each burst it waits for LSR.THRE, so once tskvm's host backlog
# reaches its limit (THRE clear) the guest waits, as a guest on a real UART with a slow line
# would. Ends with debug-exit 0 after LSR.TEMT.
    .code64
    .include "serial32.inc"

    .set BURST,        4096
    .set STACK_SIZE,   4096

    .text
    .globl  _start
_start:
    cli
    cld
    lea     stack_top(%rip), %rsp
    # The pattern: byte i of the buffer is i & 0xFF.
    lea     pattern(%rip), %rdi
    xor     %ecx, %ecx
1:  mov     %cl, (%rdi,%rcx)
    inc     %ecx
    cmp     $BURST, %ecx
    jb      1b

    mov     bursts(%rip), %ebx
    test    %ebx, %ebx
    jz      done
burst:
    mov     $COM1_LSR, %edx
2:  in      %dx, %al                    # wait for THRE: the host has room for more
    test    $LSR_THRE, %al
    jz      2b
    mov     $COM1_THR, %edx
    lea     pattern(%rip), %rsi
    mov     $BURST, %ecx
    rep outsb
    dec     %ebx
    jnz     burst

done:
    call    serial_flush
    xor     %eax, %eax
    jmp     debug_exit

    .data
    .ascii  "FLOODCNT"
bursts:
    .long   16384                       # 64 MiB

    .bss
    .balign 4096
pattern:
    .skip   BURST
    .balign 16
stack:
    .skip   STACK_SIZE
stack_top:
