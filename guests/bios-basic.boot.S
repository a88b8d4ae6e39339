# bios-basic.boot.S - a boot-sector "BASIC" that understands PRINT: a line editor on INT 16h
# and INT 10h, and an integer expression evaluator (+ - * /, unary minus, parentheses,
# precedence), the way the 512-byte interpreters people share work.
#
# Prompt ">"; each line is echoed as typed (Backspace edits). `print EXPR` prints the value on
# its own line; `bye` ends the run (debug-exit 0x42); anything else prints "?".
#
# Expect (keys "print 6*7\r"): the screen shows ">print 6*7", "42", ">".
    .code16
    .include "serial.inc"
    .include "bios.inc"
    .set LINE_MAX, 60
    .set BS, 0x08
    .set CR, 0x0d
    .text
    .globl _start
_start:
    ljmp    $0, $main
main:
    cli
    xor     %ax, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    mov     $0x7c00, %sp
    sti
    cld
prompt:
    mov     $'>', %al
    bios_putc
    mov     $line, %di
read_key:
    xor     %ah, %ah
    int     $BIOS_KEYBOARD
    cmp     $CR, %al
    je      got_line
    cmp     $BS, %al
    je      backspace
    cmp     $(line + LINE_MAX), %di
    jae     read_key
    stosb
    bios_putc
    jmp     read_key
backspace:
    cmp     $line, %di
    je      read_key
    dec     %di
    mov     $BS, %al
    bios_putc
    mov     $' ', %al
    bios_putc
    mov     $BS, %al
    bios_putc
    jmp     read_key
got_line:
    movb    $0, (%di)
    call    newline
    mov     $line, %si
    call    skip_spaces
    mov     $kw_bye, %di
    mov     $3, %cx
    push    %si
    repe cmpsb
    pop     %si
    jne     1f
    debug_exit 0x42
1:  mov     $kw_print, %di
    mov     $5, %cx
    repe cmpsb
    jne     syntax_error
    call    expr
    call    skip_spaces
    cmpb    $0, (%si)
    jne     syntax_error
    call    print_number
    call    newline
    jmp     prompt
syntax_error:
    mov     $'?', %al
    bios_putc
    call    newline
    jmp     prompt

# expr: term { (+|-) term }. In: %si at the text. Out: %ax.
expr:
    call    term
1:  call    skip_spaces
    mov     (%si), %dl
    cmp     $'+', %dl
    je      2f
    cmp     $'-', %dl
    jne     3f
2:  inc     %si
    push    %dx
    push    %ax
    call    term
    mov     %ax, %bx
    pop     %ax
    pop     %dx
    cmp     $'+', %dl
    jne     4f
    add     %bx, %ax
    jmp     1b
4:  sub     %bx, %ax
    jmp     1b
3:  ret

# term: factor { (*|/) factor }.
term:
    call    factor
1:  call    skip_spaces
    mov     (%si), %dl
    cmp     $'*', %dl
    je      2f
    cmp     $'/', %dl
    jne     3f
2:  inc     %si
    push    %dx
    push    %ax
    call    factor
    mov     %ax, %bx
    pop     %ax
    pop     %dx
    cmp     $'*', %dl
    jne     4f
    imul    %bx
    jmp     1b
4:  test    %bx, %bx
    jz      5f
    cwd
    idiv    %bx
    jmp     1b
5:  pop     %ax                     # division by zero: drop term's return address and fail
    pop     %ax
    jmp     syntax_error
3:  ret

# factor: number | -factor | ( expr ).
factor:
    call    skip_spaces
    cmpb    $'(', (%si)
    jne     1f
    inc     %si
    call    expr
    call    skip_spaces
    inc     %si                     # the ')'
    ret
1:  cmpb    $'-', (%si)
    jne     2f
    inc     %si
    call    factor
    neg     %ax
    ret
2:  xor     %ax, %ax
3:  mov     (%si), %bl
    sub     $'0', %bl
    cmp     $9, %bl
    ja      4f
    xor     %bh, %bh
    mov     $10, %cx
    mul     %cx
    add     %bx, %ax
    inc     %si
    jmp     3b
4:  ret

skip_spaces:
    cmpb    $' ', (%si)
    jne     1f
    inc     %si
    jmp     skip_spaces
1:  ret

# print_number: %ax as a signed decimal.
print_number:
    test    %ax, %ax
    jns     1f
    push    %ax
    mov     $'-', %al
    bios_putc
    pop     %ax
    neg     %ax
1:  xor     %cx, %cx
    mov     $10, %bx
2:  xor     %dx, %dx
    div     %bx
    push    %dx
    inc     %cx
    test    %ax, %ax
    jnz     2b
3:  pop     %ax
    add     $'0', %al
    push    %cx
    bios_putc
    pop     %cx
    loop    3b
    ret

newline:
    mov     $CR, %al
    bios_putc
    mov     $0x0a, %al
    bios_putc
    ret

kw_print: .ascii "print"
kw_bye:   .ascii "bye"
    .bss
line:     .skip LINE_MAX + 1
