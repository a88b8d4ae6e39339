# mbaout.aout.S - multiboot v1 kernel in "a.out kludge" form: a flat binary (build/mbaout.bin,
# linked at 0x100000) whose header (flag bit 16) gives the addresses, so the loader reads no object
# format: header_addr = load_addr = 0x100000 (the header is the file's first 32 bytes),
# load_end_addr = _edata (the whole file), bss_end_addr = _end (16 KiB stack + more, to be zeroed),
# entry_addr = _start.
#
# Checks %eax == 0x2BADB002 (else "bad magic\n", exit 1), that the file's last word (a marker at
# the end of .data) was loaded ("image truncated\n", exit 1 if not) and that the 4 KiB bss_probe
# area in .bss reads as zeros ("bss not zeroed\n", exit 1), then prints "a.out kludge ok\n" and
# exits 0 (QEMU's isa-debug-exit: status 1). No command line or initrd needed.
# QEMU 7.2 TCG:
#   qemu-system-x86_64 -accel tcg -display none -serial stdio -no-reboot -m 16M -monitor none \
#     -net none -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel guests/build/mbaout.bin
#   prints
#     a.out kludge ok\n
#   exit status 1 (= (0 << 1) | 1)
    .code32
    .include "kernel32.inc"

    .set END_MARKER, 0x600df00d
    .set BSS_PROBE_SIZE, 4096

    multiboot_aout_header MB_PAGE_ALIGN | MB_MEMORY_INFO, _edata, _end, _start
    kernel32_entry

    cmpl    $END_MARKER, end_marker
    je      1f
    print   "image truncated\n"
    jmp     fail
1:  mov     $bss_probe, %esi
    mov     $(BSS_PROBE_SIZE / 4), %ecx
2:  lodsl
    test    %eax, %eax
    jnz     3f
    dec     %ecx
    jnz     2b
    print   "a.out kludge ok\n"
    xor     %eax, %eax
    jmp     debug_exit
3:  print   "bss not zeroed\n"
fail:
    mov     $1, %eax
    jmp     debug_exit

    .data
    .balign 4
end_marker:                             # the last thing in the file (linked last: .data ends it)
    .long   END_MARKER
    .bss
bss_probe:
    .skip   BSS_PROBE_SIZE
