# bios-stages.floppy.S - a two-stage program on a 1.44 MB floppy, as real boot floppies are.
#
# Stage 1 (the boot sector) asks INT 13h AH=08h for the drive's geometry (18 sectors, 2 heads),
# resets the drive and reads sectors 2-3 (CHS 0/0/2) to 0000:7E00 with AH=02h, then jumps
# there. Stage 2 prints with INT 10h, checks that reading sector 19 of a track fails with AH=04h,
# checks INT 11h (a floppy drive) and INT 12h (639 KiB), the RTC's century (INT 1Ah AH=04h),
# waits 300 ms with INT 15h AH=86h and measures it with the tick count (INT 1Ah AH=00h: 3 to 40
# ticks), then reads a key with INT 16h AH=00h and prints it with its scan code, and an arrow
# key with AH=10h (expected E0-extended: 48E0h).
#
# Expect (keys "z" then ESC [ A): debug-exit 0x42 (66), another code N names the failed check;
# the screen shows "stage 2 loaded", "out-of-range read refused", "timer ticks ok",
# "press a key: z scan 2c", "arrow up ok".
    .code16
    .include "serial.inc"
    .include "bios.inc"
    .text
    .globl _start
_start:
    ljmp    $0, $stage1             # CS:IP = 0000:7C00 whatever the BIOS jumped with
stage1:
    cli
    xor     %ax, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    mov     $0x7c00, %sp
    sti
    cld
    mov     %dl, boot_drive
    mov     $0x08, %ah              # drive parameters (ES:DI = the diskette parameter table)
    int     $BIOS_DISK
    jnc     1f
    bios_fail 1
1:  xor     %ax, %ax
    mov     %ax, %es                # the read below goes to ES:BX
    and     $0x3f, %cl
    cmp     $18, %cl
    je      2f
    bios_fail 2
2:  cmp     $1, %dh
    je      3f
    bios_fail 3
3:  xor     %ax, %ax                # reset the drive
    mov     boot_drive, %dl
    int     $BIOS_DISK
    mov     $0x0202, %ax            # read 2 sectors
    mov     $0x0002, %cx            # cylinder 0, sector 2
    xor     %dh, %dh
    mov     boot_drive, %dl
    mov     $stage2, %bx
    int     $BIOS_DISK
    jnc     4f
    bios_fail 4
4:  cmp     $2, %al
    je      5f
    bios_fail 5
5:  jmp     stage2

boot_drive:
    .byte   0
    .org    510
    .word   0xaa55

# --- stage 2: sectors 2 and 3, loaded at 0x7E00 ---------------------------------------------
stage2:
    bios_puts msg_loaded
    mov     $0x0201, %ax            # sector 19 of an 18-sector track: must fail
    mov     $0x0013, %cx
    xor     %dh, %dh
    mov     boot_drive, %dl
    mov     $0x8400, %bx
    int     $BIOS_DISK
    jc      1f
    bios_fail 6
1:  cmp     $0x04, %ah              # sector not found
    je      2f
    bios_fail 7
2:  bios_puts msg_refused
    int     $0x11                   # equipment: bit 0, floppy drives present
    test    $1, %al
    jnz     3f
    bios_fail 8
3:  int     $0x12                   # base memory in KiB
    cmp     $639, %ax
    je      4f
    bios_fail 9
4:  mov     $0x04, %ah              # RTC date: century in CH (BCD)
    int     $BIOS_TIME
    jnc     5f
    bios_fail 10
5:  cmp     $0x20, %ch
    je      6f
    bios_fail 11
6:  xor     %ah, %ah                # ticks before
    int     $BIOS_TIME
    mov     %dx, t0
    mov     $0x86, %ah              # wait 300000 us = 0x000493E0
    mov     $0x0004, %cx
    mov     $0x93e0, %dx
    int     $BIOS_SYSTEM
    jnc     7f
    bios_fail 12
7:  xor     %ah, %ah                # ticks after: 300 ms is about 5.5 ticks
    int     $BIOS_TIME
    sub     t0, %dx
    cmp     $3, %dx
    jae     8f
    bios_fail 13
8:  cmp     $40, %dx
    jbe     9f
    bios_fail 14
9:  bios_puts msg_ticks
    bios_puts msg_prompt
    xor     %ah, %ah                # wait for a key
    int     $BIOS_KEYBOARD
    mov     %ax, key
    bios_putc                       # its ASCII
    bios_puts msg_scan
    mov     key+1, %al
    call    puthex8
    bios_puts crlf
    mov     $0x10, %ah              # an enhanced key: the gray up arrow is 48E0h
    int     $BIOS_KEYBOARD
    cmp     $0x48e0, %ax
    je      10f
    bios_fail 15
10: bios_puts msg_arrow
    debug_exit 0x42
11: cli
    hlt
    jmp     11b

# puthex8: teletype %al as two lowercase hex digits. Clobbers %ax, %bx, %cx.
puthex8:
    mov     %al, %cl
    shr     $4, %al
    call    1f
    mov     %cl, %al
    and     $0x0f, %al
1:  add     $'0', %al
    cmp     $'9', %al
    jbe     2f
    add     $('a' - '9' - 1), %al
2:  bios_putc
    ret

t0:     .word 0
key:    .word 0
msg_loaded:  .asciz "stage 2 loaded\r\n"
msg_refused: .asciz "out-of-range read refused\r\n"
msg_ticks:   .asciz "timer ticks ok\r\n"
msg_prompt:  .asciz "press a key: "
msg_scan:    .asciz " scan "
msg_arrow:   .asciz "arrow up ok\r\n"
crlf:        .asciz "\r\n"
