# mptable.mb.S - multiboot v1 kernel (ELF32): finds the Intel MultiProcessor table (MP spec 1.4).
#
# Scans for the 16-byte floating pointer structure "_MP_" on 16-byte boundaries, first in the first
# KiB of the EBDA (segment in the BIOS data area at 0x40E; skipped if 0), then in the BIOS area
# 0xF0000-0xFFFFF; a candidate counts only if its bytes (length field * 16) sum to 0. Follows its
# physical-address pointer to the "PCMP" configuration table, checks that signature and the base
# table's checksum, walks the entries (processor entries are 20 bytes, the other base types 8) and
# counts processor entries (type 0) and I/O APIC entries (type 2). Prints
#   mp: cpus=<n> ioapics=<n>\n
# and exits with the CPU count. Failures, exit 1: "mp: not found\n" (no valid floating pointer),
# "mp: no config table\n" (pointer 0: a default configuration), "mp: bad config table\n" (signature
# or checksum), "mp: unknown entry type <n>\n".
# Expect with one CPU: "mp: cpus=1 ioapics=1\n", exit code 1. No command line or initrd needed.
# QEMU 7.2 TCG (SeaBIOS builds the MP table):
#   qemu-system-x86_64 -accel tcg -display none -serial stdio -no-reboot -m 16M -monitor none \
#     -net none -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel guests/build/mptable.elf
#   prints
#     mp: cpus=1 ioapics=1\n
#   exit status 3 (= (1 << 1) | 1). SeaBIOS lists one processor entry per package:
#   -smp 4 (QEMU 7.2: 1 socket x 4 cores) still gives cpus=1; -smp 4,sockets=4 gives cpus=4, status 9
    .code32
    .include "kernel32.inc"

    .set BDA_EBDA_SEGMENT, 0x40e
    .set EBDA_SCAN_BYTES,  1024
    .set BIOS_AREA,        0xf0000
    .set BIOS_AREA_END,    0x100000
    .set MPFP_SIGNATURE,   0x5f504d5f   # "_MP_"
    .set MPFP_PHYSPTR,     4
    .set MPFP_LENGTH,      8            # in 16-byte units
    .set PCMP_SIGNATURE,   0x504d4350   # "PCMP"
    .set PCMP_BASE_LENGTH, 4            # u16, bytes, header included
    .set PCMP_ENTRY_COUNT, 34           # u16
    .set PCMP_HEADER_SIZE, 44
    .set MP_ENTRY_PROCESSOR, 0          # 20 bytes
    .set MP_ENTRY_IOAPIC,  2            # 8 bytes; so are types 1, 3, 4
    .set MP_ENTRY_LAST_BASE_TYPE, 4

    multiboot_header MB_PAGE_ALIGN | MB_MEMORY_INFO
    kernel32_entry

    movzwl  BDA_EBDA_SEGMENT, %esi
    shl     $4, %esi                    # segment -> address
    jz      1f
    lea     EBDA_SCAN_BYTES(%esi), %edi
    call    find_mpfp
    jnc     found
1:  mov     $BIOS_AREA, %esi
    mov     $BIOS_AREA_END, %edi
    call    find_mpfp
    jnc     found
    print   "mp: not found\n"
    jmp     fail

found:                                  # %esi = floating pointer
    mov     MPFP_PHYSPTR(%esi), %ebx
    test    %ebx, %ebx
    jnz     1f
    print   "mp: no config table\n"
    jmp     fail
1:  cmpl    $PCMP_SIGNATURE, (%ebx)
    jne     bad_table
    movzwl  PCMP_BASE_LENGTH(%ebx), %ecx
    mov     %ebx, %esi
    call    checksum
    jnz     bad_table

    movzwl  PCMP_ENTRY_COUNT(%ebx), %ebp
    lea     PCMP_HEADER_SIZE(%ebx), %esi  # %esi = entry, %ebp = entries left
next_entry:
    test    %ebp, %ebp
    jz      report
    movzbl  (%esi), %eax
    cmp     $MP_ENTRY_PROCESSOR, %eax
    jne     1f
    incl    cpus
    add     $20, %esi
    jmp     2f
1:  cmp     $MP_ENTRY_LAST_BASE_TYPE, %eax
    ja      unknown_entry
    cmp     $MP_ENTRY_IOAPIC, %eax
    jne     3f
    incl    ioapics
3:  add     $8, %esi
2:  dec     %ebp
    jmp     next_entry

report:
    print   "mp: cpus="
    mov     cpus, %eax
    call    put_dec
    print   " ioapics="
    mov     ioapics, %eax
    call    put_dec
    print   "\n"
    mov     cpus, %eax
    jmp     debug_exit

unknown_entry:
    mov     %eax, %ebx
    print   "mp: unknown entry type "
    mov     %ebx, %eax
    call    put_dec
    print   "\n"
    jmp     fail
bad_table:
    print   "mp: bad config table\n"
fail:
    mov     $1, %eax
    jmp     debug_exit

# find_mpfp: scans [%esi, %edi) on 16-byte boundaries for a floating pointer with a valid checksum.
# Out: CF clear and %esi = the structure, or CF set. Clobbers %eax %ecx %edx.
find_mpfp:
    cmp     %edi, %esi
    jae     2f
    cmpl    $MPFP_SIGNATURE, (%esi)
    jne     1f
    movzbl  MPFP_LENGTH(%esi), %ecx
    shl     $4, %ecx
    jz      1f
    call    checksum
    jnz     1f
    clc
    ret
1:  add     $16, %esi
    jmp     find_mpfp
2:  stc
    ret

# checksum: ZF set if the %ecx bytes at %esi sum to 0 (mod 256). Clobbers %eax %ecx %edx.
checksum:
    xor     %eax, %eax
    mov     %esi, %edx
1:  add     (%edx), %al
    inc     %edx
    dec     %ecx
    jnz     1b
    test    %al, %al
    ret

    .data
cpus:       .long 0
ioapics:    .long 0
