# fwcfg.mb.S - multiboot v1 kernel (ELF32): reads QEMU's fw_cfg through its I/O ports.
#
# The selector is a 16-bit write to port 0x510; each byte read from port 0x511 then returns the next
# byte of the selected item. Prints:
#   fw_cfg signature: <the 4 bytes of key 0x0000 (FW_CFG_SIGNATURE), bytes outside 0x20-0x7E as '?'>\n
#   ram: <key 0x0003 (FW_CFG_RAM_SIZE, u64 LE) / 1 MiB, decimal> MiB\n
#   cpus: <key 0x0005 (FW_CFG_NB_CPUS, u16 LE), decimal>\n
# and exits 0; if the signature is not "QEMU" it stops after the first line and exits 1.
# Expect with -m 16M and one CPU: "fw_cfg signature: QEMU\nram: 16 MiB\ncpus: 1\n", exit code 0.
# No command line or initrd needed.
# QEMU 7.2 TCG:
#   qemu-system-x86_64 -accel tcg -display none -serial stdio -no-reboot -m 16M -monitor none \
#     -net none -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel guests/build/fwcfg.elf
#   prints
#     fw_cfg signature: QEMU\n
#     ram: 16 MiB\n
#     cpus: 1\n
#   exit status 1 (= (0 << 1) | 1); with -m 5G -smp 3: "ram: 5120 MiB", "cpus: 3"
    .code32
    .include "kernel32.inc"

    .set FW_CFG_PORT_SEL,  0x510
    .set FW_CFG_PORT_DATA, 0x511
    .set FW_CFG_SIGNATURE, 0x0000
    .set FW_CFG_RAM_SIZE,  0x0003
    .set FW_CFG_NB_CPUS,   0x0005
    .set FW_CFG_QEMU,      0x554d4551   # "QEMU" as a little-endian u32

    multiboot_header MB_PAGE_ALIGN | MB_MEMORY_INFO
    kernel32_entry

    mov     $FW_CFG_SIGNATURE, %eax
    call    fw_cfg_select
    call    fw_cfg_read32
    mov     %eax, %ebx                  # %ebx = the signature, first byte lowest
    print   "fw_cfg signature: "
    mov     $4, %ebp
1:  mov     %bl, %al
    cmp     $0x20, %al
    jb      2f
    cmp     $0x7e, %al
    jbe     3f
2:  mov     $'?', %al
3:  call    putc
    ror     $8, %ebx
    dec     %ebp
    jnz     1b
    print   "\n"
    cmp     $FW_CFG_QEMU, %ebx          # four 8-bit rotations: %ebx is the signature again
    je      1f
    mov     $1, %eax
    jmp     debug_exit

1:  mov     $FW_CFG_RAM_SIZE, %eax
    call    fw_cfg_select
    call    fw_cfg_read32               # low half
    mov     %eax, %ebx
    call    fw_cfg_read32               # high half
    shrd    $20, %eax, %ebx             # %ebx = (high:low) >> 20, i.e. MiB (below 4 PiB)
    print   "ram: "
    mov     %ebx, %eax
    call    put_dec
    print   " MiB\n"

    mov     $FW_CFG_NB_CPUS, %eax
    call    fw_cfg_select
    call    fw_cfg_read32
    movzwl  %ax, %ebx                   # a u16: the two bytes read past it do not matter
    print   "cpus: "
    mov     %ebx, %eax
    call    put_dec
    print   "\n"

    xor     %eax, %eax
    jmp     debug_exit

# fw_cfg_select: %ax = key. Clobbers %edx.
fw_cfg_select:
    mov     $FW_CFG_PORT_SEL, %dx
    out     %ax, %dx
    ret

# fw_cfg_read32: out %eax = the next 4 bytes of the selected item, little-endian. Clobbers %ecx %edx.
fw_cfg_read32:
    mov     $FW_CFG_PORT_DATA, %dx
    mov     $4, %ecx
1:  in      %dx, %al
    ror     $8, %eax                    # after 4 rounds the first byte is in bits 7:0
    dec     %ecx
    jnz     1b
    ret
