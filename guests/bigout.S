# bigout.S - flat guest: 1 MiB of serial output, sent the way Linux's 8250 driver does with FIFOs.
#
# Enables the 16550A FIFOs (FCR = 0x07), then 65536 times: waits for LSR.THRE, then sends 16 bytes
# with one `rep outsb` from a 256-byte table 0x00..0xFF in the image, at offset (i & 0xF0), where i
# is the index of the first byte of the chunk. Byte i of the output = i & 0xFF. Then writes 0 to
# 0xF4.
#
# Expect: stdout = exactly 1048576 bytes, byte i = i & 0xFF (0x00..0xFF repeated 4096 times),
#         reason debug-exit, exitCode 0, CLI status 0.
#         Exits: 65536 LSR reads + the OUTS + 1 debug exit. How many exits the OUTS take is up to
#         KVM: on the development host (kvm_pvm) every byte of a `rep outsb` is its own
#         KVM_EXIT_IO with count = 1, so the run takes 1114113 exits (~9-14 s at ~8-12 us/exit);
#         a KVM that batches string OUT would report count = 16 and 131073 exits. A VMM must
#         handle both (data = size * count bytes at io.data_offset).
#         Check: python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256))*4096)'
    .code16
    .include "serial.inc"
    .set CHUNKS, 65536              # 65536 * 16 bytes = 1 MiB
    .text
    .globl _start
_start:
    cld
    mov     $(FCR_ENABLE_FIFO | FCR_CLEAR_RX | FCR_CLEAR_TX), %al
    mov     $COM1_FCR, %dx
    out     %al, %dx
    xor     %bx, %bx                # chunk number mod 65536; 65536 iterations until it wraps to 0
next_chunk:
    serial_wait_thre
    mov     %bx, %si
    shl     $4, %si                 # i = chunk * 16
    and     $0xf0, %si              # i & 0xF0
    add     $table, %si
    mov     $UART_FIFO_SIZE, %cx
    mov     $COM1_THR, %dx
    rep outsb
    inc     %bx
    jnz     next_chunk
    debug_exit 0
1:  cli
    hlt
    jmp     1b

table:
    .set n, 0
    .rept 256
    .byte n
    .set n, n + 1
    .endr
