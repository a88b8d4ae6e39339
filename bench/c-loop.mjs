// The benchmarks' C references, built (gcc -O2) into bench/build/ when missing or older than
// their source: bench/kvm-loop.c (the exit loop), the same loop as a shared library whose
// kvm_loop_main is its main (for a Node process to call: bench/exit-layers.mjs), and
// bench/kvm-create.c (create-run-destroy), which share bench/kvm-setup.h.
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const loopBinary = path.join(root, 'bench', 'build', 'kvm-loop');
export const createBinary = path.join(root, 'bench', 'build', 'kvm-create');
export const loopLibrary = path.join(root, 'bench', 'build', 'libkvm-loop.so');

/** The header both programs include: a change to it rebuilds them too. */
const sharedHeader = path.join(root, 'bench', 'kvm-setup.h');

function buildC(binary, extraFlags = [], name = path.basename(binary)) {
  const source = path.join(root, 'bench', `${name}.c`);
  const stale = (() => {
    try {
      const built = statSync(binary).mtimeMs;
      return built < statSync(source).mtimeMs || built < statSync(sharedHeader).mtimeMs;
    } catch {
      return true;
    }
  })();
  if (!stale) return;
  mkdirSync(path.dirname(binary), { recursive: true });
  execFileSync('gcc', ['-O2', '-Wall', ...extraFlags, '-o', binary, source], { stdio: 'inherit' });
}

export function buildCLoop() {
  buildC(loopBinary);
}

export function buildCLoopLibrary() {
  buildC(loopLibrary, ['-shared', '-fPIC', '-Dmain=kvm_loop_main'], 'kvm-loop');
}

export function buildCCreate() {
  buildC(createBinary, ['-pthread']);
}
