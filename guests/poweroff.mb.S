# poweroff.mb.S - multiboot v1 kernel (ELF32): powers the machine off through ACPI, as an OS's
# shutdown does: SLP_TYPx = the DSDT's \_S5 value (0 on QEMU's PC and tskvm) with SLP_EN in
# PM1a_CNT (the FADT's PM1a control block: 0x604, the PIIX4 PM block at 0x600 + 4).
# Prints "powering off\n", writes PM1a_CNT, and if it is still running after that prints
# "still running\n" and exits with 1. Under tskvm the run ends with reason `poweroff` (exit
# status 0) before "still running"; QEMU 7.2 shuts down too (exit status 0, with -no-reboot as
# well), but asynchronously: a few more bytes of "still running" may get out first.
    .code32
    .include "kernel32.inc"

    .set PM1A_CNT,        0x604
    .set PM1_CNT_SLP_TYP_SHIFT, 10
    .set SLP_TYP_S5,      0
    .set PM1_CNT_SLP_EN,  1 << 13

    multiboot_header MB_PAGE_ALIGN | MB_MEMORY_INFO
    kernel32_entry

    print   "powering off\n"
    call    serial_flush
    mov     $((SLP_TYP_S5 << PM1_CNT_SLP_TYP_SHIFT) | PM1_CNT_SLP_EN), %eax
    mov     $PM1A_CNT, %edx
    out     %ax, %dx
    print   "still running\n"
    mov     $1, %eax
    jmp     debug_exit
