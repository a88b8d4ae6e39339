# vmport.mb.S - multiboot v1 kernel (ELF32): asks QEMU's VMware backdoor port (0x5658) for its
# version and the RAM size, as VMware tools and kvm-unit-tests' vmware_backdoors do: EAX = the
# magic 0x564D5868 ("VMXh"), CL = the command, then `in` from the port; the answer comes back in
# EAX and EBX (registers no port access normally changes).
# Prints
#   getversion: eax=00000006 ebx=564d5868
#   getramsize: ebx=00001177 eax=<RAM size in hex>
# and exits with 0. Without a backdoor the port reads all ones and EBX keeps what it had (0).
# QEMU 7.2 (-accel kvm, the kvm-unit-tests command line, -m 256) prints eax=10000000 for the
# RAM size, exit status 1.
    .code32
    .include "kernel32.inc"

    .set VMPORT_PORT,           0x5658
    .set VMPORT_MAGIC,          0x564d5868
    .set VMPORT_CMD_GETVERSION, 0x0a
    .set VMPORT_CMD_GETRAMSIZE, 0x14

    multiboot_header MB_PAGE_ALIGN | MB_MEMORY_INFO
    kernel32_entry

    mov     $VMPORT_CMD_GETVERSION, %ecx
    call    backdoor
    print   "getversion: eax="
    mov     answer_eax, %eax
    call    put_hex32
    print   " ebx="
    mov     answer_ebx, %eax
    call    put_hex32
    print   "\ngetramsize: ebx="
    mov     $VMPORT_CMD_GETRAMSIZE, %ecx
    call    backdoor
    mov     answer_ebx, %eax
    call    put_hex32
    print   " eax="
    mov     answer_eax, %eax
    call    put_hex32
    print   "\n"
    call    serial_flush
    xor     %eax, %eax
    jmp     debug_exit

# %ecx = command: the answer's EAX and EBX in answer_eax / answer_ebx.
backdoor:
    push    %ebx
    xor     %ebx, %ebx
    mov     $VMPORT_MAGIC, %eax
    mov     $VMPORT_PORT, %edx
    in      %dx, %eax
    mov     %eax, answer_eax
    mov     %ebx, answer_ebx
    pop     %ebx
    ret

    .data
answer_eax:
    .long   0
answer_ebx:
    .long   0
