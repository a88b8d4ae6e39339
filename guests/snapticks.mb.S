# snapticks.mb.S - multiboot v1 kernel (ELF32) for the snapshot tests: counts PIT ticks and every
# CPU's local APIC timer ticks, and prints its progress through an interrupt-driven COM1, so that a
# snapshot taken anywhere in the middle, restored in another process, must bring back the PIT, the
# I/O APIC, every LAPIC and its timer, the UART with its FIFOs and pending interrupt, and memory.
#
# Set-up (BSP): N = fw_cfg key 0x0005 (FW_CFG_NB_CPUS), 1 to MAX_CPUS; IDT; both 8259 PICs remapped
#   and fully masked; LAPIC software-enabled; I/O APIC pin 2 (ISA IRQ0, the PIT: tskvm's and
#   QEMU's routing) -> vector 0x30, pin 4 (COM1's IRQ4) -> vector 0x24, both fixed, edge, to this
#   CPU; PIT channel 0 mode 2, divisor 1193 (~1000 Hz); COM1 8N1 with FIFOs, MCR.OUT2 (the IRQ
#   gate), IER = ETBEI only while bytes wait. Then the APs are started (INIT, two SIPIs, as
#   smp.mb.S does) and each one, like the BSP, programs its LAPIC timer: periodic, vector 0x40,
#   divide by 16, initial count LAPIC_TIMER_COUNT; then `sti; hlt` forever. The timer handler
#   counts into lapic_ticks[APIC ID] (`lock incl`).
# Output: text goes into a 4 KiB ring in memory; the COM1 handler (THRE) moves up to 16 bytes at a
#   time to the TX FIFO and turns ETBEI off when the ring is empty. Nothing is written to the UART
#   outside the interrupt handler.
# Main loop (BSP), for round r = 1 .. ROUNDS: waits (`sti; hlt`) until the PIT has ticked 50 * r
#   times and every CPU's LAPIC timer 50 * r times, then prints
#     "round <r>: pit <50r> lapic <50r> x <N>\n"
#   waits for the ring to drain and the UART to be empty, prints nothing else, and exits through
#   port 0xF4 with N. The output is therefore the same whatever the timing:
#     "snapticks: <N> cpus\n" then ROUNDS round lines.
# With "save-request" in the command line (--append save-request), after round SAVE_ROUND it also
#   writes SAVE_REQUEST (0x5a5a) to port 0xF4 with a 32-bit `outl` and goes on: a run started with
#   options.save.onDebugExit = 0x5a5a saves itself there; any other run ends with that exit code.
# Failures: "bad cpu count <n>\n", exit 1; "ipi not delivered\n", exit 1; "exception <v>\n", exit 3
#   (idt32.inc); a timer that stops firing stops the run from ever ending (the tests' timeout).
#
# QEMU 7.2 TCG, the same output (the exit status is (N << 1) | 1):
#   qemu-system-x86_64 -accel tcg -display none -serial stdio -no-reboot -monitor none -net none \
#     -m 16M -smp N -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel guests/build/snapticks.elf
    .code32
    .include "kernel32.inc"
    .include "idt32.inc"
    .include "pic.inc"
    .include "lapic.inc"
    .include "delay.inc"

    .set FW_CFG_PORT_SEL,  0x510
    .set FW_CFG_PORT_DATA, 0x511
    .set FW_CFG_NB_CPUS,   0x0005
    .set MAX_CPUS,         8
    .set AP_STACK_SIZE,    4096
    .set TRAMPOLINE,       0x70000
    .set STARTUP_VECTOR,   TRAMPOLINE >> 12
    .set INIT_DELAY_MS,    10

    .set ROUNDS,           8
    .set TICKS_PER_ROUND,  50           # 50 ms a round: room for a snapshot to land between lines
    .set PIT_DIVISOR,      1193         # 1193182 Hz / 1193 = 1000.15 Hz
    .set PIT_VECTOR,       0x30
    .set PIT_IOAPIC_PIN,   2
    .set COM1_IRQ,         4
    .set COM1_VECTOR,      0x24
    .set TIMER_VECTOR,     0x40
    .set SAVE_ROUND,       3
    .set SAVE_REQUEST,     0x5a5a

    .set LAPIC_LVT_TIMER,      LAPIC_BASE + 0x320
    .set LAPIC_TIMER_INITIAL,  LAPIC_BASE + 0x380
    .set LAPIC_TIMER_DIVIDE,   LAPIC_BASE + 0x3e0
    .set LVT_TIMER_PERIODIC,   1 << 17
    .set TIMER_DIVIDE_16,      0x3
    .set LAPIC_TIMER_COUNT,    62500    # KVM's APIC bus runs at 1 GHz: / 16 / 62500 = 1 kHz

    .set COM1_IIR,         COM1_BASE + 2
    .set IER_ETBEI,        0x02
    .set IIR_NO_INT,       0x01
    .set IIR_ID_MASK,      0x0e
    .set IIR_THRI,         0x02
    .set IIR_RLSI,         0x06
    .set IIR_MSI,          0x00
    .set COM1_MSR,         COM1_BASE + 6
    .set LCR_8N1,          0x03
    .set MCR_DTR_RTS_OUT2, 0x0b
    .set FCR_FIFO_RESET,   FCR_ENABLE_FIFO | FCR_CLEAR_RX | FCR_CLEAR_TX
    .set RING_SIZE,        4096         # a power of two

    multiboot_header MB_PAGE_ALIGN | MB_MEMORY_INFO
    kernel32_entry

    mov     $FW_CFG_NB_CPUS, %eax
    mov     $FW_CFG_PORT_SEL, %edx
    out     %ax, %dx
    mov     $FW_CFG_PORT_DATA, %edx
    in      %dx, %al
    mov     %al, %bl
    in      %dx, %al
    mov     %al, %bh
    movzwl  %bx, %ebx
    mov     %ebx, ncpus
    test    %ebx, %ebx
    jz      bad_count
    cmp     $MAX_CPUS, %ebx
    ja      bad_count

    call    idt_init
    mov     $PIT_VECTOR, %eax
    mov     $pit_interrupt, %edx
    call    idt_set_gate
    mov     $COM1_VECTOR, %eax
    mov     $com1_interrupt, %edx
    call    idt_set_gate
    mov     $TIMER_VECTOR, %eax
    mov     $timer_interrupt, %edx
    call    idt_set_gate

    pic_remap 0x20, 0x28                # and every IRQ masked: the I/O APIC delivers instead
    lapic_enable

    # COM1: 8N1, FIFOs, the IRQ gate (OUT2); no interrupt enabled until there is something to send.
    mov     $LCR_8N1, %al
    mov     $COM1_LCR, %dx
    out     %al, %dx
    mov     $FCR_FIFO_RESET, %al
    mov     $COM1_FCR, %dx
    out     %al, %dx
    mov     $MCR_DTR_RTS_OUT2, %al
    mov     $COM1_MCR, %dx
    out     %al, %dx
    xor     %al, %al
    mov     $COM1_IER, %dx
    out     %al, %dx

    mov     $COM1_IRQ, %ecx
    mov     $COM1_VECTOR, %eax
    call    ioapic_route_pin
    mov     $PIT_IOAPIC_PIN, %ecx
    mov     $PIT_VECTOR, %eax
    call    ioapic_route_pin

    mov     $PIT_CH0_LOHI_MODE2, %al
    out     %al, $PIT_COMMAND
    mov     $(PIT_DIVISOR & 0xff), %al
    out     %al, $PIT_CHANNEL0
    mov     $(PIT_DIVISOR >> 8), %al
    out     %al, $PIT_CHANNEL0

    call    check_save_request
    sti
    mov     $banner, %esi
    call    tx_puts
    mov     ncpus, %eax
    call    tx_dec
    mov     $banner_cpus, %esi
    call    tx_puts

    cmpl    $1, ncpus
    je      1f
    call    start_aps
1:  call    start_lapic_timer

    movl    $1, round
next_round:
    mov     round, %eax
    imul    $TICKS_PER_ROUND, %eax
    mov     %eax, target
    call    wait_for_target
    mov     $round_text, %esi
    call    tx_puts
    mov     round, %eax
    call    tx_dec
    mov     $pit_text, %esi
    call    tx_puts
    mov     target, %eax
    call    tx_dec
    mov     $lapic_text, %esi
    call    tx_puts
    mov     target, %eax
    call    tx_dec
    mov     $times_text, %esi
    call    tx_puts
    mov     ncpus, %eax
    call    tx_dec
    mov     $newline, %esi
    call    tx_puts
    cmpl    $SAVE_ROUND, round
    jne     1f
    cmpl    $0, save_request
    je      1f
    mov     $SAVE_REQUEST, %eax
    mov     $DEBUG_EXIT_PORT, %edx
    out     %eax, %dx                   # "save me here"; the run goes on
1:  incl    round
    cmpl    $ROUNDS, round
    jbe     next_round

    # Drain: the ring empty (the handler turns ETBEI off then), then the UART itself.
1:  cli
    mov     ring_head, %eax
    cmp     ring_tail, %eax
    je      2f
    sti
    hlt
    jmp     1b
2:  call    serial_flush
    mov     ncpus, %eax
    jmp     debug_exit

bad_count:
    print   "bad cpu count "
    mov     ncpus, %eax
    call    put_dec
    print   "\n"
    mov     $1, %eax
    jmp     debug_exit

# check_save_request: sets save_request when the command line contains "save-request".
# Clobbers %eax %ecx %edx %esi %edi.
check_save_request:
    mov     mb_info, %eax
    testl   $MBI_FLAG_CMDLINE, MBI_FLAGS(%eax)
    jz      2f
    mov     MBI_CMDLINE(%eax), %edx
1:  cmpb    $0, (%edx)
    je      2f
    mov     %edx, %esi
    mov     $save_request_word, %edi
    mov     $(save_request_word_end - save_request_word), %ecx
    repe cmpsb
    je      3f
    inc     %edx
    jmp     1b
3:  movl    $1, save_request
2:  ret

# wait_for_target: `sti; hlt` until pit_ticks and every lapic_ticks[0 .. N-1] reach `target`.
wait_for_target:
1:  cli
    mov     target, %eax
    cmp     %eax, pit_ticks
    jb      3f
    xor     %ecx, %ecx
2:  cmp     %eax, lapic_ticks(,%ecx,4)
    jb      3f
    inc     %ecx
    cmp     ncpus, %ecx
    jb      2b
    sti
    ret
3:  sti
    hlt                                 # `sti; hlt`: the next interrupt wakes us, none is lost
    jmp     1b

# start_lapic_timer: this CPU's LAPIC timer, periodic, vector TIMER_VECTOR. Clobbers nothing.
start_lapic_timer:
    movl    $TIMER_DIVIDE_16, LAPIC_TIMER_DIVIDE
    movl    $(LVT_TIMER_PERIODIC | TIMER_VECTOR), LAPIC_LVT_TIMER
    movl    $LAPIC_TIMER_COUNT, LAPIC_TIMER_INITIAL
    ret

# start_aps: the MP spec's INIT, SIPI, SIPI broadcast, then waits (at most ~10 s) for every AP to
# check in. Interrupts may be on: the delays poll PIT channel 2, not IRQ0.
start_aps:
    mov     $trampoline, %esi
    mov     $TRAMPOLINE, %edi
    mov     $(trampoline_end - trampoline), %ecx
    rep movsb
    mov     $ICR_INIT_ALL_BUT_SELF, %eax
    call    send_ipi
    mov     $INIT_DELAY_MS, %ecx
    call    delay_ms
    mov     $2, %ebx
1:  mov     $(ICR_STARTUP_ALL_BUT_SELF | STARTUP_VECTOR), %eax
    call    send_ipi
    mov     $PIT_TICKS_PER_200US, %ecx
    call    pit_delay
    dec     %ebx
    jnz     1b
    mov     $10000, %ebx
2:  mov     aps_up, %eax
    inc     %eax
    cmp     ncpus, %eax
    jae     3f
    mov     $1, %ecx
    call    delay_ms
    dec     %ebx
    jnz     2b
3:  ret

send_ipi:
    xor     %edx, %edx
    call    lapic_send_ipi
    jc      1f
    ret
1:  print   "ipi not delivered\n"
    mov     $1, %eax
    jmp     debug_exit

# tx_puts: %esi = NUL-terminated string, queued for the COM1 handler. Clobbers %eax %ecx %esi.
# tx_dec: %eax, unsigned decimal, queued. Clobbers %eax %ecx %edx %esi %edi.
tx_dec:
    mov     $dec_buffer_end, %edi
    mov     $10, %ecx
1:  xor     %edx, %edx
    div     %ecx
    add     $'0', %dl
    dec     %edi
    mov     %dl, (%edi)
    test    %eax, %eax
    jnz     1b
    mov     %edi, %esi
tx_puts:
1:  lodsb   (%esi)
    test    %al, %al
    jz      3f
2:  mov     ring_tail, %ecx             # full: let the handler make room
    sub     ring_head, %ecx
    cmp     $RING_SIZE, %ecx
    jb      4f
    call    tx_kick
    hlt
    jmp     2b
4:  mov     ring_tail, %ecx
    and     $(RING_SIZE - 1), %ecx
    mov     %al, ring(%ecx)
    incl    ring_tail
    jmp     1b
3:  call    tx_kick
    ret

# tx_kick: makes sure the handler will send what is queued (ETBEI on). Clobbers %eax.
tx_kick:
    cli                                 # the handler may be turning ETBEI off right now
    testb   $IER_ETBEI, ier
    jnz     1f
    orb     $IER_ETBEI, ier             # THR empty: the UART raises THRE at once
    call    write_ier
1:  sti
    ret

write_ier:
    push    %edx
    mov     ier, %al
    mov     $COM1_IER, %dx
    out     %al, %dx
    pop     %edx
    ret

# --- interrupt handlers (32-bit interrupt gates: IF clear inside; every register preserved) -------

pit_interrupt:
    lock incl pit_ticks
    lapic_eoi
    irq_return

timer_interrupt:
    push    %eax
    mov     LAPIC_ID, %eax
    shr     $24, %eax
    and     $(MAX_CPUS - 1), %eax
    lock incl lapic_ticks(,%eax,4)
    lapic_eoi
    pop     %eax
    irq_return

com1_interrupt:
    push    %eax
    push    %ecx
    push    %edx
.Lcom1_next:
    mov     $COM1_IIR, %dx
    in      %dx, %al
    test    $IIR_NO_INT, %al
    jnz     .Lcom1_done
    and     $IIR_ID_MASK, %al
    cmp     $IIR_THRI, %al
    je      .Lcom1_tx
    cmp     $IIR_RLSI, %al
    jne     1f
    mov     $COM1_LSR, %dx              # line status: reading LSR clears it
    in      %dx, %al
    jmp     .Lcom1_next
1:  cmp     $IIR_MSI, %al
    jne     .Lcom1_next                 # received data: not enabled
    mov     $COM1_MSR, %dx
    in      %dx, %al
    jmp     .Lcom1_next
.Lcom1_tx:
    mov     $UART_FIFO_SIZE, %ecx       # THRE: the TX FIFO is empty, so 16 bytes fit
1:  mov     ring_head, %eax
    cmp     ring_tail, %eax
    je      2f
    and     $(RING_SIZE - 1), %eax
    mov     ring(%eax), %al
    mov     $COM1_THR, %dx
    out     %al, %dx
    incl    ring_head
    dec     %ecx
    jnz     1b
    jmp     .Lcom1_next                 # more left: THRE again once the FIFO has drained
2:  andb    $~IER_ETBEI, ier            # nothing left to send
    call    write_ier
    jmp     .Lcom1_next
.Lcom1_done:
    lapic_eoi
    pop     %edx
    pop     %ecx
    pop     %eax
    irq_return

# --- the AP trampoline (smp.mb.S's): copied to TRAMPOLINE, entered in real mode at 7000:0000 -----
    .code16
trampoline:
    cli
    mov     %cs, %ax
    mov     %ax, %ds
    lgdtl   trampoline_gdt_descriptor - trampoline
    mov     %cr0, %eax
    or      $1, %eax                    # PE
    mov     %eax, %cr0
    ljmpl   $KERNEL_CS, $ap_entry32
    .balign 4
    .word   0
trampoline_gdt_descriptor:
    .word   gdt_end - gdt - 1
    .long   gdt
trampoline_end:
    .code32

ap_entry32:
    mov     $KERNEL_DS, %eax
    mov     %eax, %ds
    mov     %eax, %es
    mov     %eax, %fs
    mov     %eax, %gs
    mov     %eax, %ss
    cld
    mov     $1, %eax
    lock xadd %eax, ap_tickets          # this AP's ticket: 0, 1, 2, ...
    cmp     $(MAX_CPUS - 1), %eax
    jae     ap_park
    inc     %eax
    imul    $AP_STACK_SIZE, %eax
    lea     ap_stacks(%eax), %esp
    lidt    idt_descriptor              # the BSP's IDT
    lapic_enable
    call    start_lapic_timer
    lock incl aps_up
1:  sti
    hlt                                 # its timer wakes it, a thousand times a second
    jmp     1b
ap_park:
    cli
    hlt
    jmp     ap_park

    .section .rodata
banner:      .asciz "snapticks: "
banner_cpus: .asciz " cpus\n"
round_text:  .asciz "round "
pit_text:    .asciz ": pit "
lapic_text:  .asciz " lapic "
times_text:  .asciz " x "
newline:     .asciz "\n"
save_request_word:
    .ascii  "save-request"
save_request_word_end:

    .data
    .balign 4
ncpus:       .long 0
aps_up:      .long 0
ap_tickets:  .long 0
round:       .long 0
save_request: .long 0
target:      .long 0
pit_ticks:   .long 0
lapic_ticks: .fill MAX_CPUS, 4, 0
ring_head:   .long 0                    # free-running indices: ring[index % RING_SIZE]
ring_tail:   .long 0
ier:         .byte 0
    .bss
    .balign 16
ring:        .skip RING_SIZE
ap_stacks:   .skip (MAX_CPUS - 1) * AP_STACK_SIZE
