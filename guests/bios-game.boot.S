# bios-game.boot.S - a game-style boot sector: it draws straight into video memory at 0xB8000,
# paces itself with the BIOS tick count (0040:006C, advanced by INT 08h at 18.2 Hz) and polls the
# keyboard with INT 16h AH=01h/00h, as the 512-byte games people share do.
#
# Hides the cursor (INT 10h AH=01h), draws a frame of '#' (attribute 1Eh) around the screen with a
# title on the top row, a player '^' on row 23, and a ball '*' that moves one column per tick along
# row 12. Left/right arrows move the player; 'q' ends the run (debug-exit 0x42).
#
# Expect: the first screen has the frame, " BOOT GAME " on row 0, '^' at row 23 column 40.
    .code16
    .include "serial.inc"
    .include "bios.inc"
    .set COLUMNS, 80
    .set ROWS, 25
    .set FRAME, 0x1e23              # '#', yellow on blue
    .set BLANK, 0x0720
    .set PLAYER_ROW, 23
    .set BALL_ROW, 12
    .set TICKS, 0x046c
    .text
    .globl _start
_start:
    ljmp    $0, $main
main:
    xor     %ax, %ax
    mov     %ax, %ds
    mov     %ax, %ss
    mov     $0x7c00, %sp
    cld
    mov     $0x0003, %ax            # 80x25 text
    int     $BIOS_VIDEO
    mov     $0x01, %ah              # hide the cursor
    mov     $0x2000, %cx
    int     $BIOS_VIDEO
    mov     $TEXT_SEGMENT, %ax
    mov     %ax, %es
    xor     %di, %di                # the frame: top and bottom rows, then the sides
    mov     $FRAME, %ax
    mov     $COLUMNS, %cx
    rep stosw
    mov     $((ROWS - 1) * COLUMNS * 2), %di
    mov     $COLUMNS, %cx
    rep stosw
    mov     $(COLUMNS * 2), %di
    mov     $(ROWS - 2), %cx
1:  mov     %ax, %es:(%di)
    mov     %ax, %es:(COLUMNS - 1) * 2(%di)
    add     $(COLUMNS * 2), %di
    loop    1b
    mov     $title, %si             # the title, centred on the top row
    mov     $(34 * 2), %di
    mov     $0x1f, %ah
2:  lodsb
    test    %al, %al
    jz      game_loop
    stosw
    jmp     2b

game_loop:
    mov     player, %bx             # draw the player
    shl     $1, %bx
    movw    $0x0a5e, %es:(PLAYER_ROW * COLUMNS * 2)(%bx)
    mov     TICKS, %ax              # one ball step per timer tick
    cmp     last_tick, %ax
    je      3f
    mov     %ax, last_tick
    mov     ball, %bx
    shl     $1, %bx
    movw    $BLANK, %es:(BALL_ROW * COLUMNS * 2)(%bx)
    incw    ball
    cmpw    $(COLUMNS - 1), ball
    jb      4f
    movw    $1, ball
4:  mov     ball, %bx
    shl     $1, %bx
    movw    $0x0c2a, %es:(BALL_ROW * COLUMNS * 2)(%bx)
3:  mov     $0x01, %ah              # a key waiting?
    int     $BIOS_KEYBOARD
    jz      game_loop
    xor     %ah, %ah
    int     $BIOS_KEYBOARD
    cmp     $'q', %al
    jne     5f
    debug_exit 0x42
5:  mov     player, %bx             # erase, then move
    shl     $1, %bx
    movw    $BLANK, %es:(PLAYER_ROW * COLUMNS * 2)(%bx)
    cmp     $0x4b, %ah              # left
    jne     6f
    cmpw    $1, player
    jbe     game_loop
    decw    player
6:  cmp     $0x4d, %ah              # right
    jne     game_loop
    cmpw    $(COLUMNS - 2), player
    jae     game_loop
    incw    player
    jmp     game_loop

title:      .asciz " BOOT GAME "
player:     .word 40
ball:       .word 1
last_tick:  .word 0
