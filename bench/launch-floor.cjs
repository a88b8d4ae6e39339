// The floor of a launch (bench/launch.mjs): a Node program that does only what KVM needs to run
// the one-exit guest, and nothing a VMM adds (no device model, no command line, no bundle). The
// addon loaded with process.dlopen, /dev/kvm opened, a VM with 16 MiB of RAM and one vCPU (no
// irqchip, as bench/kvm-loop.c), the guest's four instructions copied to 0x10000 and started in
// real mode at 1000:0000, one KVM_RUN; exit status 7 when that exit is the guest's OUT to the
// debug-exit port 0xF4, 1 otherwise. What tskvm run costs above this is what tskvm itself costs.
'use strict';
const path = require('node:path');

const addon = { exports: {} };
process.dlopen(addon, path.join(__dirname, '..', 'build', 'Release', 'tskvm.node'));
const kvm = addon.exports;
const { ioctls, layout } = kvm;

const KVM_EXIT_IO = 2;
const DEBUG_EXIT_PORT = 0xf4;
const RAM_SIZE = 16 << 20;
const LOAD_SEGMENT = 0x1000;
/** Three pages below 4 GiB, clear of RAM, for the TSS that VMX needs in real mode. */
const TSS_ADDR = 0xfffbd000;
/** mov al, 7; out 0xf4, al; cli; hlt */
const GUEST = [0xb0, 0x07, 0xe6, 0xf4, 0xfa, 0xf4];
/** Offsets in struct kvm_segment: base (u64) and selector (u16). */
const SEGMENT_BASE = 0;
const SEGMENT_SELECTOR = 12;

function check(what, value) {
  if (typeof value === 'number' ? value < 0 : value < 0n) throw new Error(`${what}: errno ${-Number(value)}`);
  return value;
}

const system = check('open /dev/kvm', kvm.open('/dev/kvm'));
const vm = check('KVM_CREATE_VM', kvm.ioctl(system, ioctls.KVM_CREATE_VM, 0));
check('KVM_SET_TSS_ADDR', kvm.ioctl(vm, ioctls.KVM_SET_TSS_ADDR, TSS_ADDR)); // as bench/kvm-loop.c: VMX wants one for real mode
const ram = check('mmap', kvm.mmapAnonymous(RAM_SIZE, true));
check('KVM_SET_USER_MEMORY_REGION', kvm.setUserMemoryRegion(vm, 0, 0, 0, RAM_SIZE, ram));
new Uint8Array(kvm.externalBuffer(ram, RAM_SIZE)).set(GUEST, LOAD_SEGMENT << 4);
const vcpu = check('KVM_CREATE_VCPU', kvm.ioctl(vm, ioctls.KVM_CREATE_VCPU, 0));
const runSize = check('KVM_GET_VCPU_MMAP_SIZE', kvm.ioctl(system, ioctls.KVM_GET_VCPU_MMAP_SIZE, 0));
const run = new DataView(kvm.externalBuffer(check('mmap kvm_run', kvm.mmapFd(vcpu, runSize)), runSize));

const sregs = new Uint8Array(layout.sizeofKvmSregs);
check('KVM_GET_SREGS', kvm.ioctlBuffer(vcpu, ioctls.KVM_GET_SREGS, sregs));
const cs = new DataView(sregs.buffer, layout.sregsCs, layout.sizeofKvmSegment);
cs.setBigUint64(SEGMENT_BASE, BigInt(LOAD_SEGMENT << 4), true);
cs.setUint16(SEGMENT_SELECTOR, LOAD_SEGMENT, true);
check('KVM_SET_SREGS', kvm.ioctlBuffer(vcpu, ioctls.KVM_SET_SREGS, sregs));
const regs = new Uint8Array(layout.sizeofKvmRegs);
new DataView(regs.buffer).setBigUint64(layout.regsRflags, 2n, true); // bit 1 is always set
check('KVM_SET_REGS', kvm.ioctlBuffer(vcpu, ioctls.KVM_SET_REGS, regs));

check('KVM_RUN', kvm.run(vcpu));
const io = run.getUint32(layout.runExitReason, true) === KVM_EXIT_IO && run.getUint16(layout.runIoPort, true) === DEBUG_EXIT_PORT;
process.exitCode = io ? 7 : 1;
