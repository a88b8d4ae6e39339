# ticks.mb.S - multiboot v1 kernel (ELF32): counts PIT timer interrupts, first through the 8259 PIC,
# then through the IOAPIC and the local APIC.
#
# Phase 1 (PIC): IDT set up, PICs remapped (master 0x20-0x27, slave 0x28-0x2F), PIT channel 0 in
#   mode 2 (rate generator), divisor 1193 (~1000 Hz), only IRQ0 unmasked, `sti`; the IRQ0 handler
#   counts ticks (up to 20) and sends the PIC an EOI; the main loop `hlt`s between ticks. After 20
#   ticks: prints "ticks: 20\n".
# Phase 2 (IOAPIC): both PICs fully masked, LAPIC software-enabled (SVR bit 8, spurious vector 0xFF),
#   IOAPIC redirection entry of pin 2 (ISA IRQ0 per the MP table's interrupt source override; QEMU
#   wires the PIT there too) = vector 0x30, fixed, physical destination = our LAPIC ID, edge, high.
#   The vector 0x30 handler counts ticks (up to 20) with a LAPIC EOI (write 0 to 0xFEE000B0).
#   After 20 ticks: prints "ioapic ticks: 20\n", masks pin 2, exits with 40 (20 + 20 ticks).
# Expect: stdout "ticks: 20\nioapic ticks: 20\n", exit code 40. No command line or initrd needed.
# Failures (never a silent hang: the first tick of each phase is awaited in a bounded spin loop,
# 100,000,000 iterations, far longer than a 1 ms tick on any machine that runs guests at all):
#   "no timer interrupt\n", exit 1            no IRQ0 through the PIC
#   "ioapic: timer on pin 0, not pin 2\n", exit 1   the IRQ0 arrives at IOAPIC pin 0 (e.g. KVM's
#                                             default GSI routing, GSI n -> pin n, instead of
#                                             QEMU's GSI 0 -> pin 2)
#   "no ioapic timer interrupt\n", exit 1     neither pin 2 nor pin 0
#   "exception <vector>\n", exit 3            a CPU exception (idt32.inc)
# QEMU 7.2 TCG:
#   qemu-system-x86_64 -accel tcg -display none -serial stdio -no-reboot -m 16M -monitor none \
#     -net none -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel guests/build/ticks.elf
#   prints
#     ticks: 20\n
#     ioapic ticks: 20\n
#   exit status 81 (= (40 << 1) | 1)
    .code32
    .include "kernel32.inc"
    .include "idt32.inc"
    .include "pic.inc"
    .include "ioapic.inc"

    .set TICKS_WANTED,        20
    .set PIC_MASTER_VECTORS,  0x20
    .set PIC_SLAVE_VECTORS,   0x28
    .set PIC_TIMER_VECTOR,    PIC_MASTER_VECTORS + 0
    .set IOAPIC_TIMER_VECTOR, 0x30
    .set ISA_IRQ0_IOAPIC_PIN, 2
    .set PIT_DIVISOR,         1193       # 1193182 Hz / 1193 = 1000.15 Hz
    .set FIRST_TICK_SPINS,    100000000

    multiboot_header MB_PAGE_ALIGN | MB_MEMORY_INFO
    kernel32_entry

    call    idt_init
    mov     $PIC_TIMER_VECTOR, %eax
    mov     $pic_timer_interrupt, %edx
    call    idt_set_gate
    mov     $IOAPIC_TIMER_VECTOR, %eax
    mov     $ioapic_timer_interrupt, %edx
    call    idt_set_gate

    # --- phase 1: PIT -> 8259 PIC IRQ0 ---
    pic_remap PIC_MASTER_VECTORS, PIC_SLAVE_VECTORS
    mov     $PIT_CH0_LOHI_MODE2, %al
    out     %al, $PIT_COMMAND
    mov     $(PIT_DIVISOR & 0xff), %al
    out     %al, $PIT_CHANNEL0
    mov     $(PIT_DIVISOR >> 8), %al
    out     %al, $PIT_CHANNEL0
    pic_set_masks 0xfe, 0xff            # IRQ0 only
    sti
    mov     $pic_ticks, %esi
    call    count_ticks
    jnz     1f
    print   "no timer interrupt\n"
    mov     $1, %eax
    jmp     debug_exit
1:  cli
    pic_set_masks 0xff, 0xff
    print   "ticks: "
    mov     pic_ticks, %eax
    call    put_dec
    print   "\n"

    # --- phase 2: PIT -> IOAPIC pin 2 -> LAPIC ---
    lapic_enable
    mov     $ISA_IRQ0_IOAPIC_PIN, %ecx
    mov     $IOAPIC_TIMER_VECTOR, %eax
    call    ioapic_route_pin
    sti
    mov     $ioapic_ticks, %esi
    call    count_ticks
    jnz     1f
    cli                                 # diagnose: does the timer reach pin 0 instead?
    mov     $0, %ecx
    mov     $IOAPIC_TIMER_VECTOR, %eax
    call    ioapic_route_pin
    sti
    mov     $ioapic_ticks, %esi
    call    count_ticks
    jz      2f
    print   "ioapic: timer on pin 0, not pin 2\n"
    mov     $1, %eax
    jmp     debug_exit
2:  print   "no ioapic timer interrupt\n"
    mov     $1, %eax
    jmp     debug_exit
1:  cli
    mov     $(IOAPIC_REDTBL + 2 * ISA_IRQ0_IOAPIC_PIN), %ecx
    mov     $RTE_MASKED, %eax
    call    ioapic_write
    print   "ioapic ticks: "
    mov     ioapic_ticks, %eax
    call    put_dec
    print   "\n"
    mov     pic_ticks, %eax
    add     ioapic_ticks, %eax
    jmp     debug_exit

# count_ticks: %esi = a tick counter that an interrupt handler increments; interrupts on.
# Waits for the first tick in a bounded spin, then `hlt`s until TICKS_WANTED ticks have been counted.
# Out: ZF set (and %eax = 0) if no tick came at all. Clobbers %eax %ecx.
count_ticks:
    mov     $FIRST_TICK_SPINS, %ecx
1:  mov     (%esi), %eax
    test    %eax, %eax
    jnz     2f
    dec     %ecx
    jnz     1b
    ret                                 # ZF = 1: timed out
2:  cmpl    $TICKS_WANTED, (%esi)
    jae     3f
    hlt                                 # the next tick wakes us
    jmp     2b
3:  test    %esi, %esi                  # ZF = 0
    ret

pic_timer_interrupt:
    push    %eax
    cmpl    $TICKS_WANTED, pic_ticks
    jae     1f
    incl    pic_ticks
1:  pic_eoi_master
    pop     %eax
    irq_return

ioapic_timer_interrupt:
    cmpl    $TICKS_WANTED, ioapic_ticks
    jae     1f
    incl    ioapic_ticks
1:  lapic_eoi
    irq_return

    .data
pic_ticks:      .long 0
ioapic_ticks:   .long 0
