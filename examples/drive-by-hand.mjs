// Drive KVM by hand with tskvm's lower-level API: a VM, 1 MiB of guest RAM, a few bytes of
// real-mode machine code written straight into that RAM, registers set by hand, one run.
//
//   npm run build:ts && node examples/drive-by-hand.mjs
//
// What runGuest() (src/run-guest.ts) does for you — loader, firmware tables, timeouts — is left
// out on purpose: this is the bare sequence of ioctls, one step at a time.
import { Vm, SerialBridge } from '../dist/index.js';

const LOAD_SEGMENT = 0x1000; // kvmtool's convention: CS = 0x1000, so CS:0000 is linear 0x10000
const LOAD_ADDRESS = LOAD_SEGMENT << 4;

// The guest, assembled by hand (16-bit real mode). It prints "KVM\n" on COM1 without polling
// LSR (tskvm's UART never makes a polling-free guest lose a byte this short), then ends the run
// by writing AL to the debug-exit port 0xF4.
// prettier-ignore
const code = Uint8Array.from([
  0xba, 0xf8, 0x03, //       mov  $0x3f8, %dx    COM1's THR
  0xb0, 0x4b,       //       mov  $'K', %al
  0xee,             //       out  %al, (%dx)     -> KVM_EXIT_IO, out, port 0x3f8, size 1
  0xb0, 0x56,       //       mov  $'V', %al
  0xee,             //       out  %al, (%dx)
  0xb0, 0x4d,       //       mov  $'M', %al
  0xee,             //       out  %al, (%dx)
  0xb0, 0x0a,       //       mov  $'\n', %al
  0xee,             //       out  %al, (%dx)
  0xb0, 0x06,       //       mov  $6, %al
  0x04, 0x01,       //       add  $1, %al        AL = 7, computed by the guest
  0xe6, 0xf4,       //       out  %al, $0xf4     debug-exit: the run ends with exit code 7
  0xf4,             //       hlt                 (not reached)
]);

// KVM_CREATE_VM, KVM_SET_TSS_ADDR, KVM_SET_IDENTITY_MAP_ADDR, KVM_SET_USER_MEMORY_REGION.
// irqchip: false gives a bare machine: no PIC/IOAPIC/PIT, and HLT exits to userspace.
const vm = Vm.create({ memorySize: 1 << 20, irqchip: false });
try {
  // vm.memory.bytes is a Uint8Array over the very pages the guest sees: no copy.
  vm.memory.bytes.set(code, LOAD_ADDRESS);
  console.log(`guest RAM: ${vm.memory.size} bytes; ${code.length} bytes of code at 0x${LOAD_ADDRESS.toString(16)}`);

  // KVM_CREATE_VCPU (+ mmap of kvm_run), KVM_SET_CPUID2, KVM_SET_MSRS.
  const vcpu = vm.createVcpu();

  // Real mode: a segment's base is its selector * 16. KVM_GET_SREGS, edit, KVM_SET_SREGS.
  const sregs = vcpu.getSregs();
  for (const seg of ['cs', 'ds', 'es', 'fs', 'gs', 'ss']) {
    sregs[seg].selector = LOAD_SEGMENT;
    sregs[seg].base = BigInt(LOAD_ADDRESS);
  }
  vcpu.setSregs(sregs);
  // KVM_SET_REGS: IP = 0, a stack, and RFLAGS = 0x2 (bit 1 always reads 1; IF = 0).
  const regs = vcpu.getRegs();
  for (const name of Object.keys(regs)) regs[name] = 0n;
  Object.assign(regs, { rip: 0n, rsp: 0x8000n, rflags: 0x2n });
  vcpu.setRegs(regs);
  const cs = vcpu.getSregs().cs;
  console.log(`start: CS=0x${cs.selector.toString(16)} (base 0x${cs.base.toString(16)}) IP=0x${vcpu.getRegs().rip.toString(16)}`);

  // COM1's host side: the vCPU thread pushes transmitted bytes into a ring; the bridge moves
  // them to this sink on the main thread.
  const received = [];
  const com1 = new SerialBridge((chunk) => void received.push(chunk));

  // KVM_RUN in a loop, in a worker thread, until a device ends the run.
  const result = await vcpu.run([com1]);
  await com1.finish();

  console.log(`COM1 said: ${JSON.stringify(Buffer.concat(received).toString())}`);
  console.log(`outcome: ${JSON.stringify(result.outcome)}`);
  console.log(`exits: ${result.exits.io} io, ${result.exits.mmio} mmio, ${result.exits.hlt} hlt`);
  // KVM_GET_REGS after the run: the guest's own arithmetic is visible.
  const after = vcpu.getRegs();
  console.log(`guest AL = ${after.rax & 0xffn}, IP = 0x${after.rip.toString(16)} (KVM moved IP past the OUT before exiting)`);

  // The vCPU keeps its state between runs: run again and it resumes at the HLT. Without an
  // in-kernel irqchip, HLT is a KVM_EXIT_HLT, and nothing could ever wake the vCPU: 'halt'.
  const again = await vcpu.run([null]);
  console.log(`second run: ${JSON.stringify(again.outcome)}, ${again.exits.hlt} hlt exit, IP = 0x${vcpu.getRegs().rip.toString(16)}`);
} finally {
  await vm.close();
}
