# smp.mb.S - multiboot v1 kernel (ELF32): brings up every application processor (AP) with INIT and
# STARTUP IPIs; each CPU prints its APIC ID and counts itself in a shared counter.
#
# BSP: reads the CPU count N from fw_cfg (key 0x0005, FW_CFG_NB_CPUS: select with a 16-bit write to
#   port 0x510, read the u16 from port 0x511), software-enables its LAPIC (SVR bit 8), reads its APIC
#   ID (0xFEE00020 bits 31:24), prints "cpu <id> up\n" and counts itself (`lock incl cpus_up`). If
#   N > 1: copies the real-mode AP trampoline to TRAMPOLINE = 0x70000, then the MP spec's universal
#   start-up algorithm, broadcast to all excluding self: ICR = 0x000C4500 (INIT, assert), 10 ms,
#   ICR = 0x000C4670 (STARTUP, vector 0x70 = 0x70000 >> 12), 200 us, the same STARTUP again, 200 us.
#   The delays are timed by PIT channel 2 (guests/lib/delay.inc), never by a calibrated loop. Then it
#   polls cpus_up every 1 ms until it reaches N, for at most AP_WAIT_MS (10 s), and prints
#   "cpus: <cpus_up>\n" and exits with cpus_up (= N) via a 32-bit `outl` to port 0xF4.
# AP: starts in real mode at 7000:0000; DS = CS, `lgdtl` of the kernel's flat GDT (kernel32.inc),
#   CR0.PE = 1, `ljmpl $0x08` to 32-bit code in the kernel (above 1 MiB, so the trampoline itself is
#   only the 16-bit part); data segments = 0x10; takes a ticket (`lock xadd`) that picks its own
#   4 KiB stack; reads its APIC ID; under a spinlock (`xchg`, which is always locked) prints
#   "cpu <id> up\n" and does `lock incl cpus_up`; releases the lock; then `cli; hlt` forever.
#   With "ap-crash" in the command line (tskvm run --append ap-crash), each AP instead executes
#   `ud2` after counting in: with no IDT that is a triple fault on that vCPU, which must end the run.
#   The lock is held from the first byte of a CPU's line to its increment, so lines never
#   interleave, and when the BSP sees cpus_up == N every AP line has been written to COM1.
#
# Expect (no command line or initrd needed), with APIC IDs 0..N-1 as QEMU and tskvm number them:
#   N = 1:  "cpu 0 up\ncpus: 1\n", exit code 1 (no IPI is sent at all)
#   N = 2:  "cpu 0 up\ncpu 1 up\ncpus: 2\n", exit code 2
#   N = 4:  "cpu 0 up\n", then "cpu 1 up\n" "cpu 2 up\n" "cpu 3 up\n" in ANY order, then
#           "cpus: 4\n", exit code 4
#   N = 8:  "cpu 0 up\n", then "cpu 1 up\n" ... "cpu 7 up\n" in any order, then "cpus: 8\n",
#           exit code 8
#   That is: the BSP's line first, "cpus: N" last, one line per AP in between in whatever order the
#   APs won the lock, each line whole.
# Failures, exit 1:
#   "bad cpu count <n>\n"                  fw_cfg key 5 is 0 or more than MAX_CPUS (64); 65535
#                                          means no fw_cfg at all (unassigned ports read all ones)
#   "only <k> of <N> cpus came up\n"       fewer than N CPUs counted themselves within 10 s
#   "ipi not delivered\n"                  the ICR's delivery status never went idle
#   "exception <vector>\n", exit 3         a CPU exception on the BSP (idt32.inc); APs have no IDT:
#                                          an AP fault is a triple fault (KVM_EXIT_SHUTDOWN on that
#                                          vCPU; QEMU with -no-reboot stops, status 0)
# The BSP prints the counter it saw, so if more CPUs than N count themselves (an AP started twice,
# more vCPUs than fw_cfg says) by then, "cpus: <more than N>" and an exit code above N show it.
#
# What a hypervisor must provide (tskvm's --cpus N):
#   - fw_cfg key 0x0005 = N (u16 LE) on ports 0x510/0x511.
#   - The BSP (APIC ID 0 here, though any ID is printed as read) entered as a multiboot kernel; APs
#     not running but waiting for INIT/SIPI: KVM_MP_STATE_UNINITIALIZED, which KVM gives every
#     vCPU but the boot one (vCPU id 0 unless KVM_SET_BOOT_CPU_ID) when the irqchip is in-kernel.
#     Userspace must not load the multiboot entry state into APs nor make them RUNNABLE; their
#     registers do not matter, the INIT resets them. Each AP has its own LAPIC at 0xFEE00000 with
#     a distinct APIC ID (KVM: the vCPU id).
#   - The in-kernel LAPIC's ICR: an INIT with shorthand "all excluding self" puts every other vCPU in
#     INIT-received state; a STARTUP (SIPI) with vector 0x70 starts it in real mode at
#     CS = 0x7000 (base 0x70000), IP = 0 (KVM does this itself for vCPUs in KVM_RUN; userspace must
#     be running every AP's vCPU thread in KVM_RUN so it can take the SIPI); the second SIPI is
#     ignored by an AP that already started. Delivery status reads idle (within 1,000,000 reads).
#   - RAM at 0x70000-0x70FFF (conventional memory, not used by the loader) and the kernel's GDT.
#   - The in-kernel PIT's channel 2 and port 0x61 (gate, OUT2) for the delays.
#   - An AP halting with interrupts disabled (`cli; hlt`) must not end the run: only the debug
#     exit does (tskvm's "halt with IF=0 ends the run" rule must not apply to an AP).
#   - Locked instructions (`lock xadd`, `xchg`, `lock incl`) atomic across vCPUs.
#
# QEMU 7.2 TCG (SeaBIOS has already started and parked the APs; the INIT resets them):
#   qemu-system-x86_64 -accel tcg -display none -serial stdio -no-reboot -monitor none -net none \
#     -m 16M -smp N -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel guests/build/smp.elf
#   -smp 1: "cpu 0 up\ncpus: 1\n", exit status 3 (= (1 << 1) | 1)
#   -smp 2: "cpu 0 up\ncpu 1 up\ncpus: 2\n", exit status 5
#   -smp 4: "cpu 0 up\ncpu 3 up\ncpu 2 up\ncpu 1 up\ncpus: 4\n", exit status 9 (AP order varies
#           from run to run: 2 3 1, 1 3 2, ...)
#   -smp 8: "cpu 0 up\ncpu 3 up\ncpu 4 up\ncpu 5 up\ncpu 2 up\ncpu 7 up\ncpu 6 up\ncpu 1 up\n
#           cpus: 8\n", exit status 17 (order varies); -smp 16: "cpus: 16", status 33
#   Each run takes about 0.1 s.
# QEMU 7.2 -accel kvm on this project's nested, paravirtualised KVM (code outside long mode is
#   emulated, including the trampoline and all the 32-bit code): the same output and exit statuses
#   3, 5, 9, 17 for -smp 1, 2, 4, 8 (QEMU warns that more than 2 vCPUs exceed KVM's recommended
#   count; it works anyway), about 4 s a run, most of it SeaBIOS.
# tskvm before --cpus existed (one vCPU, fw_cfg key 5 = 1): `tskvm run guests/build/smp.elf` printed
#   "cpu 0 up\ncpus: 1\n", exit status 1.
    .code32
    .include "kernel32.inc"
    .include "idt32.inc"
    .include "lapic.inc"
    .include "delay.inc"

    .set FW_CFG_PORT_SEL,  0x510
    .set FW_CFG_PORT_DATA, 0x511
    .set FW_CFG_NB_CPUS,   0x0005
    .set MAX_CPUS,         64
    .set AP_STACK_SIZE,    4096
    .set TRAMPOLINE,       0x70000      # free conventional RAM: not 0x1000-0xFFFF (tskvm's boot
                                        # structures), below the EBDA at 0x9FC00
    .set STARTUP_VECTOR,   TRAMPOLINE >> 12
    .set INIT_DELAY_MS,    10
    .set AP_WAIT_MS,       10000

    multiboot_header MB_PAGE_ALIGN | MB_MEMORY_INFO
    kernel32_entry
    call    idt_init

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

    call    check_ap_crash
    lapic_enable
    call    print_lock_acquire
    call    say_up
    lock incl cpus_up
    call    print_lock_release
    cmpl    $1, ncpus
    je      all_up

    mov     $trampoline, %esi
    mov     $TRAMPOLINE, %edi
    mov     $(trampoline_end - trampoline), %ecx
    rep movsb
    mov     $ICR_INIT_ALL_BUT_SELF, %eax
    call    send_ipi
    mov     $INIT_DELAY_MS, %ecx
    call    delay_ms
    mov     $2, %ebx                    # two STARTUP IPIs
1:  mov     $(ICR_STARTUP_ALL_BUT_SELF | STARTUP_VECTOR), %eax
    call    send_ipi
    mov     $PIT_TICKS_PER_200US, %ecx
    call    pit_delay
    dec     %ebx
    jnz     1b

    mov     $AP_WAIT_MS, %ebx
1:  mov     cpus_up, %eax
    cmp     ncpus, %eax
    jae     all_up
    mov     $1, %ecx
    call    delay_ms
    dec     %ebx
    jnz     1b
    call    print_lock_acquire          # a late AP may still be printing
    print   "only "
    mov     cpus_up, %eax
    call    put_dec
    print   " of "
    mov     ncpus, %eax
    call    put_dec
    print   " cpus came up\n"
    jmp     fail

all_up:
    call    print_lock_acquire
    print   "cpus: "
    mov     cpus_up, %eax
    call    put_dec
    print   "\n"
    mov     cpus_up, %eax
    cmpl    $0, ap_crash
    je      debug_exit
    call    print_lock_release
1:  pause                               # ap-crash: leave the ending to the APs' triple faults
    jmp     1b

bad_count:
    print   "bad cpu count "
    mov     ncpus, %eax
    call    put_dec
    print   "\n"
fail:
    mov     $1, %eax
    jmp     debug_exit

# send_ipi: %eax = ICR low dword, a shorthand destination. Does not return if it is never delivered.
send_ipi:
    xor     %edx, %edx
    call    lapic_send_ipi
    jc      1f
    ret
1:  print   "ipi not delivered\n"
    jmp     fail

# say_up: prints "cpu <this CPU's APIC ID> up\n"; hold the print lock. Clobbers %eax %ecx %edx %esi %edi.
say_up:
    print   "cpu "
    mov     LAPIC_ID, %eax
    shr     $24, %eax
    call    put_dec
    print   " up\n"
    ret

# The print lock: 0 free, 1 held. xchg with memory is locked whether or not it says `lock`.
print_lock_acquire:
    mov     $1, %eax
    lock xchg %eax, print_lock
    test    %eax, %eax
    jz      2f
1:  pause                               # spin on a plain read until it looks free, then retry
    cmpl    $0, print_lock
    jne     1b
    jmp     print_lock_acquire
2:  ret

print_lock_release:
    movl    $0, print_lock
    ret

# --- the AP trampoline: copied to TRAMPOLINE, entered in real mode at CS:IP = 7000:0000 ----------
# Position-independent within its segment: every address is relative to `trampoline`.
    .code16
trampoline:
    cli
    mov     %cs, %ax
    mov     %ax, %ds
    lgdtl   trampoline_gdt_descriptor - trampoline
    mov     %cr0, %eax
    or      $1, %eax                    # PE
    mov     %eax, %cr0
    ljmpl   $KERNEL_CS, $ap_entry32     # an absolute 32-bit address in the kernel
    .balign 4
    .word   0
trampoline_gdt_descriptor:              # kernel32.inc's flat GDT (0x08 code, 0x10 data)
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
    lock xadd %eax, ap_tickets          # %eax = this AP's ticket, 0, 1, 2, ...
    cmp     $(MAX_CPUS - 1), %eax
    jae     ap_park                     # no stack left for it (the BSP checked N <= MAX_CPUS)
    inc     %eax
    imul    $AP_STACK_SIZE, %eax
    lea     ap_stacks(%eax), %esp       # the top of stack number `ticket`
    call    print_lock_acquire
    call    say_up
    lock incl cpus_up
    call    print_lock_release
    cmpl    $0, ap_crash
    je      ap_park
    ud2                                 # --append ap-crash: no IDT here, so a triple fault
ap_park:
    cli
    hlt
    jmp     ap_park

# check_ap_crash: sets ap_crash when the command line contains "ap-crash" (for the test that a
# crash on an application processor ends the whole run). Clobbers %eax %ecx %edx %esi %edi.
check_ap_crash:
    mov     mb_info, %eax
    testl   $MBI_FLAG_CMDLINE, MBI_FLAGS(%eax)
    jz      2f
    mov     MBI_CMDLINE(%eax), %edx
1:  cmpb    $0, (%edx)
    je      2f
    mov     %edx, %esi
    mov     $ap_crash_word, %edi
    mov     $(ap_crash_word_end - ap_crash_word), %ecx
    repe cmpsb
    je      3f
    inc     %edx
    jmp     1b
3:  movl    $1, ap_crash
2:  ret

    .data
    .balign 4
ap_crash:   .long 0                     # 1: APs fault after coming up (--append ap-crash)
ap_crash_word:
    .ascii  "ap-crash"
ap_crash_word_end:
    .balign 4
ncpus:      .long 0                     # N, from fw_cfg
cpus_up:    .long 0                     # CPUs that printed their line, the BSP included
ap_tickets: .long 0
print_lock: .long 0
    .bss
    .balign 16
ap_stacks:
    .skip   (MAX_CPUS - 1) * AP_STACK_SIZE
