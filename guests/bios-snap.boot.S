# bios-snap.boot.S - a boot sector for snapshots of BIOS guests: it counts the BIOS's timer ticks
# (IRQ0 through INT 08h into the BDA's tick count, waited for with sti; hlt), prints a line on
# COM1 and a digit straight into text memory every TICKS_PER_ROUND ticks, then reads a key with
# INT 16h and echoes COM1 input, read by polling LSR.DR, until '.'. Saved mid-count and restored,
# it goes on from where it was: the timer, the PIC, the BIOS's state, the screen and both inputs.
#
# Expect (keyboard "k", COM1 input "hi."): COM1 output "tick 1\r\n" ... "tick 6\r\n" "key? k\r\n"
# "hi.", screen row 0 "1 2 3 4 5 6     k", cursor at row 1, debug-exit 0x42 (66).
    .code16
    .include "serial.inc"
    .include "bios.inc"
    .set BDA_TICKS, 0x46c           # 0040:006C, the tick count's low word
    .set TICKS_PER_ROUND, 2
    .set ROUNDS, 6
    .set DIGIT_ATTRIBUTE, 0x1e      # yellow on blue
    .set KEY_COLUMN, 16
    .set VIDEO_SET_CURSOR, 0x02
    .set KEYBOARD_READ, 0x00
    .text
    .globl _start
_start:
    xor     %ax, %ax
    mov     %ax, %ds
    cld
    mov     $TEXT_SEGMENT, %ax
    mov     %ax, %es
    mov     $VIDEO_SET_CURSOR << 8, %ax
    xor     %bx, %bx                # page 0
    mov     $0x0100, %dx            # row 1, column 0
    int     $BIOS_VIDEO
    mov     $'1', %cl               # the round, as a digit
round:
    mov     BDA_TICKS, %bx
1:  sti
    hlt
    mov     BDA_TICKS, %ax
    sub     %bx, %ax
    cmp     $TICKS_PER_ROUND, %ax
    jb      1b
    serial_puts tick
    mov     %cl, %al
    serial_putc
    serial_puts crlf
    mov     %cl, %al                # the digit at row 0, column 2 * (round - 1)
    sub     $'1', %al
    xor     %ah, %ah
    shl     $2, %ax
    mov     %ax, %di
    mov     %cl, %al
    mov     $DIGIT_ATTRIBUTE, %ah
    stosw
    inc     %cl
    cmp     $'1' + ROUNDS, %cl
    jb      round
    serial_puts askkey
    mov     $KEYBOARD_READ << 8, %ax
    int     $BIOS_KEYBOARD          # AL = the key's ASCII
    mov     %al, %cl
    mov     $KEY_COLUMN * 2, %di
    mov     $DIGIT_ATTRIBUTE, %ah
    stosw
    mov     %cl, %al
    serial_putc
    serial_puts crlf
2:  serial_getc                     # polls LSR until DR, then reads RBR
    mov     %al, %cl
    serial_putc
    cmp     $'.', %cl
    jne     2b
    debug_exit 0x42
3:  cli
    hlt
    jmp     3b

tick:   .asciz "tick "
askkey: .asciz "key? "
crlf:   .asciz "\r\n"
