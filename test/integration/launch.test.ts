/**
 * Launch: the command line as bin/tskvm.js loads it (the bundle of scripts/bundle.mjs, with the
 * subcommands and the version text loaded only when used, and a vCPU thread prestarted for
 * `run`), VM teardown from a worker thread (a vitest `threads` pool runs tests there), and the
 * command lines' hand-over of a VM's destruction to a child that outlives them.
 * Nothing here is timed: the launch figures are `npm run bench`'s (bench/launch.mjs).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/kvm/native.js';
import { assertKvm, describeKvm, guest, kvm, requireKvm, ROOT, runCli } from './helpers.js';

describe('the tskvm command, as bin/tskvm.js loads it', () => {
  it('is built as a bundle beside its threads (npm run build:ts)', () => {
    for (const file of ['cli.cjs', 'run.cjs', 'worker.js', 'board-worker.js', 'supervisor-main.js']) {
      expect(existsSync(path.join(ROOT, 'dist', 'bundle', file)), `dist/bundle/${file}`).toBe(true);
    }
  });

  it("gives `run` a bundle of its own, without the other commands' modules, and the same `run --help`", async () => {
    const run = readFileSync(path.join(ROOT, 'dist', 'bundle', 'run.cjs'), 'latin1');
    const cli = readFileSync(path.join(ROOT, 'dist', 'bundle', 'cli.cjs'), 'latin1');
    // esbuild puts a `// <path>` line above each module it bundles.
    for (const module of ['src/cli/domains.ts', 'src/doctor.ts', 'src/qemu/main.ts', 'node_modules/fast-xml-parser/']) {
      expect(cli).toContain(`// ${module}`);
      expect(run).not.toContain(`// ${module}`);
    }
    // The full bundle's `run --help`, loaded as the bin loads it, against the bin's (run.cjs).
    const loader = path.join(ROOT, 'dist', 'cli', 'code-cache.cjs');
    const full = spawnSync(
      process.execPath,
      [
        '-e',
        `require(${JSON.stringify(loader)}).loadBundle(${JSON.stringify(path.join(ROOT, 'dist', 'bundle', 'cli.cjs'))}).exports.launch(['run', '--help'])`,
      ],
      { cwd: ROOT, encoding: 'utf8' },
    );
    const r = await runCli(['run', '--help']);
    expect(r.status).toBe(0);
    expect(full.status).toBe(0);
    expect(r.stdout.toString()).toBe(full.stdout);
    expect(r.stdout.toString()).toContain('Usage: tskvm run');
  });

  it('lists every command in --help, though it loads the domain commands only when needed', async () => {
    const r = await runCli(['--help']);
    expect(r.status).toBe(0);
    const help = r.stdout.toString();
    for (const command of ['run', 'doctor', 'define', 'list', 'start', 'destroy', 'dumpxml'])
      expect(help).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
  });

  it("lists run's BIOS, snapshot and debugging options in `run --help`", async () => {
    const r = await runCli(['run', '--help']);
    expect(r.status).toBe(0);
    const help = r.stdout.toString();
    for (const option of ['--disk', '--screenshot', '--save', '--restore', '--gdb', '--trace', '--cpus']) expect(help).toContain(option);
  });

  it('names the backend in --version (the only command that loads it before running)', async () => {
    const r = await runCli(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toMatch(/^tskvm \d+\.\d+\.\d+ \(backend: (addon|ffi)/);
  });

  it('runs a domain command, which loads its module on demand', async () => {
    const home = mkdtempSync(path.join(tmpdir(), 'tskvm-launch-'));
    try {
      const r = await runCli(['list', '--all'], { env: { TSKVM_HOME: home } });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout.toString()).toMatch(/Id\s+Name\s+State/);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('exits on a usage error although a vCPU thread was prestarted for `run`', async () => {
    const r = await runCli(['run', '--memory', 'lots', guest('oneexit')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/memory/);
  });
});

describeKvm('the tskvm command runs guests from its bundle', () => {
  beforeAll(() => {
    if (requireKvm) assertKvm();
  });

  it('runs a one-exit guest (the bundled vCPU thread, prestarted)', async () => {
    const r = await runCli(['run', guest('oneexit')]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(7);
  });

  it('runs two vCPUs (the bundled board thread)', async () => {
    const r = await runCli(['run', '--cpus', '2', path.join(ROOT, 'guests', 'build', 'smp.elf')]);
    expect(r.status).toBe(2); // smp.elf exits with the number of CPUs that came up
    expect(r.stdout.toString()).toContain('cpus: 2');
  });
});

/** Runs `source` as an ES module in a worker thread of a fresh Node process; its stderr and status. */
/**
 * Runs `source` as a worker thread of a fresh process, on the addon backend: the warning is about
 * fds the addon opened, and ffi-rs cannot be unloaded with a worker thread (the process crashes
 * when that worker exits; see README, "What works, what does not yet").
 */
function inWorkerThread(source: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const main = `
    import { Worker } from 'node:worker_threads';
    const worker = new Worker(${JSON.stringify(source)}, { eval: true });
    worker.on('error', (err) => { console.error(err); process.exitCode = 1; });
    worker.on('exit', (code) => { if (code !== 0) process.exitCode = code; });
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', main], {
    cwd: ROOT,
    env: { ...process.env, TSKVM_BACKEND: 'addon' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe.skipIf(!kvm.ok && !requireKvm)('VM teardown in a worker thread', () => {
  it('closes the VM fd through the backend, without Node\'s "closed but not opened" warning', async () => {
    if (requireKvm) assertKvm();
    const library = pathToFileURL(path.join(ROOT, 'dist', 'index.js')).href;
    const r = await inWorkerThread(`
      import { readdirSync } from 'node:fs';
      const { runGuest, releaseIdleResources } = await import(${JSON.stringify(library)});
      const fds = () => readdirSync('/proc/self/fd').length;
      await runGuest({ image: ${JSON.stringify(guest('oneexit'))} }); // warm: threads, backend, files
      await releaseIdleResources();
      const before = fds();
      for (let i = 0; i < 3; i++) {
        const r = await runGuest({ image: ${JSON.stringify(guest('oneexit'))} });
        if (r.exitCode !== 7) throw new Error('oneexit returned ' + r.exitCode);
      }
      await releaseIdleResources(); // waits for the background closes
      console.log(JSON.stringify({ before, after: fds() }));
    `);
    expect(r.stderr).not.toMatch(/closed but not opened/);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const { before, after } = JSON.parse(r.stdout) as { before: number; after: number };
    expect(after).toBe(before);
  });
});

describe.skipIf(!kvm.ok && !requireKvm)('VM destruction after exit (tskvm run, tskvm-qemu)', () => {
  it('hands the VM fd to a child that holds nothing else and ends once the process has exited', async () => {
    if (requireKvm) assertKvm();
    if (!native().destroyAfterExit) return; // the ffi-rs backend has no hand-over: its VMs close on the thread pool
    const kvmModule = pathToFileURL(path.join(ROOT, 'dist', 'kvm', 'index.js')).href;
    const nativeModule = pathToFileURL(path.join(ROOT, 'dist', 'kvm', 'native.js')).href;
    // A process that builds a VM with an irqchip, hands its fd over, closes its own, says the
    // child's pid, and stays until its stdin ends.
    const script = `
      const { Kvm } = await import(${JSON.stringify(kvmModule)});
      const { native } = await import(${JSON.stringify(nativeModule)});
      const kvm = Kvm.open();
      const vm = kvm.createVm();
      vm.createIrqchip();
      const pid = native().destroyAfterExit([vm.fd]);
      vm.close();
      kvm.close();
      console.log(JSON.stringify({ pid }));
      process.stdin.resume();
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const line = await new Promise<string>((resolve, reject) => {
      child.on('exit', (status) => reject(new Error(`exited with ${status}: ${err}`)));
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('\n')) resolve(out);
      });
    });
    const { pid } = JSON.parse(line) as { pid: number };
    expect(pid).toBeGreaterThan(0);
    expect(readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe('tskvm-teardown');
    // The child holds the VM and the pipe that tells it when the process has ended: not the
    // process's stdio, so nobody reading the process's output waits for it.
    const held = readdirSync(`/proc/${pid}/fd`).map((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`));
    expect(held.sort()).toEqual(['anon_inode:kvm-vm', expect.stringMatching(/^pipe:/) as string]);
    child.stdin.end();
    await new Promise((resolve) => child.on('close', resolve));
    // Once the process has gone, the child closes the VM and exits (init reaps it).
    await expect.poll(() => existsSync(`/proc/${pid}/fd`), { timeout: 10_000, interval: 20 }).toBe(false);
  });

  it('refuses an empty list, too many fds or a negative fd before it starts anything', () => {
    if (requireKvm) assertKvm();
    const handOver = native().destroyAfterExit;
    if (!handOver) return;
    const EINVAL = 22;
    const EBADF = 9;
    expect(handOver([])).toBe(-EINVAL);
    expect(handOver(Array.from({ length: 65 }, () => 0))).toBe(-EINVAL);
    expect(handOver([-1])).toBe(-EBADF);
  });
});
