# long64.elf64.S - 64-bit ELF kernel (ELF64, x86-64, linked and loaded at 0x100000), entered
# directly in long mode by tskvm: CS a 64-bit code segment, paging on with the first 4 GiB
# identity-mapped, interrupts off; the stack pointer is not guaranteed, so it sets its own.
#
# Checks that it really runs in 64-bit mode: EFER (MSR 0xC0000080) must have LMA (bit 10) set, and
# a 64-bit register operation on a value above 2^32 must keep the upper half. Then prints
#   Hello from long mode\n
#   rip=0x0000000000100000\n        (the address of _start, computed with a RIP-relative lea, so it
#                                    shows where the code really runs)
# and exits through port 0xF4 with 64. Failures: "not in long mode (EFER.LMA clear)\n" or
# "64-bit arithmetic failed\n", exit 1. No command line or initrd needed.
# QEMU's -kernel refuses ELF64 images ("Cannot load x86-64 image, give a 32bit one."), so this one
# is checked structurally: `readelf -hl guests/build/long64.elf` shows Class ELF64, Machine
# Advanced Micro Devices X86-64, Entry point 0x100000, two LOAD segments at 0x100000 and 0x101000.
    .code64
    .include "serial32.inc"             # the routines assemble for .code64 too

    .set MSR_EFER,     0xc0000080
    .set EFER_LMA,     1 << 10
    .set STACK_SIZE,   16384

    .text
    .globl  _start
_start:
    cli
    cld
    lea     stack_top(%rip), %rsp       # 16-byte aligned

    mov     $MSR_EFER, %ecx
    rdmsr                               # %edx:%eax = EFER
    test    $EFER_LMA, %eax
    jnz     1f
    print   "not in long mode (EFER.LMA clear)\n"
    mov     $1, %eax
    jmp     debug_exit

1:  movabs  $0x123456789abcdef0, %rax   # only a 64-bit register keeps all of this
    shr     $36, %rax
    cmp     $0x1234567, %rax
    je      2f
    print   "64-bit arithmetic failed\n"
    mov     $1, %eax
    jmp     debug_exit

2:  print   "Hello from long mode\n"
    print   "rip=0x"
    lea     _start(%rip), %rax          # where _start really is, from the instruction pointer
    mov     %rax, %rdx
    shr     $32, %rdx                   # put_hex64 takes %edx:%eax
    call    put_hex64
    print   "\n"
    mov     $64, %eax
    jmp     debug_exit

    .bss
    .balign 16
stack:
    .skip   STACK_SIZE
stack_top:
