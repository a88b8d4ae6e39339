#!/usr/bin/env node
/**
 * Where an exit's time goes beyond the C loop's (issue 17): the same 200,001-exit guest
 * (guests/build/pioloop.bin), interleaved, µs per exit, layer by layer:
 *   c              bench/kvm-loop.c, a process of its own (its own clock, around the loop only)
 *   cIrqchip       the same with --irqchip: the VM set up as tskvm's builder does (irqchip, PIT,
 *                  the host's CPUID): what tskvm's VM costs an exit, with no tskvm code
 *   cInNode        the C loop's own code (bench/build/libkvm-loop.so) called through ffi-rs in a
 *                  Node process of its own: what Node's process (its threads, its ~300 mappings,
 *                  its FPU state) costs an exit, with no tskvm code
 *   bare           this process calling the backend's KVM_RUN in a loop, on a VM set up as the C
 *                  loop sets it up (no irqchip): what Node and one call into the addon cost
 *   builtVm        the same bare loop on the VM tskvm's builder makes (irqchip, PIT, CPUID, MSRs)
 *   exitLoop       tskvm's exit loop and board on that VM, on this thread (runVcpu)
 *   runGuest       runGuest({ vcpuThread: 'caller' }), as `tskvm run` runs a one-vCPU guest
 * Ratios to the C loop are printed; no verdicts. `node bench/exit-layers.mjs [rounds]` (default 6).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { boardHere } from './board-here.mjs';
import { buildCLoop, buildCLoopLibrary, loopBinary, loopLibrary } from './c-loop.mjs';
import { median } from './stats.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const load = (file) => import(path.join(root, 'dist', file));
const { Kvm, native } = await load('kvm/index.js');
const { GuestMemory } = await load('memory/guest-memory.js');
const { runGuest } = await load('index.js');
const { validateRunOptions } = await load('machine/options.js');
const { readGuestFiles } = await load('machine/guest-files.js');
const { buildMachine } = await load('machine/builder.js');
const { runVcpu } = await load('vcpu/exit-loop.js');
const { loopVcpu } = await load('vcpu/job.js');
const boardFor = await boardHere(path.join(root, 'dist'));

const rounds = Number(process.argv[2] ?? 6);
const image = path.join(root, 'guests', 'build', 'pioloop.bin');
const EXITS = 200_001;
// As bench/kvm-loop.c: 16 MiB, the image at 0x10000, real mode with every segment at 0x1000.
const MEMORY = 16 << 20;
const TSS_ADDR = 0xfffbd000;
const FLAT_LOAD_ADDR = 0x10000;
const FLAT_SEGMENT = 0x1000;
const FLAT_SP = 0x8000n;
const RFLAGS_RESERVED = 2n;
// kvm_run.io.port (src/kvm/run.ts); the guest's last exit is its write to the debug-exit port.
const KVM_RUN_IO_PORT = 34;
const DEBUG_EXIT_PORT = 0xf4;

/** KVM_RUN until the debug-exit write, with nothing but the port read per exit; µs per exit. */
function bareLoop(fd, run) {
  const view = new DataView(run.bytes.buffer);
  const calls = native();
  let exits = 0;
  const t0 = performance.now();
  for (;;) {
    if (calls.run(fd) !== 0) continue; // a kick: nothing sends one here
    exits++;
    if (view.getUint16(KVM_RUN_IO_PORT, true) === DEBUG_EXIT_PORT) break;
  }
  return ((performance.now() - t0) * 1000) / exits;
}

const kvm = Kvm.open();
const guestBytes = readFileSync(image);

function bare() {
  const vm = kvm.createVm();
  const memory = GuestMemory.create(MEMORY);
  try {
    vm.setTssAddr(TSS_ADDR);
    vm.setUserMemoryRegion(0, 0, MEMORY, memory.hostAddr);
    memory.bytes.set(guestBytes, FLAT_LOAD_ADDR);
    const vcpu = vm.createVcpu(0);
    const sregs = vcpu.getSregs();
    for (const name of ['cs', 'ds', 'es', 'fs', 'gs', 'ss']) {
      sregs[name].selector = FLAT_SEGMENT;
      sregs[name].base = BigInt(FLAT_SEGMENT << 4);
    }
    vcpu.setSregs(sregs);
    const regs = vcpu.getRegs();
    Object.assign(regs, { rip: 0n, rsp: FLAT_SP, rbp: FLAT_SP, rflags: RFLAGS_RESERVED });
    vcpu.setRegs(regs);
    const us = bareLoop(vcpu.fd, vcpu.kvmRun);
    vcpu.close();
    return us;
  } finally {
    vm.close();
    memory.close();
  }
}

async function built(withExitLoop) {
  const config = validateRunOptions({ image });
  const machine = buildMachine(config, await readGuestFiles(config));
  try {
    const vcpu = machine.vcpus[0];
    if (!withExitLoop) return bareLoop(vcpu.fd.fd, vcpu.fd.kvmRun);
    const { devices, control } = boardFor(machine);
    const t0 = performance.now();
    const result = runVcpu(loopVcpu(vcpu.fd), devices, control, {});
    return ((performance.now() - t0) * 1000) / result.exits.io;
  } finally {
    await machine.vm.close();
  }
}

/** µs per exit from the C loop's own report (its clock, around the loop only). */
function cLoopReport(r) {
  const seconds = /seconds=([\d.]+)/.exec(`${r.stdout}${r.stderr}`);
  if (r.status !== 0 || !seconds) throw new Error(`kvm-loop failed (status ${r.status}): ${r.stderr}`);
  return (Number(seconds[1]) * 1e6) / EXITS;
}

const cLoop = (...flags) => cLoopReport(spawnSync(loopBinary, [...flags, image], { encoding: 'utf8' }));

/** The C loop's main, called in a fresh Node process through ffi-rs (its report goes to that process's stderr). */
const C_IN_NODE = `
const ffi = require('ffi-rs');
ffi.open({ library: 'loop', path: process.argv[1] });
const argv = ['kvm-loop', process.argv[2]];
process.exitCode = ffi.load({ library: 'loop', funcName: 'kvm_loop_main', retType: ffi.DataType.I32,
  paramsType: [ffi.DataType.I32, ffi.DataType.StringArray], paramsValue: [argv.length, argv] });
`;
const cInNode = () => cLoopReport(spawnSync(process.execPath, ['-e', C_IN_NODE, loopLibrary, image], { cwd: root, encoding: 'utf8' }));

const LAYERS = {
  c: () => cLoop(),
  cIrqchip: () => cLoop('--irqchip'),
  cInNode,
  bare,
  builtVm: () => built(false),
  exitLoop: () => built(true),
  runGuest: async () => ((await runGuest({ image, vcpuThread: 'caller' })).durationMs * 1000) / EXITS,
};

buildCLoop();
buildCLoopLibrary();
for (const layer of Object.values(LAYERS)) await layer(); // warm-up: every path compiled and optimised
const times = Object.fromEntries(Object.keys(LAYERS).map((name) => [name, []]));
for (let i = 0; i < rounds; i++) for (const [name, layer] of Object.entries(LAYERS)) times[name].push(await layer());
kvm.close();

const c = median(times.c);
console.log(`Where an exit's time goes (${path.basename(image)}, ${EXITS} exits, median of ${rounds} interleaved rounds)`);
for (const [name, values] of Object.entries(times)) {
  const m = median(values);
  console.log(`  ${name.padEnd(10)} ${m.toFixed(2).padStart(6)} us/exit   ratio C / it ${(c / m).toFixed(3)}`);
}
