/**
 * How a PC's interrupt lines reach the interrupt controllers (KVM_SET_GSI_ROUTING).
 */
import { KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, type IrqRoute } from '../../kvm/x86.js';

/** ISA IRQs 0-15 and the IOAPIC's 24 pins. */
const ISA_IRQS = 16;
const IOAPIC_PINS = 24;
const PIC_CASCADE_IRQ = 2;
/** The PIT's IRQ0 reaches the IOAPIC on pin 2, as on PC chipsets (and in the MP table). */
const IOAPIC_TIMER_PIN = 2;

/**
 * QEMU's PC routing (kvm_pc_setup_irq_routing): GSI 0-15 to the PICs (less the cascade), GSI
 * 0-23 to the IOAPIC pin of the same number, except the timer's GSI 0, which goes to pin 2.
 * KVM's default sends GSI 0 to pin 0, which no PC's MP table or ACPI MADT describes.
 */
export function pcIrqRoutes(): IrqRoute[] {
  const routes: IrqRoute[] = [];
  for (let gsi = 0; gsi < ISA_IRQS; gsi++) {
    if (gsi === PIC_CASCADE_IRQ) continue;
    routes.push(gsi < 8 ? { gsi, irqchip: KVM_IRQCHIP_PIC_MASTER, pin: gsi } : { gsi, irqchip: KVM_IRQCHIP_PIC_SLAVE, pin: gsi - 8 });
  }
  for (let gsi = 0; gsi < IOAPIC_PINS; gsi++) {
    if (gsi === PIC_CASCADE_IRQ) continue;
    routes.push({ gsi, irqchip: KVM_IRQCHIP_IOAPIC, pin: gsi === 0 ? IOAPIC_TIMER_PIN : gsi });
  }
  return routes;
}
