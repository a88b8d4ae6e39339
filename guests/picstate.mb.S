# picstate.mb.S - multiboot v1 kernel (ELF32): reports the 8259A PICs and the 8254 PIT as the
# boot firmware left them, then shows which vectors the PICs deliver IRQ3 and IRQ13 on.
#
# A PC's BIOS (SeaBIOS under QEMU) programs both PICs before it hands over to a multiboot kernel:
# ICW2 vector bases 0x08 (master) and 0x70 (slave), the slave cascaded on master IR2, and a mask
# that lets only what the BIOS serves through; the PIT's channel 0 runs in mode 2 (rate generator).
# A kernel that enables interrupts without reprogramming the PICs (kvm-unit-tests' realmode does)
# depends on that state.
#
# Prints, one line each:
#   pic masks: master=MM slave=SS       OCW1 read back (ports 0x21, 0xA1)
#   pit0 mode: N                        the read-back command's status byte, bits 3:1 (channel 0)
#   elcr: 00 0c                         edge/level control (ports 0x4D0, 0x4D1)
# then masks everything but IRQ2 (cascade), IRQ3 on the master and IRQ13 on the slave, pulses
# pc-testdev's lines 3 and 13 (port 0x2000 + n: 1 then 0; both are edge-triggered, unlike IRQ 10
# and 11, which SeaBIOS makes level-triggered for PCI) with interrupts on, and prints the vector
# each arrived on:
#   irq3 vector: 0b
#   irq13 vector: 75
# and exits with 0. An uninitialised PIC pair (vector base 0) delivers IRQ3 on vector 3, a CPU
# exception vector: "exception 3" and exit code 3 (idt32.inc).
# QEMU 7.2 + SeaBIOS (-accel kvm, the kvm-unit-tests command line) prints
#   pic masks: master=b8 slave=8e / pit0 mode: 2 / elcr: 00 0c / irq3 vector: 0b / irq13 vector: 75
# and exits with status 1 (= (0 << 1) | 1).
    .code32
    .include "kernel32.inc"
    .include "idt32.inc"
    .include "pic.inc"

    .set PIT_READ_BACK_STATUS_CH0, 0xe2 # read-back: latch status (not count), channel 0
    .set PIT_STATUS_MODE_SHIFT, 1
    .set PIT_STATUS_MODE_MASK, 7
    .set TESTDEV_IRQ_PORT, 0x2000       # pc-testdev: a byte to 0x2000 + n sets line n's level
    .set IRQ_CASCADE, 2
    .set IRQ_MASTER_TEST, 3
    .set IRQ_SLAVE_TEST, 13
    .set BIOS_MASTER_BASE, 0x08
    .set BIOS_SLAVE_BASE, 0x70
    .set NO_VECTOR, 0xffffffff
    .set PIIX_ELCR1, 0x4d0              # edge/level control, IRQ0-7 (bit set: level)
    .set PIIX_ELCR2, 0x4d1              # IRQ8-15

    multiboot_header MB_PAGE_ALIGN | MB_MEMORY_INFO
    kernel32_entry

    print   "pic masks: master="
    in      $PIC_MASTER_DATA, %al
    call    put_hex8
    print   " slave="
    in      $PIC_SLAVE_DATA, %al
    call    put_hex8
    print   "\npit0 mode: "
    mov     $PIT_READ_BACK_STATUS_CH0, %al
    out     %al, $PIT_COMMAND
    in      $PIT_CHANNEL0, %al
    shr     $PIT_STATUS_MODE_SHIFT, %al
    and     $PIT_STATUS_MODE_MASK, %eax
    call    put_dec
    print   "\nelcr: "
    mov     $PIIX_ELCR1, %dx
    in      %dx, %al
    call    put_hex8
    print   " "
    mov     $PIIX_ELCR2, %dx
    in      %dx, %al
    call    put_hex8
    print   "\n"

    # Every vector a PIC may use goes to a handler that records it (exceptions keep their stubs,
    # except the two the BIOS's master base puts IRQ3 on); vectors are found by the gate's stub.
    call    idt_init
    mov     $(BIOS_MASTER_BASE + IRQ_MASTER_TEST), %eax
    mov     $irq_master_bios, %edx
    call    idt_set_gate
    mov     $(BIOS_SLAVE_BASE + IRQ_SLAVE_TEST - 8), %eax
    mov     $irq_slave_bios, %edx
    call    idt_set_gate

    # Only the two test lines (and the cascade): the BIOS's timer tick must not get in.
    pic_set_masks ~((1 << IRQ_CASCADE) | (1 << IRQ_MASTER_TEST)) & 0xff, ~(1 << (IRQ_SLAVE_TEST - 8)) & 0xff

    print   "irq3 vector: "
    mov     $IRQ_MASTER_TEST, %ecx
    call    pulse_and_wait
    print   "\nirq13 vector: "
    mov     $IRQ_SLAVE_TEST, %ecx
    call    pulse_and_wait
    print   "\n"
    xor     %eax, %eax
    jmp     debug_exit

# %ecx = line: pulse it, let the interrupt in, print the vector it came on.
pulse_and_wait:
    movl    $NO_VECTOR, seen_vector
    lea     TESTDEV_IRQ_PORT(%ecx), %edx
    mov     $1, %al
    out     %al, %dx
    xor     %al, %al
    out     %al, %dx
    sti
.Lwait_vector:
    cmpl    $NO_VECTOR, seen_vector
    jne     .Lgot_vector
    hlt
    jmp     .Lwait_vector
.Lgot_vector:
    cli
    mov     seen_vector, %eax
    jmp     put_hex8

irq_master_bios:
    movl    $(BIOS_MASTER_BASE + IRQ_MASTER_TEST), seen_vector
    push    %eax
    mov     $OCW2_EOI, %al
    out     %al, $PIC_MASTER_CMD
    pop     %eax
    irq_return

irq_slave_bios:
    movl    $(BIOS_SLAVE_BASE + IRQ_SLAVE_TEST - 8), seen_vector
    push    %eax
    mov     $OCW2_EOI, %al
    out     %al, $PIC_SLAVE_CMD
    out     %al, $PIC_MASTER_CMD
    pop     %eax
    irq_return

# %al as two hex digits.
put_hex8:
    movzbl  %al, %eax
    mov     %eax, hex8_value
    shr     $4, %eax
    movb    hex_digits(%eax), %al
    call    putc
    mov     hex8_value, %eax
    and     $0xf, %eax
    movb    hex_digits(%eax), %al
    jmp     putc

    .data
seen_vector:
    .long   0
hex8_value:
    .long   0
