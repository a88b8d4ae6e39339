# mbinfo.mb.S - multiboot v1 kernel (ELF32): prints what the boot loader told it.
#
# Header flags: MB_PAGE_ALIGN | MB_MEMORY_INFO (no a.out kludge: the loader reads the ELF).
# Checks %eax == 0x2BADB002 (else prints "bad magic\n", exit 1), then prints from the multiboot info:
#   cmdline: <command line>\n                               (flags bit 2; else "no cmdline\n")
#   mem_lower: <decimal> KiB\n  mem_upper: <decimal> KiB\n    (flags bit 0; else "no mem info\n")
#   mmap: base=0x<16 hex> len=0x<16 hex> type=<decimal>\n    per entry (bit 6; else "no mmap\n")
#   module: <its string> size=<decimal>\n                    per module (bit 3)
#   module text: <first line>\n                              after a module whose first line (up to
#                   '\n' or its end, at most 64 bytes) is non-empty printable ASCII (0x20-0x7E)
#   a line "module not page aligned\n" (exit 1) if a module does not start on a 4 KiB boundary,
# and finally writes 0 to port 0xF4: exit code 0 (QEMU's isa-debug-exit: status 1).
#
# Run: -append "hello world" and an initrd (module) that is a small text file, e.g. "first line\n...".
# QEMU 7.2 TCG, `printf 'first line of initrd\nsecond line\n' > /tmp/initrd.txt`,
#   qemu-system-x86_64 -accel tcg -display none -serial stdio -no-reboot -m 16M -monitor none \
#     -net none -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel guests/build/mbinfo.elf \
#     -append "hello world" -initrd /tmp/initrd.txt
# (-display none -serial stdio -net none rather than -nographic: with -nographic SeaBIOS and iPXE
# print their banners on COM1 too) prints, QEMU passing "<kernel path> <-append>" as the command
# line and "<initrd path>" as the module string:
#     cmdline: guests/build/mbinfo.elf hello world\n
#     mem_lower: 639 KiB\n
#     mem_upper: 15232 KiB\n
#     mmap: base=0x0000000000000000 len=0x000000000009fc00 type=1\n
#     mmap: base=0x000000000009fc00 len=0x0000000000000400 type=2\n
#     mmap: base=0x00000000000f0000 len=0x0000000000010000 type=2\n
#     mmap: base=0x0000000000100000 len=0x0000000000ee0000 type=1\n
#     mmap: base=0x0000000000fe0000 len=0x0000000000020000 type=2\n
#     mmap: base=0x00000000fffc0000 len=0x0000000000040000 type=2\n
#     mmap: base=0x000000fd00000000 len=0x0000000300000000 type=2\n
#     module: /tmp/initrd.txt size=33\n
#     module text: first line of initrd\n
#   exit status 1 (= (0 << 1) | 1)
# Without -append QEMU passes "guests/build/mbinfo.elf " (trailing space). GRUB's `multiboot` also
# passes the kernel path first; a loader that passes only the arguments would print
# "cmdline: hello world". The mmap and mem_upper lines depend on the machine (QEMU reserves
# 0xFE0000-0xFFFFFF of a 16 MiB guest, so mem_upper is 15232, not 15360).
    .code32
    .include "kernel32.inc"

    .set MODULE_LINE_MAX, 64
    .set PAGE_MASK, 0xfff

    multiboot_header MB_PAGE_ALIGN | MB_MEMORY_INFO
    kernel32_entry                      # %ebx = multiboot info

    # --- command line ---
    testl   $MBI_FLAG_CMDLINE, MBI_FLAGS(%ebx)
    jnz     1f
    print   "no cmdline\n"
    jmp     2f
1:  print   "cmdline: "
    mov     MBI_CMDLINE(%ebx), %esi
    call    puts
    print   "\n"
2:
    # --- basic memory information ---
    testl   $MBI_FLAG_MEM, MBI_FLAGS(%ebx)
    jnz     1f
    print   "no mem info\n"
    jmp     2f
1:  print   "mem_lower: "
    mov     MBI_MEM_LOWER(%ebx), %eax
    call    put_dec
    print   " KiB\nmem_upper: "
    mov     MBI_MEM_UPPER(%ebx), %eax
    call    put_dec
    print   " KiB\n"
2:
    # --- memory map: %ebp = entry, end_of_mmap = first byte after the map ---
    testl   $MBI_FLAG_MMAP, MBI_FLAGS(%ebx)
    jnz     1f
    print   "no mmap\n"
    jmp     mmap_done
1:  mov     MBI_MMAP_ADDR(%ebx), %ebp
    mov     MBI_MMAP_LENGTH(%ebx), %eax
    add     %ebp, %eax
    mov     %eax, end_of_mmap
mmap_next:
    cmp     end_of_mmap, %ebp
    jae     mmap_done
    print   "mmap: base=0x"
    mov     MMAP_BASE(%ebp), %eax
    mov     MMAP_BASE+4(%ebp), %edx
    call    put_hex64
    print   " len=0x"
    mov     MMAP_LENGTH(%ebp), %eax
    mov     MMAP_LENGTH+4(%ebp), %edx
    call    put_hex64
    print   " type="
    mov     MMAP_TYPE(%ebp), %eax
    call    put_dec
    print   "\n"
    mov     MMAP_SIZE(%ebp), %eax
    lea     4(%ebp,%eax), %ebp          # `size` does not count itself
    jmp     mmap_next
mmap_done:

    # --- modules: %ebp = module entry, modules_left = count ---
    testl   $MBI_FLAG_MODS, MBI_FLAGS(%ebx)
    jz      modules_done
    mov     MBI_MODS_COUNT(%ebx), %eax
    mov     %eax, modules_left
    mov     MBI_MODS_ADDR(%ebx), %ebp
module_next:
    cmpl    $0, modules_left
    je      modules_done
    print   "module: "
    mov     MOD_STRING(%ebp), %esi
    call    puts
    print   " size="
    mov     MOD_END(%ebp), %eax
    sub     MOD_START(%ebp), %eax
    call    put_dec
    print   "\n"
    testl   $PAGE_MASK, MOD_START(%ebp) # we asked for MB_PAGE_ALIGN
    jz      1f
    print   "module not page aligned\n"
    mov     $1, %eax
    jmp     debug_exit
1:  call    print_first_line
    add     $MOD_ENTRY_SIZE, %ebp
    decl    modules_left
    jmp     module_next
modules_done:

    xor     %eax, %eax
    jmp     debug_exit

# print_first_line: %ebp = module entry. Prints "module text: <line>\n" if the module's first line
# (up to '\n' or the module's end, at most MODULE_LINE_MAX bytes) is non-empty printable ASCII.
print_first_line:
    mov     MOD_START(%ebp), %esi
    mov     MOD_END(%ebp), %edi
    mov     %esi, %eax
    add     $MODULE_LINE_MAX, %eax
    cmp     %eax, %edi
    jbe     1f
    mov     %eax, %edi                  # %edi = end of the part we look at
1:  mov     %esi, %ecx                  # %ecx scans: find the line's end, check every byte
2:  cmp     %edi, %ecx
    jae     3f
    movb    (%ecx), %al
    cmp     $'\n', %al
    je      3f
    cmp     $0x20, %al
    jb      not_text
    cmp     $0x7e, %al
    ja      not_text
    inc     %ecx
    jmp     2b
3:  cmp     %esi, %ecx
    je      not_text                    # empty first line
    mov     %ecx, line_end
    print   "module text: "
    mov     MOD_START(%ebp), %esi
4:  cmp     line_end, %esi
    jae     5f
    lodsb
    call    putc
    jmp     4b
5:  print   "\n"
not_text:
    ret

    .data
end_of_mmap:    .long 0
modules_left:   .long 0
line_end:       .long 0
