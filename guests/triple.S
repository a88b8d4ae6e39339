# triple.S - flat guest: triple fault.
#
# Prints "faulting\n", loads an IDT with limit 0 and base 0 (`lidt` of {0, 0}), switches to 32-bit
# protected mode (a 3-entry GDT in the image, far jump to a flat code segment), then executes
# `ud2`: #UD's vector is beyond the IDT limit -> #GP, whose vector is beyond the limit too ->
# #DF -> beyond the limit -> triple fault. KVM reports KVM_EXIT_SHUTDOWN.
#
# Why protected mode and ud2 (measured on the development host, kvm_pvm, where KVM's instruction
# emulator runs real-mode code): in real mode `int $0x21` with IDT limit 0 does not fault, because
# KVM's real-mode interrupt delivery reads the IVT at 0 without checking the limit, so the guest
# jumps to 0000:0000 and spins in zeroed memory forever; a real-mode `ud2` ends in
# KVM_EXIT_INTERNAL_ERROR (emulation failure), and so does a protected-mode `int $0x21`. A
# protected-mode `ud2` (or divide by zero) triple-faults as intended.
#
# Expect: stdout = "faulting\n", reason crash (triple fault, KVM_EXIT_SHUTDOWN), CLI exit status
#         125, stderr names the triple fault.
    .code16
    .include "serial.inc"
    .set LOAD_ADDR, 0x10000         # flat images are loaded here (CS = 0x1000): linear = LOAD_ADDR + label
    .set CODE32_SEL, 0x08
    .set DATA32_SEL, 0x10
    .set CR0_PE, 0x1
    .text
    .globl _start
_start:
    cld
    serial_puts msg
    cli
    lgdt    gdt_desc
    lidt    empty_idt
    movl    %cr0, %eax
    orl     $CR0_PE, %eax
    movl    %eax, %cr0
    ljmpl   $CODE32_SEL, $(LOAD_ADDR + pm32)

    .code32
pm32:
    mov     $DATA32_SEL, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    mov     $(LOAD_ADDR + 0x8000), %esp
    ud2                             # #UD -> #GP -> #DF -> triple fault
1:  hlt                             # not reached
    jmp     1b

msg:
    .asciz  "faulting\n"
    .balign 8
gdt:
    .quad   0                       # null descriptor
    .quad   0x00cf9a000000ffff      # 0x08: code, base 0, limit 4 GiB, 32-bit, execute/read
    .quad   0x00cf92000000ffff      # 0x10: data, base 0, limit 4 GiB, read/write
gdt_end:
gdt_desc:
    .word   gdt_end - gdt - 1
    .long   LOAD_ADDR + gdt
empty_idt:
    .word   0                       # limit 0: every vector is out of bounds
    .long   0                       # base
