/**
 * Shared by the integration tests: whether /dev/kvm can run guests here, paths to the built
 * guests, and a way to run the CLI as a user would.
 */
import { spawn, type SpawnOptions } from 'node:child_process';
import { closeSync, constants, openSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe } from 'vitest';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(ROOT, 'bin', 'tskvm.js');

export function guest(name: string): string {
  return path.join(ROOT, 'guests', 'build', `${name}.bin`);
}

function kvmUsable(): { ok: boolean; why: string } {
  try {
    closeSync(openSync('/dev/kvm', constants.O_RDWR));
    return { ok: true, why: '' };
  } catch (err) {
    return { ok: false, why: (err as Error).message };
  }
}

/** The kernel's PF_EXITING task flag (include/linux/sched.h): the thread is in do_exit. */
const PF_EXITING = 0x4;

/**
 * This process's threads that are not on their way out. A thread that has exited as far as
 * pthread_join (and Node's Worker 'exit') can tell is still listed in /proc/self/task until the
 * kernel has released it, a window that a loaded host stretches: counting it made a test see one
 * thread more before its runs than after (the previous test's worker, dying).
 */
export function liveThreads(): number {
  let live = 0;
  for (const tid of readdirSync('/proc/self/task')) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'latin1');
    } catch {
      continue; // gone while we looked
    }
    // Fields after "(comm)": state ppid pgrp session tty_nr tpgid flags ...; comm may hold spaces.
    const flags = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[6]);
    if ((flags & PF_EXITING) === 0) live++;
  }
  return live;
}

export const kvm = kvmUsable();
export const requireKvm = process.env.TSKVM_REQUIRE_KVM === '1';

/**
 * describe() for tests that boot guests: skipped where /dev/kvm is unusable, unless
 * TSKVM_REQUIRE_KVM=1, where an unusable /dev/kvm is a failure instead.
 */
export function describeKvm(name: string, body: () => void): void {
  if (!kvm.ok && requireKvm) {
    describe(name, () => {
      body();
    });
    return;
  }
  describe.skipIf(!kvm.ok)(name, body);
}

/** Throws where /dev/kvm must work but does not, so the first test of a suite fails loudly. */
export function assertKvm(): void {
  if (!kvm.ok) throw new Error(`TSKVM_REQUIRE_KVM=1 but /dev/kvm is unusable: ${kvm.why}`);
}

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs `tskvm ARGS`, feeding `input` (if any) on stdin, and collects everything. */
export function runCli(
  args: string[],
  options: { input?: Buffer | string; env?: NodeJS.ProcessEnv; onStdout?: (chunk: Buffer, child: ReturnType<typeof spawn>) => void } = {},
): Promise<CliResult> {
  const spawnOptions: SpawnOptions = { cwd: ROOT, env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] };
  const child = spawn(process.execPath, [CLI, ...args], spawnOptions);
  const out: Buffer[] = [];
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    out.push(chunk);
    options.onStdout?.(chunk, child);
  });
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  child.stdin!.on('error', () => {});
  if (options.input !== undefined) child.stdin!.end(options.input);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout: Buffer.concat(out), stderr: err }));
  });
}
