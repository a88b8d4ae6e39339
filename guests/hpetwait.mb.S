# hpetwait.mb.S - multiboot v1 kernel (ELF32): waits in `hlt` for an HPET comparator interrupt
# routed to IRQ0 by legacy replacement.
#
# Set-up: IDT; PICs remapped (master 0x20, slave 0x28) with only IRQ0 open. The HPET at
# 0xFED00000: halted, main counter 0, timer 0 one-shot, level-triggered, its interrupt enabled,
# comparator COMPARATOR_TICKS (10 ms at the HPET's 100 MHz); then ENABLE_CNF | LEG_RT_CNF, so
# timer 0 drives IRQ0 (and the 8254, which the boot firmware left ticking there, stops: KVM may
# still deliver ticks it owed from before). Then `sti; hlt` until the HPET's interrupt arrives:
# nothing else runs, so the guest touches no device while it waits.
# The IRQ0 handler tells the HPET's interrupt from any other by GINTR_STA bit 0 (level mode sets
# it; writing 1 clears it and lowers the line); it records the main counter at the first one.
# After it, the guest reads the main counter until QUIET_TICKS more have passed (a 64-bit
# one-shot fires once), and prints
#   hpet irq0: after comparator
#   hpet interrupts: 1
# and exits with 0. A VMM that computes comparator matches only when the guest reads the HPET
# never wakes the `hlt`: the run times out.
# QEMU 7.2 (-accel kvm, the kvm-unit-tests command line) prints the same, exit status 1.
    .code32
    .include "kernel32.inc"
    .include "idt32.inc"
    .include "pic.inc"

    .set HPET_BASE,          0xfed00000
    .set HPET_GEN_CONF,      HPET_BASE + 0x010
    .set HPET_MAIN_COUNTER,  HPET_BASE + 0x0f0
    .set HPET_T0_CONF,       HPET_BASE + 0x100
    .set HPET_T0_COMPARATOR, HPET_BASE + 0x108
    .set HPET_ENABLE_CNF,    1 << 0
    .set HPET_LEG_RT_CNF,    1 << 1
    .set HPET_GINTR_STA,     HPET_BASE + 0x020
    .set HPET_TN_INT_TYPE_LEVEL, 1 << 1
    .set HPET_TN_INT_ENB,    1 << 2
    .set HPET_T0_INT_STS,    1 << 0
    .set COMPARATOR_TICKS,   1000000    # 10 ms at 100 MHz
    .set QUIET_TICKS,        2000000    # 20 ms
    .set IRQ0_VECTOR,        0x20

    multiboot_header MB_PAGE_ALIGN | MB_MEMORY_INFO
    kernel32_entry

    call    idt_init
    mov     $IRQ0_VECTOR, %eax
    mov     $irq0_interrupt, %edx
    call    idt_set_gate
    pic_remap IRQ0_VECTOR, 0x28
    pic_set_masks 0xfe, 0xff

    movl    $0, HPET_GEN_CONF           # halted: the main counter may be written
    movl    $0, HPET_MAIN_COUNTER
    movl    $0, HPET_MAIN_COUNTER + 4
    movl    $(HPET_TN_INT_ENB | HPET_TN_INT_TYPE_LEVEL), HPET_T0_CONF
    movl    $COMPARATOR_TICKS, HPET_T0_COMPARATOR
    movl    $0, HPET_T0_COMPARATOR + 4
    movl    $(HPET_ENABLE_CNF | HPET_LEG_RT_CNF), HPET_GEN_CONF

    sti
.Lwait:
    cmpl    $0, hpet_count
    jne     .Lfired
    hlt
    jmp     .Lwait
.Lfired:
    mov     first_counter, %eax
    add     $QUIET_TICKS, %eax
    mov     %eax, quiet_until
.Lquiet:
    mov     HPET_MAIN_COUNTER, %eax
    cmp     quiet_until, %eax
    jb      .Lquiet
    cli

    print   "hpet irq0: "
    cmpl    $COMPARATOR_TICKS, first_counter
    jae     .Lafter
    print   "before comparator\n"
    jmp     .Lcount
.Lafter:
    print   "after comparator\n"
.Lcount:
    print   "hpet interrupts: "
    mov     hpet_count, %eax
    call    put_dec
    print   "\n"
    call    serial_flush
    xor     %eax, %eax
    jmp     debug_exit

irq0_interrupt:
    push    %eax
    testl   $HPET_T0_INT_STS, HPET_GINTR_STA
    jz      .Lnot_hpet
    movl    $HPET_T0_INT_STS, HPET_GINTR_STA    # write 1 to clear: the line drops
    cmpl    $0, hpet_count
    jne     .Lcounted
    mov     HPET_MAIN_COUNTER, %eax
    mov     %eax, first_counter
.Lcounted:
    incl    hpet_count
.Lnot_hpet:
    pic_eoi_master
    pop     %eax
    irq_return

    .data
hpet_count:
    .long   0
first_counter:
    .long   0
quiet_until:
    .long   0
