# gdblong.elf64.S - an ELF64 multiboot kernel that starts in 32-bit mode, as kvm-unit-tests' and
# many hobby kernels do: the case where a gdb stub that picks its register layout from the vCPU's
# mode gets it wrong (gdb loads the ELF64 as x86-64 code while the vCPU is still in 32-bit mode).
#
# The multiboot header uses the a.out kludge (flag bit 16: multiboot v1 loaders, QEMU's and
# tskvm's, refuse a bare ELF64): header_addr = load_addr = 0x100000 (the header is the first thing
# in .text, at file offset 0x1000 under guests/lib/kernel.ld), load_end_addr = data_end,
# bss_end_addr = bss_end, entry_addr = _start. The loader enters _start in 32-bit protected mode
# (paging off). _start checks the multiboot magic, loads its own GDT, builds page tables that
# identity-map the first 1 GiB with 2 MiB pages, enables PAE, EFER.LME and paging, and far-jumps
# to 64-bit code, which sets %rax = 0x0000000500000000 and calls long_main (a 64-bit function
# with a symbol, for gdb's `hbreak long_main`). long_main prints "long mode\n" and exits through
# port 0xF4 with the upper half of %rax as it found it after its first instruction:
#   long_main: mov $1, %ecx      <- `stepi` from the breakpoint executes this (5 bytes)
#              ...               <- `set $rax = 0x123456789a` here makes the exit code 0x12
#
# Expect, run plainly: stdout "long mode\n", exit code 5.
# With gdb (`hbreak long_main`, `continue`, `stepi`, `set $rax = 0x123456789a`, `continue`):
#   exit code 18 (0x12).
# A bad multiboot magic prints "bad magic\n" and exits with 1.
    .code64
    .include "serial32.inc"             # its routines run in long mode here
    .code32
    .include "multiboot.inc"

    .set CR0_PG,       1 << 31
    .set CR4_PAE,      1 << 5
    .set MSR_EFER,     0xc0000080
    .set EFER_LME,     1 << 8
    .set PTE_PRESENT,  1 << 0
    .set PTE_WRITE,    1 << 1
    .set PTE_LARGE,    1 << 7           # a 2 MiB page in the page directory
    .set LARGE_PAGE,   0x200000
    .set PD_ENTRIES,   512              # 512 x 2 MiB = the first 1 GiB
    .set PAGE_SIZE,    4096
    .set CODE64_SEL,   0x08
    .set DATA_SEL,     0x10
    .set STACK_SIZE,   4096
    .set RAX_AT_CALL,  0x0000000500000000
    .set EXIT_SHIFT,   32

    multiboot_aout_header MB_PAGE_ALIGN | MB_MEMORY_INFO, data_end, bss_end, _start

    .globl  _start
_start:
    cli
    cld
    cmp     $MB_BOOTLOADER_MAGIC, %eax
    jne     bad_magic
    lgdt    gdt_descriptor
    # PML4[0] -> PDPT, PDPT[0] -> PD, PD[i] = i * 2 MiB, large pages (the tables are zeroed .bss).
    mov     $pdpt, %eax
    or      $(PTE_PRESENT | PTE_WRITE), %eax
    mov     %eax, pml4
    mov     $pd, %eax
    or      $(PTE_PRESENT | PTE_WRITE), %eax
    mov     %eax, pdpt
    xor     %ecx, %ecx
1:  mov     %ecx, %eax
    imul    $LARGE_PAGE, %eax
    or      $(PTE_PRESENT | PTE_WRITE | PTE_LARGE), %eax
    mov     %eax, pd(, %ecx, 8)
    inc     %ecx
    cmp     $PD_ENTRIES, %ecx
    jb      1b
    mov     %cr4, %eax
    or      $CR4_PAE, %eax
    mov     %eax, %cr4
    mov     $pml4, %eax
    mov     %eax, %cr3
    mov     $MSR_EFER, %ecx
    rdmsr
    or      $EFER_LME, %eax
    wrmsr
    mov     %cr0, %eax
    or      $CR0_PG, %eax
    mov     %eax, %cr0
    ljmp    $CODE64_SEL, $start64

bad_magic:
    mov     $bad_magic_text, %esi
2:  lodsb
    test    %al, %al
    jz      3f
    mov     $COM1_THR, %dx
    out     %al, %dx
    jmp     2b
3:  mov     $1, %eax
    mov     $DEBUG_EXIT_PORT, %dx
    out     %eax, %dx
    hlt

    .code64
start64:
    mov     $DATA_SEL, %eax
    mov     %eax, %ds
    mov     %eax, %es
    mov     %eax, %ss
    lea     stack_top(%rip), %rsp
    mov     $RAX_AT_CALL, %rax
    call    long_main
    hlt                                 # not reached: long_main exits

    .globl  long_main
    .type   long_main, @function
long_main:
    mov     $1, %ecx                    # gdb's stepi from `hbreak long_main` executes this
    mov     %rax, %rbx                  # %rbx survives puts
    print   "long mode\n"
    mov     %rbx, %rax
    shr     $EXIT_SHIFT, %rax
    jmp     debug_exit
    .size   long_main, . - long_main

    .section .rodata
bad_magic_text:
    .asciz  "bad magic\n"
    .balign 8
gdt:
    .quad   0                           # 0x00: null
    .quad   0x00af9a000000ffff          # 0x08: 64-bit code (L = 1)
    .quad   0x00cf92000000ffff          # 0x10: data, 4 GiB
gdt_end:
gdt_descriptor:
    .word   gdt_end - gdt - 1
    .long   gdt

    .data
    .long   0                           # the file's load image ends with .data (data_end)
data_end:

    .bss
    .balign PAGE_SIZE
pml4:
    .skip   PAGE_SIZE
pdpt:
    .skip   PAGE_SIZE
pd:
    .skip   PAGE_SIZE
stack:
    .skip   STACK_SIZE
stack_top:
bss_end:
