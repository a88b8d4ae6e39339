/**
 * ISA interrupt lines as a PC board wires them: several devices may share one line (COM1 and
 * COM3 both use IRQ4), and KVM_IRQ_LINE hears only the line's changes.
 */

/** Drives an interrupt line of the in-kernel PIC/IOAPIC (KVM_IRQ_LINE). */
export type IrqLineSetter = (irq: number, level: boolean) => void;

/**
 * ISA interrupt lines shared by several devices (COM1 and COM3 both use IRQ4): the line is high
 * while any device on it asserts it, and KVM hears only the line's changes.
 */
export class SharedIrqLines {
  private readonly asserted = new Map<number, Set<object>>();

  constructor(private readonly setLine: IrqLineSetter) {}

  /** A new device on line `irq`: returns the callback it calls with its own output level. */
  connect(irq: number): (level: boolean) => void {
    const holders = this.asserted.get(irq) ?? new Set<object>();
    this.asserted.set(irq, holders);
    const device = {};
    return (level) => {
      const before = holders.size > 0;
      if (level) holders.add(device);
      else holders.delete(device);
      const after = holders.size > 0;
      if (before !== after) this.setLine(irq, after);
    };
  }
}
