# memtouch.mb.S - multiboot v1 kernel (ELF32) for the snapshot benchmark (bench/snapshot.mjs): it
# writes one word into every 4 KiB page of RAM from 2 MiB to the top (so every one of those pages
# is resident and non-zero: a snapshot must save all of them), prints "touched <n> pages\n", and
# then sleeps forever with interrupts on but every PIC line masked (`sti; hlt`, nothing to wake it:
# the run goes on until the host stops or saves it). The masks matter: a multiboot kernel starts
# with the PIT ticking on an unmasked IRQ0, as SeaBIOS leaves it, and this kernel has no IDT.
# RAM size: fw_cfg key 0x0003 (FW_CFG_RAM_SIZE, u64 little-endian; the low 32 bits are used, so at
# most 4 GiB). Each page gets its own page number, so no two pages are alike (KSM cannot merge them).
# Expect with --memory 16M: "touched 3584 pages\n" ((16 MiB - 2 MiB) / 4 KiB), then no exit.
# QEMU 7.2 (TCG and KVM): the same line (-m 16M); then it waits forever as tskvm does.
    .code32
    .include "kernel32.inc"

    .set PIC_MASTER_DATA, 0x21          # the 8259s' interrupt mask registers (OCW1)
    .set PIC_SLAVE_DATA,  0xa1
    .set PIC_MASK_ALL,    0xff

    .set FW_CFG_PORT_SEL,  0x510
    .set FW_CFG_PORT_DATA, 0x511
    .set FW_CFG_RAM_SIZE,  0x0003
    .set TOUCH_FROM,       0x200000     # above the kernel (linked at 1 MiB) and its stack
    .set PAGE_SIZE,        4096

    multiboot_header MB_PAGE_ALIGN | MB_MEMORY_INFO
    kernel32_entry

    mov     $FW_CFG_RAM_SIZE, %eax
    mov     $FW_CFG_PORT_SEL, %edx
    out     %ax, %dx
    mov     $FW_CFG_PORT_DATA, %edx
    xor     %ebx, %ebx                  # %ebx = the low 32 bits, read byte by byte, LSB first
    mov     $4, %ecx
    xor     %esi, %esi
1:  in      %dx, %al
    movzbl  %al, %eax
    push    %ecx
    mov     %esi, %ecx
    shl     %cl, %eax
    pop     %ecx
    or      %eax, %ebx
    add     $8, %esi
    dec     %ecx
    jnz     1b

    mov     $TOUCH_FROM, %edi
    xor     %ebp, %ebp                  # pages touched
2:  cmp     %ebx, %edi
    jae     3f
    lea     1(%ebp), %eax
    mov     %eax, (%edi)                # the page's own number: every page differs
    inc     %ebp
    add     $PAGE_SIZE, %edi
    jmp     2b
3:  print   "touched "
    mov     %ebp, %eax
    call    put_dec
    print   " pages\n"
    mov     $PIC_MASK_ALL, %al
    out     %al, $PIC_MASTER_DATA
    out     %al, $PIC_SLAVE_DATA
4:  sti
    hlt
    jmp     4b
