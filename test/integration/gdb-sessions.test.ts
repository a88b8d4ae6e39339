/**
 * The real gdb against tskvm's stub on /dev/kvm, in the two cases issue 14 names: an ELF64
 * kernel that starts in 32-bit mode (gdb loads it as x86-64 while the vCPU is in protected mode,
 * so the stub must serve the x86-64 layout from the first packet), and a two-vCPU machine, each
 * vCPU a gdb thread. gdb runs in batch mode; tskvm runs the CLI with --gdb 0 --gdb-wait.
 * Without gdb these tests skip, unless TSKVM_REQUIRE_GDB=1 (CI), where a missing gdb fails.
 */
import { execFile, spawn } from 'node:child_process';
import net from 'node:net';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { runGuest } from '../../dist/index.js';
import { PacketDecoder, encodePacket } from '../../dist/gdb/packet.js';
import { assertKvm, CLI, describeKvm, guest, ROOT, runCli } from './helpers.js';

const GDB = ['/usr/bin/gdb', '/usr/local/bin/gdb'].find((p) => existsSync(p));
if (!GDB && process.env.TSKVM_REQUIRE_GDB === '1') throw new Error('TSKVM_REQUIRE_GDB=1 but gdb is not installed: apt-get install -y gdb');
const itGdb = it.skipIf(!GDB);

const SESSION_TIMEOUT_MS = 60_000;
const kernel = (name: string): string => path.join(ROOT, 'guests', 'build', `${name}.elf`);

interface Served {
  port: number;
  /** tskvm's exit status once it has ended. */
  exited: Promise<number | null>;
  stdout: () => string;
  stderr: () => string;
  kill: () => void;
}

/** `tskvm run --gdb 0 --gdb-wait ARGS`, once it says which port it serves gdb on. */
async function serve(args: string[]): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'run', '--gdb', '0', '--gdb-wait', '--timeout', '60s', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      const m = /gdb server on 127\.0\.0\.1:(\d+)/.exec(stderr);
      if (m) resolve(Number(m[1]));
    });
    void exited.then(() => reject(new Error(`tskvm exited before serving gdb: ${stderr}`)));
  });
  return { port, exited, stdout: () => stdout, stderr: () => stderr, kill: () => child.kill('SIGKILL') };
}

/** gdb -batch on FILE: connect, then COMMANDS; its stdout and stderr together. */
async function gdb(file: string, port: number, commands: string[]): Promise<string> {
  const args = [
    '-nx',
    '-batch',
    // An internal error in gdb should fail the test, not leave a core file in the tree.
    ...['-iex', 'maint set internal-error corefile no', '-iex', 'maint set internal-error quit yes'],
    ...[`target remote 127.0.0.1:${port}`, ...commands].flatMap((c) => ['-ex', c]),
    file,
  ];
  const { stdout, stderr } = await promisify(execFile)(GDB!, args, { cwd: ROOT, timeout: SESSION_TIMEOUT_MS });
  return stdout + stderr;
}

describeKvm('gdb on an ELF64 kernel that starts in 32-bit mode', () => {
  itGdb(
    'serves the x86-64 layout from the start: hbreak at a 64-bit function, stepi, registers read and written, the exit',
    async () => {
      assertKvm();
      const elf = kernel('gdblong');
      const served = await serve([elf]);
      const out = await gdb(elf, served.port, [
        'info registers rip', // still 32-bit code: the x86-64 layout shows it zero-extended
        'hbreak long_main',
        'continue',
        'stepi',
        'info registers rip',
        'p/x $rcx',
        'set $rax = 0x123456789a',
        'info registers rax',
        'continue',
      ]);
      expect(out).not.toMatch(/not compatible with reported target architecture|rejected target-supplied description/);
      expect(out).toMatch(/rip +0x100020 +0x100020 <_start>/);
      expect(out).toMatch(/Hardware assisted breakpoint 1 at 0x1000d8/);
      expect(out).toMatch(/Breakpoint 1, 0x00000000001000d8 in long_main \(\)/);
      expect(out).toMatch(/rip +0x1000dd +0x1000dd <long_main\+5>/); // stepi ran `mov $1, %ecx` (5 bytes)
      expect(out).toMatch(/\$1 = 0x1\n/);
      expect(out).toMatch(/rax +0x123456789a +78187493530/);
      expect(out).toMatch(/\[Inferior 1 \(Remote target\) exited with code 022\]/); // 0x12 = 18, in octal
      expect(await served.exited).toBe(18);
      expect(served.stdout()).toBe('long mode\n');
      expect(served.stderr()).not.toMatch(/--gdb-arch/);
    },
    SESSION_TIMEOUT_MS + 30_000,
  );

  itGdb(
    'with the wrong --gdb-arch, hints at the right one on stderr',
    async () => {
      const elf = kernel('gdblong');
      const served = await serve(['--gdb-arch', 'i386', elf]);
      // gdb keeps its x86-64 layout and warns; tskvm says what to do once gdb's packets show it.
      const session = gdb(elf, served.port, ['info registers rip', 'kill']).catch((err: Error) => err.message);
      const out = await session;
      expect(out).toMatch(/Selected architecture i386:x86-64 is not compatible with reported target architecture i386/);
      await served.exited;
      const hints = served.stderr().match(/^tskvm: .*--gdb-arch x86-64.*$/gm) ?? [];
      expect(hints).toHaveLength(1);
      expect(hints[0]).toMatch(/gdb seems to use the x86-64 register layout/);
    },
    SESSION_TIMEOUT_MS + 30_000,
  );

  it('refuses an unknown --gdb-arch, naming the values', async () => {
    const r = await runCli(['run', '--gdb', '0', '--gdb-arch', 'arm', kernel('gdblong')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/invalid --gdb-arch .*'arm': use one of i386, x86-64/);
    const alone = await runCli(['run', '--gdb-arch', 'i386', kernel('gdblong')]);
    expect(alone.status).toBe(2);
    expect(alone.stderr).toMatch(/--gdb-arch needs --gdb PORT/);
  });
});

describeKvm('gdb on two vCPUs', () => {
  itGdb(
    'lists both as threads, reads the AP’s registers, stops all-stop at a breakpoint the AP hits, and runs to the exit',
    async () => {
      assertKvm();
      const elf = kernel('smp');
      const served = await serve(['--cpus', '2', elf]);
      const out = await gdb(elf, served.port, [
        'info threads',
        'thread 2',
        'info registers eip cs',
        'thread 1',
        'hbreak ap_entry32',
        'continue',
        'info threads',
        'stepi',
        'p/x $eip',
        'delete',
        'continue',
      ]);
      // At --gdb-wait: the BSP at the multiboot entry, the AP at its reset vector, waiting for INIT/SIPI.
      expect(out).toMatch(/\* 1 +Thread 1 \(CPU#0 \[protected mode\]\) +0x00100010 in _start \(\)/);
      expect(out).toMatch(/ {2}2 +Thread 2 \(CPU#1 \[waiting for INIT\/SIPI\]\) +0x0000fff0 in \?\? \(\)/);
      expect(out).toMatch(/eip +0xfff0 +0xfff0\ncs +0xf000 +61440/);
      // The AP, started by the BSP's SIPI, hits the breakpoint; the BSP is stopped too.
      expect(out).toMatch(/Thread 2 hit Breakpoint 1, 0x0010025c in (ap_entry32|trampoline_end) \(\)/);
      expect(out).toMatch(
        / {2}1 +Thread 1 \(CPU#0 \[protected mode\]\) +0x[0-9a-f]+ in \w+ \(\)\n\* 2 +Thread 2 \(CPU#1 \[protected mode\]\)/,
      );
      expect(out).toMatch(/\$1 = 0x100261/); // the AP stepped over `mov $KERNEL_DS, %eax` (5 bytes)
      expect(out).toMatch(/\[Inferior 1 \(Remote target\) exited with code 02\]/);
      expect(await served.exited).toBe(2);
      expect(served.stdout()).toBe('cpu 0 up\ncpu 1 up\ncpus: 2\n');
    },
    SESSION_TIMEOUT_MS + 30_000,
  );
});

/** A bare RSP client (no gdb needed): packets out, replies in, acked. */
async function rsp(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const decoder = new PacketDecoder();
  const replies: string[] = [];
  let wake: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    for (const event of decoder.feed(chunk)) {
      if (event.type !== 'packet') continue;
      socket.write('+');
      replies.push(event.data.toString('latin1'));
    }
    wake?.();
  });
  const next = async (): Promise<string> => {
    while (replies.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    return replies.shift()!;
  };
  return {
    request: (payload: string): Promise<string> => (socket.write(encodePacket(payload)), next()),
    send: (payload: string) => socket.write(encodePacket(payload)),
    next,
    interrupt: () => socket.write(Buffer.from([0x03])),
    close: () => socket.destroy(),
  };
}

describeKvm('gdb attaching to a running two-vCPU guest', () => {
  it('stops both vCPUs on attach, continues them, and stops them again on Ctrl-C', async () => {
    assertKvm();
    let port = 0;
    // spin: the boot vCPU prints and spins; the AP waits for a SIPI that never comes (inside KVM_RUN).
    const running = runGuest({ image: guest('spin'), cpus: 2, timeoutMs: 60_000, gdb: { port: 0, onListening: (p) => (port = p) } });
    while (port === 0) await new Promise((r) => setTimeout(r, 10));
    const client = await rsp(port);
    expect(await client.request('?')).toBe('T05thread:01;');
    expect(await client.request('qfThreadInfo')).toBe('m01,02');
    expect(await client.request('Hg02')).toBe('OK');
    expect(await client.request('qThreadExtraInfo,02')).toBe(Buffer.from('CPU#1 [waiting for INIT/SIPI]').toString('hex'));
    expect(await client.request('p8')).toBe('f0ff0000'); // the AP's eip: its reset vector
    client.send('vCont;c');
    client.interrupt(); // handled once the vCont is in flight, whenever the vCPUs got going
    expect(await client.next()).toMatch(/^T02thread:0[12];$/);
    expect(await client.request('T01')).toBe('OK');
    expect(await client.request('T02')).toBe('OK');
    client.send('k');
    const result = await running;
    client.close();
    expect(result.reason).toBe('stopped');
    expect('spinning\n'.startsWith(result.serial)).toBe(true); // however far it got before the attach or the kill
  }, 90_000);
});
