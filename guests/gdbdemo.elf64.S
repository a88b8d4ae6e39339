# gdbdemo.elf64.S - a 64-bit ELF for the GDB stub's tests and the tour: something to break in,
# step through, and change from gdb.
#
# It computes %eax = 1 + addend (addend is 2 in .data) at the label `add_here`, prints
# "value=<%eax>\n" and the string `message`, and exits via 0xF4 with the value.
# Expect, run plainly: stdout "value=3\ngdb says hi\n", exit code 3.
# With gdb: `break add_here`, `continue`, `set $rbx = 41`, `set {char}(&message + 9) = 'H'`,
# `continue` → stdout "value=42\ngdb says Hi\n", exit code 42.
    .code64
    .include "serial32.inc"

    .set STACK_SIZE, 4096

    .text
    .globl  _start
_start:
    cli
    cld
    lea     stack_top(%rip), %rsp
    mov     $1, %eax
    mov     addend(%rip), %ebx
    .globl  add_here
add_here:
    add     %ebx, %eax                  # gdb changes %rbx before this runs
    mov     %eax, %ebp                  # %ebp survives the print routines
    print   "value="
    mov     %ebp, %eax
    call    put_dec
    print   "\n"
    mov     $message, %esi
    call    puts
    mov     %ebp, %eax
    jmp     debug_exit

    .data
    .globl  addend, message
addend:
    .long   2
message:
    .asciz  "gdb says hi\n"

    .bss
    .balign 16
stack:
    .skip   STACK_SIZE
stack_top:
