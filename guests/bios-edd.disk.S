# bios-edd.disk.S - a hard disk image that loads its second sector with the INT 13h extensions.
#
# Stage 1 checks INT 13h AH=41h (BX=AA55h back, CF clear), AH=48h (63 sectors per track, 512
# bytes per sector) and AH=15h (type 3, a hard disk), then reads LBA 1 to 0000:7E00 with AH=42h
# and jumps there. Stage 2 writes a sector of 0x5A bytes to LBA 2 with AH=03h (CHS 0/0/3), reads it
# back with AH=42h and compares, prints "edd ok" with INT 10h and ends the run.
#
# Expect: debug-exit 0x42 (66) (another code N names the failed check). Without --disk-write the
# image file is unchanged; with it, sector 2 holds 0x5A bytes.
    .code16
    .include "serial.inc"
    .include "bios.inc"
    .text
    .globl _start
_start:
    ljmp    $0, $stage1
stage1:
    cli
    xor     %ax, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    mov     $0x7c00, %sp
    sti
    cld
    mov     %dl, drive
    mov     $0x41, %ah              # extensions present?
    mov     $0x55aa, %bx
    int     $BIOS_DISK
    jnc     1f
    bios_fail 1
1:  cmp     $0xaa55, %bx
    je      2f
    bios_fail 2
2:  mov     $0x48, %ah              # drive parameters into `params`
    mov     drive, %dl
    mov     $params, %si
    int     $BIOS_DISK
    jnc     3f
    bios_fail 3
3:  cmpw    $63, params + 12        # sectors per track
    je      4f
    bios_fail 4
4:  cmpw    $512, params + 24       # bytes per sector
    je      5f
    bios_fail 5
5:  mov     $0x15, %ah              # disk type: 3 = hard disk
    mov     drive, %dl
    int     $BIOS_DISK
    cmp     $0x03, %ah
    je      6f
    bios_fail 6
6:  movw    $stage2, dap_buffer     # LBA 1 -> 0000:7E00
    movw    $1, dap_lba
    mov     $0x42, %ah
    mov     drive, %dl
    mov     $dap, %si
    int     $BIOS_DISK
    jnc     7f
    bios_fail 7
7:  jmp     stage2

drive:      .byte 0
dap:        .byte 0x10, 0           # disk address packet: size, reserved
            .word 1                 # sectors
dap_buffer: .word 0, 0              # offset, segment
dap_lba:    .quad 0
params:     .word 0x1a              # AH=48h result buffer, its size first
            .skip 0x18
    .org    510
    .word   0xaa55

stage2:
    mov     $0x5a, %al              # a sector of 0x5A at 0x8000
    mov     $0x8000, %di
    mov     $512, %cx
    rep stosb
    mov     $0x0301, %ax            # write it to CHS 0/0/3 (LBA 2)
    mov     $0x0003, %cx
    xor     %dh, %dh
    mov     drive, %dl
    mov     $0x8000, %bx
    int     $BIOS_DISK
    jnc     1f
    bios_fail 8
1:  movw    $0x8200, dap_buffer     # read LBA 2 back to 0x8200
    movw    $2, dap_lba
    mov     $0x42, %ah
    mov     drive, %dl
    mov     $dap, %si
    int     $BIOS_DISK
    jnc     2f
    bios_fail 9
2:  mov     $0x8000, %si
    mov     $0x8200, %di
    mov     $512, %cx
    repe cmpsb
    je      3f
    bios_fail 10
3:  bios_puts msg_ok
    debug_exit 0x42
4:  cli
    hlt
    jmp     4b

msg_ok: .asciz "edd ok\r\n"
    .org    1024                    # stage 2 is one sector; sector 2 starts empty
    .skip   512
