#!/usr/bin/env node
// Prints what a tskvm snapshot holds, piece by piece, in the terms of the hardware it describes:
// the vCPUs' registers, local APICs and pending events, the PIC pair, the I/O APIC, the PIT,
// the UART, and which guest pages were saved. The file is checked as a restore checks it.
//
//   node examples/inspect-snapshot.mjs FILE
//
// docs/tour.md (chapter 10) runs it on a snapshot of guests/build/snapticks.elf.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const { openSnapshot } = await import(path.join(dist, 'snapshot', 'snapshot.js'));
const state = await import(path.join(dist, 'kvm', 'state.js'));
const { decodeRegs, decodeSregs, cpuMode, RFLAGS_IF } = await import(path.join(dist, 'kvm', 'structs.js'));

const MP_STATES = ['runnable', 'uninitialized (waiting for INIT)', 'INIT received', 'halted', 'SIPI received'];
const hex = (n) => `0x${n.toString(16)}`;
const IOAPIC_VECTOR_MASK = 0xffn;
const IOAPIC_MASKED = 1n << 16n;

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: node examples/inspect-snapshot.mjs FILE\n');
  process.exit(2);
}
const { file: snap, snapshot } = openSnapshot(file);
try {
  const h = snap.header;
  const m = snapshot.machine;
  console.log(
    `${path.basename(file)}: tskvm ${h.tskvm}, format ${h.format}; ${m.cpus} vCPU(s), ${m.memorySize / 2 ** 20} MiB${m.irqchip ? ', in-kernel irqchip' : ''}`,
  );
  const pages = h.memory.runs.reduce((n, r) => n + r.length, 0) / h.memory.pageSize;
  console.log(`memory: ${pages} pages saved (${h.memory.detection}), in ${h.memory.runs.length} runs:`);
  console.log(`  ${h.memory.runs.map((r) => `${hex(r.gpa)}+${r.length / h.memory.pageSize}`).join(' ')}`);

  for (const v of snapshot.vcpus) {
    const regs = decodeRegs(v.regs);
    const sregs = decodeSregs(v.sregs);
    const irq = (regs.rflags & RFLAGS_IF) !== 0n ? 'on' : 'off';
    console.log(
      `vCPU ${v.id}: ${cpuMode(sregs)} mode, RIP ${hex(regs.rip)}, interrupts ${irq}, ${MP_STATES[v.mpState] ?? `mp_state ${v.mpState}`}`,
    );
    if (v.lapic) {
      const apic = state.decodeLapic(v.lapic);
      const t = apic.timer;
      console.log(
        `  LAPIC ${apic.id}: ${apic.softwareEnabled ? 'enabled' : 'disabled'}, timer ${t.mode}${t.masked ? ' (masked)' : ''}, vector ${hex(t.vector)}, initial count ${t.initialCount}, divide ${hex(t.divide)}`,
      );
    }
    const events = state.decodeVcpuEvents(v.events);
    console.log(
      `  in flight: exception ${events.exception.injected ? hex(events.exception.nr) : 'none'}, interrupt ${events.interrupt.injected ? hex(events.interrupt.nr) : 'none'}, NMI ${events.nmi.pending ? 'pending' : 'none'}`,
    );
    console.log(`  ${v.msrs.length} MSRs, XSAVE area ${v.fpu.bytes.length} bytes, XCR0 ${hex(state.decodeXcrs(v.xcrs)[0]?.value ?? 0n)}`);
  }
  if (snapshot.vm.irqchip) {
    const master = state.decodePic(snapshot.vm.irqchip.picMaster);
    console.log(`PIC master: vectors from ${hex(master.irqBase)}, mask ${hex(master.imr)}`);
    const ioapic = state.decodeIoapic(snapshot.vm.irqchip.ioapic);
    const routed = ioapic.redirtbl.flatMap((entry, pin) =>
      (entry & IOAPIC_MASKED) === 0n ? [`pin ${pin} -> vector ${hex(entry & IOAPIC_VECTOR_MASK)}`] : [],
    );
    console.log(`IOAPIC: ${routed.join(', ') || 'every pin masked'}`);
    const ch0 = state.decodePit(snapshot.vm.pit).channels[0];
    console.log(`PIT channel 0: mode ${ch0.mode}, count ${ch0.count}`);
  }
  const com1 = snapshot.devices.devices.COM1;
  console.log(
    `COM1: IER ${hex(com1.ier)}, MCR ${hex(com1.mcr)}, ${com1.txFifo.length} bytes waiting to be sent, ${com1.rxFifo.length} received`,
  );
} finally {
  snap.close();
}
