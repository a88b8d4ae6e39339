// The guest both halves of bench/testsuite.mjs boot: a boot sector that prints "name? " on COM1,
// reads a line, answers "hello, NAME!" and exits through the debug-exit port with the name's
// length — the shape of a typical guest-level test (boot, prompt, type, check the exit status).
// It waits for input as a kernel does, halted until COM1's receive interrupt (IRQ4 through the
// PIC, which it programs itself): a guest that polls LSR in a tight loop starves QEMU's I/O
// thread, which then never delivers the input.
export const GREETER_BOOT_SECTOR = `
  .set COM1, 0x3f8
  .set UART_IER, COM1 + 1
  .set UART_MCR, COM1 + 4
  .set UART_LSR, COM1 + 5
  .set IER_ERBFI, 0x01           # interrupt on received data
  .set MCR_DTR_RTS_OUT2, 0x0b    # OUT2 gates the UART's IRQ line on a PC
  .set LSR_DR, 0x01
  .set LSR_THRE, 0x20
  .set PIC1_CMD, 0x20
  .set PIC1_DATA, 0x21
  .set PIC2_DATA, 0xa1
  .set ICW1_INIT_ICW4, 0x11
  .set PIC1_VECTOR_BASE, 0x20
  .set ICW3_SLAVE_AT_IRQ2, 0x04
  .set ICW4_8086, 0x01
  .set ONLY_IRQ4, 0xef           # OCW1: every line masked but IRQ4 (COM1)
  .set ALL_MASKED, 0xff
  .set PIC_EOI, 0x20
  .set COM1_VECTOR, PIC1_VECTOR_BASE + 4
  .set DEBUG_EXIT, 0xf4
  .set LF, 0x0a
  .set CR, 0x0d
  .set STACK_TOP, 0x7c00

  cli
  xor %ax, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov $STACK_TOP, %sp
  mov $ICW1_INIT_ICW4, %al
  out %al, $PIC1_CMD
  mov $PIC1_VECTOR_BASE, %al
  out %al, $PIC1_DATA
  mov $ICW3_SLAVE_AT_IRQ2, %al
  out %al, $PIC1_DATA
  mov $ICW4_8086, %al
  out %al, $PIC1_DATA
  mov $ONLY_IRQ4, %al
  out %al, $PIC1_DATA
  mov $ALL_MASKED, %al
  out %al, $PIC2_DATA
  movw $rx_irq, COM1_VECTOR * 4
  movw $0, COM1_VECTOR * 4 + 2
  mov $UART_MCR, %dx
  mov $MCR_DTR_RTS_OUT2, %al
  out %al, %dx
  mov $UART_IER, %dx
  mov $IER_ERBFI, %al
  out %al, %dx
  mov $prompt, %si
  call puts
wait:
  cli
  cmpb $0, done
  jne answer
  sti                            # sti's shadow covers hlt: no interrupt is lost in between
  hlt
  jmp wait
answer:
  mov end, %di
  movb $0, (%di)
  mov $hello, %si
  call puts
  mov $name, %si
  call puts
  mov $bang, %si
  call puts
  mov end, %ax
  sub $name, %ax
  out %al, $DEBUG_EXIT
  hlt

rx_irq:                          # takes every byte waiting in RBR; LF ends the name
  push %ax
  push %dx
  push %di
1:mov $UART_LSR, %dx
  in %dx, %al
  test $LSR_DR, %al
  jz 3f
  mov $COM1, %dx
  in %dx, %al
  cmp $CR, %al
  je 1b
  cmp $LF, %al
  jne 2f
  movb $1, done
  jmp 1b
2:mov end, %di
  mov %al, (%di)
  incw end
  jmp 1b
3:mov $PIC_EOI, %al
  out %al, $PIC1_CMD
  pop %di
  pop %dx
  pop %ax
  iret

puts:                            # the NUL-terminated string at DS:SI to COM1
  lodsb
  test %al, %al
  jz 2f
  mov %al, %ah
  mov $UART_LSR, %dx
1:in %dx, %al
  test $LSR_THRE, %al
  jz 1b
  mov %ah, %al
  mov $COM1, %dx
  out %al, %dx
  jmp puts
2:ret

done:   .byte 0
end:    .word name
prompt: .asciz "name? "
hello:  .asciz "hello, "
bang:   .asciz "!\\r\\n"
name:   .fill 32, 1, 0
`;

/** The name test `i` types (its length is the exit code the guest then gives). */
export function nameFor(i) {
  return `guest${String(i).padStart(2, '0')}`;
}
