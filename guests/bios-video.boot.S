# bios-video.boot.S - INT 10h text-mode services and direct video memory writes.
#
# Sets mode 03h, fills the screen with attribute 1Fh (AH=06h), writes "XXX" with attribute 4Eh at
# row 2 column 5 (AH=02h, 09h), teletypes "ab" over the first two and "line 3" below (AH=0Eh),
# checks the cursor (AH=03h), reads a cell back (AH=08h), writes a string at row 10 (AH=13h),
# checks the mode (AH=0Fh), scrolls a window up (AH=06h: row 12's text moves to row 11), writes
# "direct" into 0xB8000 itself on row 24, and sets the cursor to row 20 column 3.
#
# Expect: debug-exit 0x42 (66); another exit code N names the check that failed. The screen:
#   row 2 "     abX", row 3 "line 3", row 10 "written by 13h", row 11 "scroll me",
#   row 24 "direct"; cursor at row 20 column 3.
    .code16
    .include "serial.inc"
    .include "bios.inc"
    .text
    .globl _start
_start:
    xor     %ax, %ax
    mov     %ax, %ds
    mov     %ax, %es
    cld
    mov     $0x0003, %ax            # mode 3: 80x25 colour text
    int     $BIOS_VIDEO
    mov     $0x0600, %ax            # scroll up, AL=0: clear the window
    mov     $0x1f, %bh
    xor     %cx, %cx
    mov     $0x184f, %dx
    int     $BIOS_VIDEO
    mov     $0x02, %ah              # cursor to row 2, column 5
    xor     %bh, %bh
    mov     $0x0205, %dx
    int     $BIOS_VIDEO
    mov     $0x0958, %ax            # 'X' three times, attribute 4Eh
    mov     $0x004e, %bx
    mov     $3, %cx
    int     $BIOS_VIDEO
    bios_puts teletype_text
    mov     $0x03, %ah              # the cursor after "ab\r\nline 3\r\n": row 4, column 0
    xor     %bh, %bh
    int     $BIOS_VIDEO
    cmp     $0x0400, %dx
    je      1f
    bios_fail 1
1:  mov     $0x02, %ah              # read back row 2, column 7: 'X' with 4Eh
    xor     %bh, %bh
    mov     $0x0207, %dx
    int     $BIOS_VIDEO
    mov     $0x08, %ah
    int     $BIOS_VIDEO
    cmp     $0x4e58, %ax
    je      2f
    bios_fail 2
2:  mov     $0x1301, %ax            # write string, cursor follows, one attribute (BL)
    mov     $0x0007, %bx
    mov     $(string13_end - string13), %cx
    mov     $0x0a00, %dx
    mov     $string13, %bp
    int     $BIOS_VIDEO
    mov     $0x1300, %ax            # row 12: "scroll me"
    mov     $0x0007, %bx
    mov     $(scroll_text_end - scroll_text), %cx
    mov     $0x0c00, %dx
    mov     $scroll_text, %bp
    int     $BIOS_VIDEO
    mov     $0x0f, %ah              # get mode: AL=03h, AH=80 columns, BH=page 0
    int     $BIOS_VIDEO
    cmp     $0x5003, %ax
    je      3f
    bios_fail 3
3:  mov     $0x0601, %ax            # scroll rows 11-12 up one line
    mov     $0x07, %bh
    mov     $0x0b00, %cx
    mov     $0x0c4f, %dx
    int     $BIOS_VIDEO
    mov     $TEXT_SEGMENT, %ax      # "direct" on row 24, written to video memory
    mov     %ax, %es
    mov     $(24 * 160), %di
    mov     $direct_text, %si
    mov     $0x2f, %ah
4:  lodsb
    test    %al, %al
    jz      5f
    stosw
    jmp     4b
5:  mov     $0x02, %ah              # leave the cursor at row 20, column 3
    xor     %bh, %bh
    mov     $0x1403, %dx
    int     $BIOS_VIDEO
    debug_exit 0x42
6:  cli
    hlt
    jmp     6b

teletype_text:
    .asciz  "ab\r\nline 3\r\n"
string13:
    .ascii  "written by 13h"
string13_end:
scroll_text:
    .ascii  "scroll me"
scroll_text_end:
direct_text:
    .asciz  "direct"
