/**
 * The guest-testing toolkit on /dev/kvm, used as a package user would (from dist/): a guest
 * assembled inside the test prompts for a name, reads a line and answers, driven with expect()
 * and write() — input in one piece, byte by byte, and before the prompt; a timed-out expect shows
 * the output it saw; a test that ends early (it throws, or times out) leaves no VM, vCPU thread
 * or KVM fd behind; the same through node:test.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect } from 'vitest';
import { releaseIdleResources } from '../../dist/index.js';
import { assemble, ExpectTimeoutError } from '../../dist/testing/index.js';
import { kvmTest, type TestGuestRun } from '../../dist/testing/vitest.js';
import { PROMPT_GUEST, SPIN_GUEST } from './fixtures/prompt-guest.js';
import { liveThreads } from './helpers.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

let prompt: Buffer;
let spin: Buffer;
beforeAll(async () => {
  [prompt, spin] = await Promise.all([assemble(PROMPT_GUEST, { name: 'prompt.S' }), assemble(SPIN_GUEST, { name: 'spin.S' })]);
});

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The KVM file descriptors this process holds (/dev/kvm, VMs, vCPUs). */
function kvmFds(): string[] {
  return readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      return /kvm/.test(target) ? [target] : [];
    } catch {
      return []; // closed while we looked (readdir's own fd)
    }
  });
}

function threadCount(): number {
  return liveThreads();
}

describe('expect() and write() on a guest that prompts, reads a line and answers', () => {
  kvmTest('input typed in one piece after the prompt', async ({ guest }) => {
    const run = await guest.start({ image: prompt, timeoutMs: 30_000 });
    const asked = await run.console.expect('name? ');
    expect(asked.before).toBe('');
    run.console.write('Ada\n');
    const answer = await run.console.expect(/hello, (\w+)!/);
    expect(answer.groups?.[1]).toBe('Ada');
    expect(answer.before).toBe('');
    await expect(run).toExitWith(3);
    expect(await run.result).toHaveSerialOutput('name? hello, Ada!\n');
  });

  kvmTest('input typed byte by byte', async ({ guest }) => {
    const run = await guest.start({ image: prompt, timeoutMs: 30_000 });
    await run.console.expect('name? ');
    for (const byte of Buffer.from('Grace Hopper\n')) {
      run.console.write(new Uint8Array([byte]));
      await pause(2);
    }
    await run.console.expect('hello, Grace Hopper!');
    expect(await run.result).toExitWith(12);
  });

  kvmTest('input typed before the guest has asked', async ({ guest }) => {
    const run = await guest.start({ image: prompt, timeoutMs: 30_000 });
    run.console.write('Lin\n'); // queued until the guest reads COM1
    const lines = run.console.lines();
    await run.console.expect('name? ');
    await run.console.expect('hello, Lin!');
    const line = await lines.next();
    expect(line.value).toMatch(/hello, Lin!$/);
    const result = await run.result;
    expect(result).toExitWith(3);
    expect(result.serial).toBe('name? hello, Lin!\n');
  });

  kvmTest('input given as serialInput and more typed later', async ({ guest }) => {
    const run = await guest.start({ image: prompt, serialInput: 'Ka', timeoutMs: 30_000 });
    await run.console.expect('name? ');
    run.console.write('te\n');
    await expect(run).toExitWith(4);
    expect(run.console.output).toBe('name? hello, Kate!\n');
  });

  kvmTest('a timed-out expect shows the output it saw', async ({ guest }) => {
    const run = await guest.start({ image: prompt, timeoutMs: 30_000 });
    const err: unknown = await run.console.expect('password: ', { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExpectTimeoutError);
    const timeout = err as InstanceType<typeof ExpectTimeoutError>;
    expect(timeout.code).toBe('EEXPECT');
    expect(timeout.message).toMatch(/expected password: , but 300 ms passed; the output since the last match was:\nname\? $/);
    expect(timeout.output).toBe('name? ');
    // The console is still usable after a time-out: the guest waits for its line.
    run.console.write('Bo\n');
    await run.console.expect('hello, Bo!');
    await expect(run).toExitWith(2);
  });

  kvmTest('an expect still waiting when the run ends fails at once, saying so', async ({ guest }) => {
    const run = await guest.start({ image: prompt, timeoutMs: 30_000 });
    await run.console.expect('name? ');
    const waiting = run.console.expect('never printed', { timeoutMs: 20_000 }).catch((e: unknown) => e);
    run.stop();
    const err = await waiting;
    expect(err).toBeInstanceOf(ExpectTimeoutError);
    expect((err as Error).message).toMatch(/but the run ended/);
    expect((await run.result).reason).toBe('stopped');
  });
});

describe('a test that ends early leaves no VM running', () => {
  const leaked: TestGuestRun[] = [];
  let baseline = { threads: 0 };

  beforeAll(async () => {
    await releaseIdleResources();
    baseline = { threads: threadCount() };
  });

  kvmTest('a guest run to its end, to warm up the thread pools', async ({ guest }) => {
    const run = await guest.start({ image: prompt, serialInput: 'x\n' });
    await expect(run).toExitWith(1);
    await releaseIdleResources();
    baseline = { threads: Math.max(baseline.threads, threadCount()) };
  });

  kvmTest.fails('a test that throws while its guest spins (expected to fail)', async ({ guest }) => {
    const run = await guest.start({ image: spin });
    leaked.push(run);
    await pause(50);
    expect(run.state).toBe('running');
    throw new Error('the test ends here, its guest still running');
  });

  kvmTest.fails('a test that times out while its guest spins (expected to fail)', { timeout: 1000 }, async ({ guest }) => {
    const run = await guest.start({ image: spin });
    leaked.push(run);
    await run.result; // never, until the test's time-out aborts its signal
  });

  kvmTest('leaves no VM, vCPU thread or KVM fd behind', async () => {
    expect(leaked).toHaveLength(2);
    for (const run of leaked) {
      expect(run.state).toBe('stopped');
      expect((await run.result).reason).toBe('stopped');
    }
    await releaseIdleResources();
    expect(kvmFds()).toEqual([]);
    expect(threadCount()).toBeLessThanOrEqual(baseline.threads);
  });

  kvmTest('refuses to start a guest once its test has ended', async ({ guest }) => {
    await guest.close(); // what the fixture does at the test's end
    await expect(guest.start({ image: spin })).rejects.toThrow(/this test has ended/);
  });
});

describe('tskvm/node-test', () => {
  /** Runs test/integration/fixtures/node-test.fixture.mjs under node --test. */
  function nodeTest(env: Record<string, string>): Promise<{ status: number | null; output: string }> {
    const child = spawn(process.execPath, ['--test', '--test-reporter=tap', path.join(FIXTURES, 'node-test.fixture.mjs')], {
      env: { ...process.env, TSKVM_REQUIRE_KVM: '', ...env },
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    return new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, output }));
    });
  }

  kvmTest('runs a guest test, stopping what a test left running', async () => {
    const run = await nodeTest({});
    expect(run.output).toMatch(/^# pass 3$/m);
    expect(run.output).toMatch(/^# fail 0$/m);
    expect(run.status).toBe(0);
  });

  kvmTest('skips with the reason where KVM is unusable, and fails under TSKVM_REQUIRE_KVM=1', async () => {
    const skipped = await nodeTest({ TSKVM_KVM_DEVICE: '/nonexistent' });
    expect(skipped.status).toBe(0);
    expect(skipped.output).toMatch(/ok \d+ - greets by name # SKIP no usable KVM: \/nonexistent is not available/);
    expect(skipped.output).toMatch(/ok \d+ - a suite # SKIP no usable KVM/);
    expect(skipped.output).toMatch(/^# pass 0$/m);
    const failed = await nodeTest({ TSKVM_KVM_DEVICE: '/nonexistent', TSKVM_REQUIRE_KVM: '1' });
    expect(failed.status).toBe(1);
    expect(failed.output).toMatch(/TSKVM_REQUIRE_KVM=1, but guests cannot run here: \/nonexistent/);
    expect(failed.output).toMatch(/^# fail [1-9]/m);
  });
});
