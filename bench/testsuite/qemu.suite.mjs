// bench/testsuite.mjs, QEMU's half: the same N tests written the way such tests are written
// today — each spawns `qemu-system-x86_64 -accel kvm -nographic -serial stdio -device
// isa-debug-exit,...` on the greeter boot sector (through SeaBIOS), waits for the prompt on
// stdout, types the name on stdin and checks the exit status, which isa-debug-exit makes
// (code << 1) | 1. (`-monitor none`: with -nographic the monitor would want stdio too;
// `snapshot=on` on the drive lets tests that run at once share the image.)
import { spawn } from 'node:child_process';
import { beforeAll, expect, test } from 'vitest';
import { assembleFile } from '../../dist/testing/index.js';
import { GREETER_BOOT_SECTOR, nameFor } from './greeter.mjs';

const TESTS = Number(process.env.TSKVM_BENCH_TESTS || 50);
const QEMU = process.env.QEMU || 'qemu-system-x86_64';
let image;
beforeAll(async () => {
  image = await assembleFile(GREETER_BOOT_SECTOR, { format: 'bootsector', name: 'greeter.boot.S' });
});

/** Runs QEMU on the image; types `input` once `prompt` shows on stdout; resolves with the exit status and the output. */
function qemu(prompt, input) {
  const args = ['-accel', 'kvm', '-nographic', '-monitor', 'none', '-serial', 'stdio'];
  // snapshot=on: tests running at once share the image (QEMU locks a disk it may write).
  args.push('-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-drive', `file=${image},format=raw,snapshot=on`);
  const child = spawn(QEMU, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  let typed = false;
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  child.stdout.on('data', (chunk) => {
    output += chunk;
    if (!typed && output.includes(prompt)) {
      typed = true;
      child.stdin.write(input);
    }
  });
  child.stdin.on('error', () => {});
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, output, stderr });
    });
  });
}

test.for(Array.from({ length: TESTS }, (_, i) => i))('greets guest %i', async (i) => {
  const name = nameFor(i);
  const { status, output, stderr } = await qemu('name? ', `${name}\n`);
  expect(output, stderr).toContain(`hello, ${name}!`);
  expect(status).toBe((name.length << 1) | 1);
});
