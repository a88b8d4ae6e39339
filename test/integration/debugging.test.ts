/**
 * Seeing inside guest mode on /dev/kvm: --trace, --stats, --dump-on-exit, --step, and the GDB
 * stub driven by the real gdb client. Every guest's exits are known in advance.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { runGuest } from '../../dist/index.js';
import { assertKvm, CLI, describeKvm, guest, ROOT, runCli } from './helpers.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'tskvm-debug-'));
const kernel = (name: string): string => path.join(ROOT, 'guests', 'build', `${name}.elf`);
const TRACE_LINE = /^ +\d+\.\d{9} cpu0 (\S+) +(.*) rip=0x[0-9a-f]{16} cs=0x[0-9a-f]+$/;

describeKvm('--trace', () => {
  it('prints one line per exit with port, direction, data, device, RIP and CS', async () => {
    assertKvm();
    const r = await runCli(['run', '--trace', guest('oneexit')]);
    expect(r.status).toBe(7);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1); // oneexit.S makes exactly one exit
    expect(lines[0]).toMatch(TRACE_LINE);
    expect(lines[0]).toMatch(/ io +out port=0xf4 size=1 count=1 data=07 dev=debug-exit +rip=0x000000000000000[24] cs=0x1000$/); // on the OUT (2) or past it (4): hosts differ
  });

  it('traces hello: a THRE poll and a THR write per character, then the debug exit', async () => {
    const r = await runCli(['run', '--trace', guest('hello')]);
    const lines = r.stderr.trimEnd().split('\n');
    const text = 'Hello from a tskvm guest!\n';
    expect(lines).toHaveLength(2 * text.length + 1);
    for (const line of lines) expect(line).toMatch(TRACE_LINE);
    expect(lines.filter((l) => / in +port=0x3fd size=1 count=1 data=60 dev=COM1 \(16550A\)/.test(l))).toHaveLength(text.length);
    const written = lines
      .filter((l) => / out port=0x3f8 /.test(l))
      .map((l) => String.fromCharCode(parseInt(/data=([0-9a-f]+)/.exec(l)![1]!, 16)));
    expect(written.join('')).toBe(text);
    expect(lines.at(-1)).toMatch(/out port=0xf4 size=4 count=1 data=0000002a dev=debug-exit/);
  });

  it('filters by kind and port, and writes to --trace-file', async () => {
    const file = path.join(tmp, 'trace.txt');
    const r = await runCli(['run', '--trace', 'io', '--trace-port', '0xf4', '--trace-file', file, guest('hello')]);
    expect([r.status, r.stderr]).toEqual([42, '']);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/out port=0xf4 .* dev=debug-exit/);
  });

  it('shows MMIO exits at unassigned addresses and the halt', async () => {
    const r = await runCli(['run', '--memory', '1M', '--trace', 'mmio', guest('mmio')]);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines[0]).toMatch(/ mmio +read +addr=0x100000 len=1 data=ff dev=unassigned/);
    expect(lines.some((l) => / mmio +write addr=0x100000 len=1 data=5a dev=unassigned/.test(l))).toBe(true);
  });

  it('rejects unknown kinds and bad ports with exit status 2', async () => {
    const kinds = await runCli(['run', '--trace', 'io,bogus', guest('hello')]);
    expect(kinds.status).toBe(2);
    expect(kinds.stderr).toMatch(/bogus/);
    const ports = await runCli(['run', '--trace-port', '0x3f8-zz', guest('hello')]);
    expect(ports.status).toBe(2);
  });
});

describeKvm('--stats', () => {
  it('counts exits by reason and by device/port, in the table and in --result-json', async () => {
    const file = path.join(tmp, 'stats.json');
    const r = await runCli(['run', '--stats', '--result-json', file, guest('hello')]);
    expect(r.status).toBe(42);
    expect(r.stderr).toMatch(/^exits by reason/m);
    expect(r.stderr).toMatch(/^ {2}io +53 +100\.0%/m);
    expect(r.stderr).toMatch(/^ {2}COM1 \(16550A\) 0x3f8 +26 /m);
    expect(r.stderr).toMatch(/^ {2}COM1 \(16550A\) 0x3fd +26 /m);
    expect(r.stderr).toMatch(/^ {2}debug-exit 0xf4 +1 /m);
    expect(r.stderr).toMatch(/guest run time \(KVM_RUN\)/);
    const json = JSON.parse(readFileSync(file, 'utf8'));
    expect(json.stats.byReason.io.count).toBe(53);
    expect(json.stats.byDevice).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ key: 'COM1 (16550A) 0x3f8', count: 26 }),
        expect.objectContaining({ key: 'debug-exit 0xf4', count: 1 }),
      ]),
    );
    expect(json.stats.wallMs).toBeGreaterThanOrEqual(json.stats.kvmRunMs);
  });

  it('is in the library result', async () => {
    const r = await runGuest({ image: guest('pioloop'), stats: true });
    expect(r.stats?.byReason.io?.count).toBe(200_001);
    expect(r.stats?.byDevice.find((d) => d.key === 'unassigned 0x80')?.count).toBe(200_000);
  });
});

describeKvm('register dumps and single-step', () => {
  it('--dump-on-exit prints registers, segments, control registers, mode and disassembly', async () => {
    const r = await runCli(['run', '--dump-on-exit', kernel('long64')]);
    expect(r.status).toBe(64);
    expect(r.stderr).toMatch(/^vCPU state at exit \(debug-exit\):/m);
    expect(r.stderr).toMatch(/mode=long/);
    expect(r.stderr).toMatch(/^CS {2}=0018 base=0000000000000000 limit=ffffffff .* l=1/m);
    expect(r.stderr).toMatch(/EFER: .*LME LMA/);
    // The boot GDT goes where no kernel segment lies: the option-ROM area, as QEMU's option ROMs use.
    expect(r.stderr).toMatch(/^GDT=00000000000c0000 /m);
    expect(r.stderr).toMatch(/Code at .*\(physical /);
  });

  it('a crash dump disassembles the faulting code', async () => {
    const r = await runCli(['run', guest('triple')]);
    expect(r.status).toBe(125);
    expect(r.stderr).toMatch(/ud2/);
  });

  it('--step prints every instruction with the registers it changed', async () => {
    const r = await runCli(['run', '--step', guest('oneexit')]);
    expect(r.status).toBe(7);
    const lines = r.stderr.trimEnd().split('\n');
    // oneexit.S: mov $7,%al ; out %al,$0xf4 — the step after the mov shows rax changing.
    expect(lines[0]).toMatch(/^1000:0000 +b0 07 +mov +\$0x7,%al +; rax=0x0→0x7$/);
  });
});

describeKvm('the GDB stub with the real gdb', () => {
  it('breaks at a label, steps, reads and writes registers and memory, and continues to the exit', async () => {
    const elf = kernel('gdbdemo');
    const guestRun = spawn(process.execPath, [CLI, 'run', '--gdb', '0', '--gdb-wait', '--timeout', '60s', elf], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    guestRun.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    const port = await new Promise<number>((resolve, reject) => {
      guestRun.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
        const m = /gdb server on 127\.0\.0\.1:(\d+)/.exec(stderr);
        if (m) resolve(Number(m[1]));
      });
      guestRun.on('exit', () => reject(new Error(`tskvm exited early: ${stderr}`)));
    });
    const exited = new Promise<number | null>((resolve) => guestRun.on('exit', resolve));
    const commands = [
      `target remote 127.0.0.1:${port}`,
      'break add_here',
      'continue',
      'info registers rax rbx',
      'set $rbx = 41',
      'stepi',
      'info registers rax',
      'x/s &message',
      "set {char}((char *)&message + 9) = 'H'",
      'x/s &message',
      'p $cr0',
      'continue',
    ];
    const { stdout: gdbOut } = await promisify(execFile)('gdb', ['-nx', '-batch', ...commands.flatMap((c) => ['-ex', c]), elf], {
      cwd: ROOT,
      timeout: 60_000,
    });
    expect(gdbOut).toMatch(/Breakpoint 1 at 0x[0-9a-f]+/);
    expect(gdbOut).toMatch(/Breakpoint 1, 0x[0-9a-f]+ in add_here \(\)/);
    expect(gdbOut).toMatch(/rax +0x1 +1\s*\nrbx +0x2 +2/);
    expect(gdbOut).toMatch(/rax +0x2a +42/); // stepi over `add %ebx,%eax` with the rbx gdb wrote
    expect(gdbOut).toMatch(/"gdb says hi\\n"/);
    expect(gdbOut).toMatch(/"gdb says Hi\\n"/);
    expect(gdbOut).toMatch(/\$1 = 2147483665/); // CR0 = PG|ET|PE
    expect(gdbOut).toMatch(/\[Inferior 1 \(Remote target\) exited with code 052\]/); // 42, in octal
    expect(await exited).toBe(42);
    expect(stdout).toBe('value=42\ngdb says Hi\n');
  }, 90_000);
});

describeKvm('the GDB stub on a running guest', () => {
  /** A bare RSP client: enough to check Ctrl-C against the real vCPU. */
  const rsp = async (port: number) => {
    const { connect } = await import('node:net');
    const socket = connect(port, '127.0.0.1');
    let buffered = '';
    socket.on('data', (c: Buffer) => (buffered += c.toString('latin1')));
    const checksum = (s: string): string => ([...s].reduce((a, ch) => a + ch.charCodeAt(0), 0) & 0xff).toString(16).padStart(2, '0');
    const reply = async (): Promise<string> => {
      for (let i = 0; i < 400; i++) {
        const m = /\$([^#]*)#[0-9a-f]{2}/.exec(buffered);
        if (m) {
          buffered = buffered.slice(m.index + m[0].length);
          socket.write('+');
          return m[1]!;
        }
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`no reply; got ${JSON.stringify(buffered)}`);
    };
    return {
      send: (payload: string) => socket.write(`$${payload}#${checksum(payload)}`),
      interrupt: () => socket.write('\x03'),
      reply,
      close: () => socket.destroy(),
    };
  };

  it('stops a spinning guest on attach and on Ctrl-C, and kills it', async () => {
    let port = 0;
    const running = runGuest({ image: guest('spin'), timeoutMs: 60_000, gdb: { port: 0, onListening: (p) => (port = p) } });
    while (port === 0) await new Promise((r) => setTimeout(r, 10));
    const gdb = await rsp(port);
    gdb.send('?'); // attaching stops the running guest first
    expect(await gdb.reply()).toMatch(/^T05/);
    gdb.send('c');
    await new Promise((r) => setTimeout(r, 200));
    gdb.interrupt();
    expect(await gdb.reply()).toBe('T02thread:01;');
    gdb.send('p8'); // eip: inside the spin loop, after the greeting
    expect(await gdb.reply()).toMatch(/^[0-9a-f]{8}$/);
    gdb.send('k');
    const r = await running;
    gdb.close();
    expect(r.reason).toBe('stopped');
    expect(r.serial).toBe('spinning\n');
  }, 90_000);
});
