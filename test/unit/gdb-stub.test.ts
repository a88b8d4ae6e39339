import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { CpuMode, DebugTarget, HwBreakpointKind, ResumeAction, StopEvent, StopReason } from '../../src/gdb/target.js';
import type { KvmRegs, KvmSegment, KvmSregs } from '../../src/kvm/structs.js';
import { KVM_REGS_FIELDS } from '../../src/kvm/structs.js';
import { PacketDecoder, checksum, encodePacket, fromLittleEndianHex, toLittleEndianHex } from '../../src/gdb/packet.js';
import { I386_LAYOUT, X86_64_LAYOUT, type RegisterLayout } from '../../src/gdb/registers.js';
import { layoutForImage } from '../../src/gdb/image-layout.js';
import {
  GdbStub,
  MAX_OUTPUT_BACKLOG,
  MAX_PACKET_SIZE,
  MAX_QUEUED_PACKETS,
  startGdbServer,
  type GdbServer,
  type GdbServerOptions,
} from '../../src/gdb/stub.js';
import { VcpuDebugTarget } from '../../src/gdb/debug-target.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import type { Vcpu } from '../../src/vcpu/vcpu.js';
import type { DebugStop } from '../../src/vcpu/exit-loop.js';
import { KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP, KVM_MP_STATE_RUNNABLE, type GuestDebug } from '../../src/kvm/x86.js';

const GDB = '/usr/bin/gdb';
const GDB_TIMEOUT_MS = 20_000;
const MEMORY_SIZE = 0x200000;
const ENTRY = 0x100000n;
const DEBUG_REGISTER_SLOTS = 4;

function seg(selector: number, overrides: Partial<KvmSegment> = {}): KvmSegment {
  return { base: 0n, limit: 0xffffffff, selector, type: 3, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0, ...overrides };
}

function longModeSregs(): KvmSregs {
  return {
    cs: seg(0x18, { type: 0xb, l: 1, db: 0 }),
    ds: seg(0x10),
    es: seg(0x10),
    fs: seg(0x10, { base: 0x7000n }),
    gs: seg(0x10, { base: 0xffff800000001000n }),
    ss: seg(0x10),
    tr: seg(0, { type: 0xb, s: 0 }),
    ldt: seg(0, { type: 2, s: 0, unusable: 1 }),
    gdt: { base: 0x500n, limit: 0x1f },
    idt: { base: 0n, limit: 0 },
    cr0: 0x80000011n,
    cr2: 0n,
    cr3: 0x1000n,
    cr4: 0x20n,
    cr8: 0n,
    efer: 0x500n,
    apicBase: 0xfee00900n,
    interruptBitmap: [0n, 0n, 0n, 0n],
  };
}

function realModeSregs(): KvmSregs {
  const real = (sel: number) => seg(sel, { base: BigInt(sel) << 4n, limit: 0xffff, db: 0, g: 0 });
  return {
    ...longModeSregs(),
    cs: real(0x1000),
    ds: real(0x1000),
    es: real(0x1000),
    fs: real(0x1000),
    gs: real(0x1000),
    ss: real(0x1000),
    cr0: 0x60000010n,
    cr3: 0n,
    cr4: 0n,
    efer: 0n,
    gdt: { base: 0n, limit: 0xffff },
  };
}

interface Breakpoint {
  kind: HwBreakpointKind;
  address: bigint;
  length: number;
}

/** One pretend vCPU's registers. */
interface FakeCpu {
  regs: KvmRegs;
  sregs: KvmSregs;
  alive: boolean;
}

/**
 * Pretend vCPUs sharing 2 MiB of identity-mapped memory, 1-byte instructions, four debug
 * registers. vCPU 0 runs the scripted resumes below; `resumes` records every resume's actions.
 */
class FakeTarget implements DebugTarget {
  cpus: FakeCpu[];
  memory = new Uint8Array(MEMORY_SIZE);
  breakpoints: Breakpoint[] = [];
  calls: string[] = [];
  resumes: [number, ResumeAction][][] = [];
  killed = false;
  detached = false;
  /** What the next `continue` does when no breakpoint is set: wait for interrupt() or end the guest. */
  onContinue: 'wait' | StopReason = 'wait';
  /** When set, a resume's stop (and its vCPU) come from here instead of the script. */
  onResume: ((actions: ReadonlyMap<number, ResumeAction>) => StopEvent) | undefined;
  private pending: ((event: StopEvent) => void) | undefined;

  constructor(
    private cpuMode: CpuMode = 'long',
    cpuCount = 1,
  ) {
    this.cpus = Array.from({ length: cpuCount }, (_, cpu) => {
      const r = {} as KvmRegs;
      for (const name of KVM_REGS_FIELDS) r[name] = 0n;
      const regs = { ...r, rip: cpuMode === 'real' ? 0n : ENTRY, rflags: 0x2n, rsp: 0x8000n, rax: 0x1122334455667788n, rbx: BigInt(cpu) };
      return { regs, sregs: cpuMode === 'long' ? longModeSregs() : realModeSregs(), alive: true };
    });
    this.memory.set([0x90, 0x90, 0xf4, 0xcc], Number(ENTRY));
    this.memory.set([0xde, 0xad, 0xbe, 0xef], 0x1000);
  }

  /** vCPU 0's registers, as most tests look at them. */
  get regs(): KvmRegs {
    return this.cpus[0]!.regs;
  }
  set regs(regs: KvmRegs) {
    this.cpus[0]!.regs = regs;
  }
  get sregs(): KvmSregs {
    return this.cpus[0]!.sregs;
  }

  get cpuCount(): number {
    return this.cpus.length;
  }
  alive(cpu: number): boolean {
    return this.cpus[cpu]?.alive === true;
  }
  describe(cpu: number): string {
    return `CPU#${cpu} [fake]`;
  }
  mode(): CpuMode {
    return this.cpuMode;
  }
  getRegs(cpu: number): KvmRegs {
    return { ...this.cpus[cpu]!.regs };
  }
  setRegs(cpu: number, regs: KvmRegs): void {
    this.calls.push(`setRegs ${cpu}`);
    this.cpus[cpu]!.regs = { ...regs };
  }
  getSregs(cpu: number): KvmSregs {
    return structuredClone(this.cpus[cpu]!.sregs);
  }
  setSregs(cpu: number, sregs: KvmSregs): void {
    this.calls.push(`setSregs ${cpu}`);
    this.cpus[cpu]!.sregs = structuredClone(sregs);
  }

  readMemory(_cpu: number, address: bigint, length: number): Uint8Array | undefined {
    if (address < 0n || address + BigInt(length) > BigInt(MEMORY_SIZE)) return undefined;
    return this.memory.slice(Number(address), Number(address) + length);
  }

  writeMemory(_cpu: number, address: bigint, data: Uint8Array): boolean {
    if (address < 0n || address + BigInt(data.length) > BigInt(MEMORY_SIZE)) return false;
    this.memory.set(data, Number(address));
    return true;
  }

  resume(actions: ReadonlyMap<number, ResumeAction>): Promise<StopEvent> {
    this.resumes.push([...actions]);
    if (this.onResume) return Promise.resolve(this.onResume(actions));
    const [cpu, how] = [...actions][0] ?? [0, 'continue'];
    this.calls.push(how);
    const regs = this.cpus[cpu]!.regs;
    if (how === 'step') {
      regs.rip += 1n;
      return Promise.resolve({ cpu, reason: { kind: 'step' } });
    }
    const exec = this.breakpoints.find((b) => b.kind === 'exec' && b.address > regs.rip);
    if (exec) {
      regs.rip = exec.address;
      return Promise.resolve({ cpu, reason: { kind: 'breakpoint', address: exec.address } });
    }
    const watch = this.breakpoints.find((b) => b.kind !== 'exec');
    if (watch) {
      // Pretend the guest wrote the watched byte: gdb resumes silently from a write that changed nothing.
      this.memory[Number(watch.address)]! += 1;
      return Promise.resolve({ cpu, reason: { kind: 'watchpoint', watch: watch.kind as 'write', address: watch.address } });
    }
    if (this.onContinue !== 'wait') return Promise.resolve({ cpu: 0, reason: this.onContinue });
    return new Promise((resolve) => {
      this.pending = resolve;
    });
  }

  interrupt(): void {
    this.calls.push('interrupt');
    this.pending?.({ cpu: 0, reason: { kind: 'interrupt' } });
    this.pending = undefined;
  }

  insertBreakpoint(kind: HwBreakpointKind, address: bigint, length: number): boolean {
    if (this.breakpoints.length >= DEBUG_REGISTER_SLOTS) return false;
    this.breakpoints.push({ kind, address, length });
    return true;
  }

  removeBreakpoint(kind: HwBreakpointKind, address: bigint, length: number): boolean {
    const i = this.breakpoints.findIndex((b) => b.kind === kind && b.address === address && b.length === length);
    if (i < 0) return false;
    this.breakpoints.splice(i, 1);
    return true;
  }

  kill(): void {
    this.killed = true;
  }
  detach(): void {
    this.detached = true;
    this.breakpoints = [];
  }
}

/** A minimal gdb side: sends packets, acks replies, collects them. */
class RspClient {
  private readonly decoder = new PacketDecoder();
  private readonly replies: string[] = [];
  private waiter: (() => void) | undefined;
  readonly raw: string[] = [];
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.raw.push(chunk.toString('latin1'));
      for (const event of this.decoder.feed(chunk)) {
        if (event.type !== 'packet') continue;
        socket.write('+');
        this.replies.push(event.data.toString('latin1'));
      }
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
  }

  static connect(port: number): Promise<RspClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(new RspClient(socket)));
      socket.on('error', reject);
    });
  }

  send(payload: string | Buffer): void {
    this.socket.write(encodePacket(payload));
  }

  async next(): Promise<string> {
    while (this.replies.length === 0) {
      if (this.closed) throw new Error('connection closed');
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
    return this.replies.shift()!;
  }

  async request(payload: string | Buffer): Promise<string> {
    this.send(payload);
    return this.next();
  }

  async waitClosed(): Promise<void> {
    while (!this.closed)
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
  }
}

let server: GdbServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function connect(target: FakeTarget, options: GdbServerOptions = {}): Promise<RspClient> {
  server = await startGdbServer(0, target, options);
  return RspClient.connect(server.port);
}

function regOffset(layout: RegisterLayout, name: string): [number, number] {
  let at = 0;
  for (const reg of layout.registers) {
    if (reg.name === name) return [at * 2, reg.bitsize / 4];
    at += reg.bitsize / 8;
  }
  throw new Error(`no register ${name}`);
}

function regnum(layout: RegisterLayout, name: string): string {
  return layout.registers.findIndex((r) => r.name === name).toString(16);
}

describe('target description', () => {
  for (const layout of [I386_LAYOUT, X86_64_LAYOUT]) {
    it(`${layout.name}: is well-formed and lists every register of the layout, in order`, () => {
      const xml = layout.targetXml;
      expect(xml).toContain(`<architecture>${layout.architecture}</architecture>`);
      // Every opened element is closed, in order (a tiny well-formedness check).
      const stack: string[] = [];
      for (const [, close, name, selfClose] of xml.replace(/<\?.*?\?>|<!.*?>/g, '').matchAll(/<(\/?)([\w:]+)[^>]*?(\/?)>/g)) {
        if (selfClose) continue;
        if (close) expect(stack.pop()).toBe(name);
        else stack.push(name!);
      }
      expect(stack).toEqual([]);
      const regs = [...xml.matchAll(/<reg name="([^"]+)" bitsize="(\d+)"[^>]*regnum="(\d+)"/g)];
      expect(regs.length).toBe(layout.registers.length);
      regs.forEach(([, name, bits, num], i) => {
        expect(name).toBe(layout.registers[i]!.name);
        expect(Number(bits)).toBe(layout.registers[i]!.bitsize);
        expect(Number(num)).toBe(i);
      });
      const features = [
        'org.gnu.gdb.i386.core',
        'org.tskvm.gdb.i386.sys',
        ...(layout === X86_64_LAYOUT ? ['org.gnu.gdb.i386.segments'] : []),
      ];
      expect([...xml.matchAll(/<feature name="([^"]+)">/g)].map((m) => m[1]).sort()).toEqual(features.sort());
    });
  }

  it('follows gdb’s register order for each architecture', () => {
    expect(I386_LAYOUT.registers.slice(0, 16).map((r) => r.name)).toEqual([
      'eax',
      'ecx',
      'edx',
      'ebx',
      'esp',
      'ebp',
      'esi',
      'edi',
      'eip',
      'eflags',
      'cs',
      'ss',
      'ds',
      'es',
      'fs',
      'gs',
    ]);
    expect(X86_64_LAYOUT.registers.slice(0, 24).map((r) => r.name)).toEqual([
      'rax',
      'rbx',
      'rcx',
      'rdx',
      'rsi',
      'rdi',
      'rbp',
      'rsp',
      'r8',
      'r9',
      'r10',
      'r11',
      'r12',
      'r13',
      'r14',
      'r15',
      'rip',
      'eflags',
      'cs',
      'ss',
      'ds',
      'es',
      'fs',
      'gs',
    ]);
  });
});

describe('GdbStub over TCP', () => {
  it('acks packets, naks bad checksums and answers qSupported', async () => {
    const client = await connect(new FakeTarget());
    client.socket.write('$g#00');
    const supported = await client.request('qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386');
    expect(supported.split(';')).toEqual(
      expect.arrayContaining(['PacketSize=4000', 'qXfer:features:read+', 'QStartNoAckMode+', 'swbreak+', 'hwbreak+']),
    );
    expect(client.raw.join('').startsWith('-+')).toBe(true);
    expect(await client.request('vMustReplyEmpty')).toBe('');
    expect(await client.request('vCont?')).toBe('vCont;c;C;s;S');
    expect(await client.request('qAttached')).toBe('1');
    expect(await client.request('qC')).toBe('QC01');
    expect(await client.request('qfThreadInfo')).toBe('m01');
    expect(await client.request('qsThreadInfo')).toBe('l');
    expect(await client.request('Hg0')).toBe('OK');
    expect(await client.request('?')).toBe('T05thread:01;');
  });

  it('stops acking after QStartNoAckMode', async () => {
    const client = await connect(new FakeTarget());
    expect(await client.request('QStartNoAckMode')).toBe('OK');
    const before = client.raw.join('').length;
    expect(await client.request('?')).toBe('T05thread:01;');
    expect(client.raw.join('').slice(before)).toBe(encodePacket('T05thread:01;').toString());
  });

  it('serves target.xml in chunks', async () => {
    const target = new FakeTarget('long');
    const client = await connect(target);
    let xml = '';
    for (;;) {
      const reply = await client.request(`qXfer:features:read:target.xml:${xml.length.toString(16)},100`);
      xml += reply.slice(1);
      if (reply[0] === 'l') break;
      expect(reply[0]).toBe('m');
    }
    expect(xml).toBe(X86_64_LAYOUT.targetXml);
    expect(await client.request('qXfer:features:read:other.xml:0,100')).toMatch(/^E/);
  });

  it('g returns every x86-64 register; G and P write them back', async () => {
    const target = new FakeTarget('long');
    const client = await connect(target);
    const g = await client.request('g');
    expect(g.length).toBe(X86_64_LAYOUT.totalBytes * 2);
    expect(X86_64_LAYOUT.totalBytes).toBe(16 * 8 + 8 + 4 + 6 * 4 + 8 * 10 + 8 * 4 + 2 * 8 + 6 * 8 + 2 * 8 + 2 * 4);
    const [ripAt, ripLen] = regOffset(X86_64_LAYOUT, 'rip');
    expect(fromLittleEndianHex(g.slice(ripAt, ripAt + ripLen))).toBe(ENTRY);
    expect(fromLittleEndianHex(g.slice(0, 16))).toBe(0x1122334455667788n);
    const [crAt, crLen] = regOffset(X86_64_LAYOUT, 'cr3');
    expect(fromLittleEndianHex(g.slice(crAt, crAt + crLen))).toBe(0x1000n);
    const [gsAt] = regOffset(X86_64_LAYOUT, 'gs_base');
    expect(fromLittleEndianHex(g.slice(gsAt, gsAt + 16))).toBe(0xffff800000001000n);

    // G with the same data writes nothing new; with a changed rbx and cr2, both structs change.
    expect(await client.request(`G${g}`)).toBe('OK');
    expect(target.regs.rax).toBe(0x1122334455667788n);
    const [rbxAt] = regOffset(X86_64_LAYOUT, 'rbx');
    const [cr2At] = regOffset(X86_64_LAYOUT, 'cr2');
    let changed = g.slice(0, rbxAt) + toLittleEndianHex(0xabcdn, 8) + g.slice(rbxAt + 16);
    changed = changed.slice(0, cr2At) + toLittleEndianHex(0xdead000n, 8) + changed.slice(cr2At + 16);
    expect(await client.request(`G${changed}`)).toBe('OK');
    expect(target.regs.rbx).toBe(0xabcdn);
    expect(target.sregs.cr2).toBe(0xdead000n);
    expect(await client.request(`G${g}00`)).toMatch(/^E/);

    // p / P on single registers, including the system feature and an ignored x87 register.
    expect(await client.request(`p${regnum(X86_64_LAYOUT, 'efer')}`)).toBe(toLittleEndianHex(0x500n, 8));
    expect(await client.request(`P${regnum(X86_64_LAYOUT, 'rip')}=${toLittleEndianHex(0x100002n, 8)}`)).toBe('OK');
    expect(target.regs.rip).toBe(0x100002n);
    expect(await client.request(`p${regnum(X86_64_LAYOUT, 'rip')}`)).toBe(toLittleEndianHex(0x100002n, 8));
    expect(await client.request(`P${regnum(X86_64_LAYOUT, 'st0')}=${'11'.repeat(10)}`)).toBe('OK');
    expect(await client.request(`p${regnum(X86_64_LAYOUT, 'st0')}`)).toBe('00'.repeat(10));
    expect(await client.request(`P${regnum(X86_64_LAYOUT, 'rip')}=1234`)).toMatch(/^E/);
    expect(await client.request('pfff')).toMatch(/^E/);
  });

  it('uses the i386 layout in real mode and keeps the upper halves on write', async () => {
    const target = new FakeTarget('real');
    target.regs.rcx = 0xffffffff00000001n;
    const client = await connect(target);
    const g = await client.request('g');
    expect(g.length).toBe(I386_LAYOUT.totalBytes * 2);
    const [ecxAt] = regOffset(I386_LAYOUT, 'ecx');
    expect(g.slice(ecxAt, ecxAt + 8)).toBe('01000000');
    expect(await client.request(`P${regnum(I386_LAYOUT, 'ecx')}=02000000`)).toBe('OK');
    expect(target.regs.rcx).toBe(0xffffffff00000002n);
    // A real-mode selector write moves the segment base with it.
    expect(await client.request(`P${regnum(I386_LAYOUT, 'ds')}=00200000`)).toBe('OK');
    expect(target.sregs.ds.selector).toBe(0x2000);
    expect(target.sregs.ds.base).toBe(0x20000n);
    const xml = await client.request('qXfer:features:read:target.xml:0,4000');
    expect(xml.slice(1)).toBe(I386_LAYOUT.targetXml);
  });

  it('reads and writes memory with m, M and X', async () => {
    const target = new FakeTarget();
    const client = await connect(target);
    expect(await client.request('m1000,4')).toBe('deadbeef');
    expect(await client.request('M1000,2:5566')).toBe('OK');
    expect([...target.memory.subarray(0x1000, 0x1004)]).toEqual([0x55, 0x66, 0xbe, 0xef]);
    expect(await client.request('X1000,0:')).toBe('OK');
    // Binary data with bytes that need escaping on the wire ($ # } *).
    expect(await client.request(Buffer.concat([Buffer.from('X1002,4:'), Buffer.from([0x24, 0x23, 0x7d, 0x2a])]))).toBe('OK');
    expect([...target.memory.subarray(0x1000, 0x1006)]).toEqual([0x55, 0x66, 0x24, 0x23, 0x7d, 0x2a]);
    expect(await client.request('m10000000,4')).toMatch(/^E/);
    expect(await client.request('M10000000,1:00')).toMatch(/^E/);
    expect(await client.request('M1000,2:55')).toMatch(/^E/);
  });

  it('maps Z0-Z4 onto debug-register kinds and answers E when the four slots are full', async () => {
    const target = new FakeTarget();
    const client = await connect(target);
    expect(await client.request('Z0,100010,1')).toBe('OK');
    expect(await client.request('Z1,100020,1')).toBe('OK');
    expect(await client.request('Z2,2000,4')).toBe('OK');
    expect(await client.request('Z3,2008,8')).toBe('OK');
    expect(target.breakpoints).toEqual([
      { kind: 'exec', address: 0x100010n, length: 1 },
      { kind: 'exec', address: 0x100020n, length: 1 },
      { kind: 'write', address: 0x2000n, length: 4 },
      { kind: 'read', address: 0x2008n, length: 8 },
    ]);
    expect(await client.request('Z4,3000,2')).toMatch(/^E/);
    expect(await client.request('z3,2008,8')).toBe('OK');
    expect(await client.request('Z4,3000,2')).toBe('OK');
    expect(target.breakpoints.at(-1)).toEqual({ kind: 'access', address: 0x3000n, length: 2 });
    expect(await client.request('z0,100010,1')).toBe('OK');
    expect(await client.request('z0,100010,1')).toMatch(/^E/);
    expect(await client.request('Z9,0,1')).toMatch(/^E/);
  });

  it('reports hwbreak, watch and step stops', async () => {
    const target = new FakeTarget();
    const client = await connect(target);
    await client.request('qSupported:swbreak+;hwbreak+');
    expect(await client.request('s')).toBe('T05thread:01;');
    expect(target.regs.rip).toBe(ENTRY + 1n);
    await client.request('Z0,100010,1');
    expect(await client.request('c')).toBe('T05thread:01;hwbreak:;');
    expect(target.regs.rip).toBe(0x100010n);
    expect(await client.request('?')).toBe('T05thread:01;hwbreak:;');
    await client.request('z0,100010,1');
    await client.request('Z2,2000,4');
    expect(await client.request('c')).toBe('T05thread:01;watch:2000;');
    // c ADDR resumes from ADDR.
    await client.request('z2,2000,4');
    await client.request('Z1,100040,1');
    expect(await client.request('c100030')).toBe('T05thread:01;hwbreak:;');
    expect(target.calls).toContain('setRegs 0');
  });

  it('stays responsive to Ctrl-C while a continue is in flight', async () => {
    const target = new FakeTarget();
    const client = await connect(target);
    client.send('c');
    await new Promise((r) => setTimeout(r, 20));
    expect(target.calls).toContain('continue');
    client.socket.write(Buffer.from([0x03]));
    expect(await client.next()).toBe('T02thread:01;');
    expect(target.calls.at(-1)).toBe('interrupt');
  });

  it('sends W with the exit code when the guest ends, and X0b when it crashes', async () => {
    const target = new FakeTarget();
    target.onContinue = { kind: 'exited', code: 0x12a };
    const client = await connect(target);
    expect(await client.request('c')).toBe('W2a');
    expect(await client.request('?')).toBe('W2a');
    client.socket.end();
    await server!.connection;
    // An exited guest is not detached or killed again.
    expect(target.detached).toBe(false);
    expect(target.killed).toBe(false);

    const crashing = new FakeTarget();
    crashing.onContinue = { kind: 'crashed', description: 'triple fault' };
    await server!.close();
    const client2 = await connect(crashing);
    expect(await client2.request('c')).toBe('X0b');
  });

  it('D replies OK, detaches and closes; k kills and closes', async () => {
    const target = new FakeTarget();
    const client = await connect(target);
    await client.request('Z1,100020,1');
    expect(await client.request('D')).toBe('OK');
    await client.waitClosed();
    await server!.connection;
    expect(target.detached).toBe(true);
    expect(target.killed).toBe(false);

    await server!.close();
    const target2 = new FakeTarget();
    const client2 = await connect(target2);
    client2.send('k');
    await client2.waitClosed();
    await server!.connection;
    expect(target2.killed).toBe(true);
    expect(target2.detached).toBe(false);
  });

  it('detaches when gdb drops the connection mid-run', async () => {
    const target = new FakeTarget();
    const client = await connect(target);
    client.send('c');
    await new Promise((r) => setTimeout(r, 20));
    client.socket.destroy();
    await server!.connection;
    expect(target.calls.at(-1)).toBe('interrupt');
    expect(target.detached).toBe(true);
  });

  it('listens on 127.0.0.1 only and accepts one connection', async () => {
    const ports: number[] = [];
    server = await startGdbServer(0, new FakeTarget(), { onListening: (p) => ports.push(p) });
    expect(ports).toEqual([server.port]);
    const first = await RspClient.connect(server.port);
    expect(await first.request('?')).toBe('T05thread:01;');
    await expect(RspClient.connect(server.port)).rejects.toThrow();
  });
});

describe('threads: one per vCPU', () => {
  it('lists live vCPUs as threads 1..N and answers T, qC and qThreadExtraInfo', async () => {
    const target = new FakeTarget('long', 3);
    const client = await connect(target);
    expect(await client.request('qfThreadInfo')).toBe('m01,02,03');
    expect(await client.request('qsThreadInfo')).toBe('l');
    expect(await client.request('qC')).toBe('QC01');
    expect(await client.request('T02')).toBe('OK');
    expect(await client.request('T04')).toBe('E03');
    expect(await client.request('T0')).toBe('E03');
    expect(await client.request('qThreadExtraInfo,02')).toBe(Buffer.from('CPU#1 [fake]').toString('hex'));
    expect(await client.request('qThreadExtraInfo,09')).toBe('E03');
    target.cpus[1]!.alive = false; // an AP that halted for good
    expect(await client.request('qfThreadInfo')).toBe('m01,03');
    expect(await client.request('T02')).toBe('E03');
    expect(await client.request('Hg02')).toBe('E03');
  });

  it('Hg picks the vCPU whose registers and memory g, G, p, P and m use', async () => {
    const target = new FakeTarget('long', 2);
    const reads: number[] = [];
    const read = target.readMemory.bind(target);
    target.readMemory = (cpu, address, length) => (reads.push(cpu), read(cpu, address, length));
    const client = await connect(target);
    const [rbxAt, rbxLen] = regOffset(X86_64_LAYOUT, 'rbx');
    expect(fromLittleEndianHex((await client.request('g')).slice(rbxAt, rbxAt + rbxLen))).toBe(0n);
    expect(await client.request('Hg02')).toBe('OK');
    expect(await client.request('qC')).toBe('QC02');
    expect(fromLittleEndianHex((await client.request('g')).slice(rbxAt, rbxAt + rbxLen))).toBe(1n); // the fake's rbx = vCPU index
    expect(await client.request(`P${regnum(X86_64_LAYOUT, 'rcx')}=${toLittleEndianHex(0x77n, 8)}`)).toBe('OK');
    expect(target.cpus[1]!.regs.rcx).toBe(0x77n);
    expect(target.cpus[0]!.regs.rcx).toBe(0n);
    expect(await client.request('m1000,2')).toBe('dead');
    expect(reads).toEqual([1]);
    // Hg0 (any) and Hg-1 (all) keep the current thread.
    expect(await client.request('Hg0')).toBe('OK');
    expect(await client.request('qC')).toBe('QC02');
    expect(await client.request('Hgzz')).toBe('E16');
    expect(await client.request('Hx1')).toBe('E16');
  });

  it('vCont applies the leftmost action naming each thread; others stay stopped', async () => {
    const target = new FakeTarget('long', 3);
    target.onResume = () => ({ cpu: 0, reason: { kind: 'step' } });
    const client = await connect(target);
    expect(await client.request('vCont?')).toBe('vCont;c;C;s;S');
    expect(await client.request('vCont;s:2;c')).toBe('T05thread:01;');
    expect(await client.request('vCont;c:1')).toBe('T05thread:01;');
    expect(await client.request('vCont;S05:3;c:3')).toBe('T05thread:01;');
    expect(await client.request('vCont;C05')).toBe('T05thread:01;');
    expect(await client.request('vCont;s:0')).toBe('T05thread:01;'); // 0: any one thread
    expect(target.resumes).toEqual([
      [
        [1, 'step'],
        [0, 'continue'],
        [2, 'continue'],
      ],
      [[0, 'continue']],
      [[2, 'step']],
      [
        [0, 'continue'],
        [1, 'continue'],
        [2, 'continue'],
      ],
      [[0, 'step']],
    ]);
    expect(await client.request('vCont;x')).toBe('E16');
    expect(await client.request('vCont;c:zz')).toBe('E16');
    expect(target.resumes).toHaveLength(5);
  });

  it('c resumes every vCPU, s only the Hc thread (else the Hg one), c ADDR moves that thread', async () => {
    const target = new FakeTarget('long', 2);
    target.onResume = () => ({ cpu: 1, reason: { kind: 'step' } });
    const client = await connect(target);
    await client.request('c');
    await client.request('Hc02');
    await client.request('s');
    await client.request('Hc-1');
    await client.request('Hg01');
    await client.request('s100040');
    expect(target.resumes).toEqual([
      [
        [0, 'continue'],
        [1, 'continue'],
      ],
      [[1, 'step']],
      [[0, 'step']],
    ]);
    expect(target.cpus[0]!.regs.rip).toBe(0x100040n);
    expect(target.cpus[1]!.regs.rip).toBe(ENTRY);
  });

  it('stop replies name the vCPU that stopped, which becomes the current thread', async () => {
    const target = new FakeTarget('long', 2);
    target.onResume = () => ({ cpu: 1, reason: { kind: 'breakpoint', address: 0x100010n } });
    const client = await connect(target);
    await client.request('qSupported:hwbreak+');
    expect(await client.request('vCont;c')).toBe('T05thread:02;hwbreak:;');
    expect(await client.request('?')).toBe('T05thread:02;hwbreak:;');
    expect(await client.request('qC')).toBe('QC02');
    target.onResume = () => ({ cpu: 1, reason: { kind: 'watchpoint', watch: 'read', address: 0x2000n } });
    expect(await client.request('c')).toBe('T05thread:02;rwatch:2000;');
    target.onResume = () => ({ cpu: 0, reason: { kind: 'interrupt' } });
    expect(await client.request('c')).toBe('T02thread:01;');
    expect(await client.request('qC')).toBe('QC01');
    target.onResume = () => ({ cpu: 0, reason: { kind: 'exited', code: 3 } });
    expect(await client.request('vCont;c')).toBe('W03');
  });
});

describe('register layouts: chosen, from the image, or from the mode', () => {
  it('x86-64 chosen for a vCPU in 32-bit mode: 64-bit registers with the upper halves zero, as QEMU shows them', async () => {
    const target = new FakeTarget('protected');
    target.regs.r8 = 0x55n;
    const client = await connect(target, { arch: 'x86-64' });
    expect((await client.request('qXfer:features:read:target.xml:0,4000')).slice(1)).toBe(X86_64_LAYOUT.targetXml);
    const g = await client.request('g');
    expect(g.length).toBe(X86_64_LAYOUT.totalBytes * 2);
    const field = (name: string): bigint => {
      const [at, len] = regOffset(X86_64_LAYOUT, name);
      return fromLittleEndianHex(g.slice(at, at + len))!;
    };
    expect(field('rax')).toBe(0x55667788n);
    expect(field('rip')).toBe(ENTRY);
    expect(field('r8')).toBe(0n);
    // A write sets the low half and clears the upper one, as a 32-bit write does; r8 ignores writes.
    expect(await client.request(`P${regnum(X86_64_LAYOUT, 'rax')}=${toLittleEndianHex(0x123456789an, 8)}`)).toBe('OK');
    expect(target.regs.rax).toBe(0x3456789an);
    expect(await client.request(`P${regnum(X86_64_LAYOUT, 'r8')}=${toLittleEndianHex(1n, 8)}`)).toBe('OK');
    expect(target.regs.r8).toBe(0x55n);
  });

  it('i386 chosen for a vCPU in long mode: the low halves', async () => {
    const client = await connect(new FakeTarget('long'), { arch: 'i386' });
    const g = await client.request('g');
    expect(g.length).toBe(I386_LAYOUT.totalBytes * 2);
    const [eaxAt] = regOffset(I386_LAYOUT, 'eax');
    expect(fromLittleEndianHex(g.slice(eaxAt, eaxAt + 8))).toBe(0x55667788n);
  });

  it('follows the image: ELF64 is x86-64, ELF32 i386, anything else undecided', () => {
    const elf = (klass: number): Uint8Array => Uint8Array.from([0x7f, 0x45, 0x4c, 0x46, klass, 1, 1, 0]);
    expect(layoutForImage(elf(2))).toBe('x86-64');
    expect(layoutForImage(elf(1))).toBe('i386');
    expect(layoutForImage(elf(0))).toBeUndefined();
    expect(layoutForImage(Uint8Array.from([0xb0, 0x07, 0xe6, 0xf4, 0xf4]))).toBeUndefined();
    expect(layoutForImage(Uint8Array.from([0x7f, 0x45]))).toBeUndefined();
    expect(layoutForImage(undefined)).toBeUndefined();
  });

  /** An ELF32 with a .debug_info section whose first compilation unit has this DWARF version and address size. */
  function elf32WithDwarf(version: number, addressSize: number): Uint8Array {
    const names = Buffer.from('\0.debug_info\0.shstrtab\0', 'latin1');
    const cu = Buffer.alloc(12);
    cu.writeUInt32LE(8, 0); // unit_length (what follows: a header, no DIEs)
    cu.writeUInt16LE(version, 4);
    if (version >= 5)
      cu.set([1, addressSize], 6); // unit_type DW_UT_compile, address_size
    else cu[10] = addressSize; // after the 4-byte debug_abbrev_offset
    const elfHeader = 52;
    const infoAt = elfHeader;
    const namesAt = infoAt + cu.length;
    const shoff = namesAt + names.length;
    const image = Buffer.alloc(shoff + 3 * 40);
    image.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]);
    image.writeUInt32LE(shoff, 0x20);
    image.writeUInt16LE(40, 0x2e);
    image.writeUInt16LE(3, 0x30);
    image.writeUInt16LE(2, 0x32); // e_shstrndx
    cu.copy(image, infoAt);
    names.copy(image, namesAt);
    const section = (n: number, name: number, offset: number, size: number): void => {
      image.writeUInt32LE(name, shoff + n * 40);
      image.writeUInt32LE(offset, shoff + n * 40 + 16);
      image.writeUInt32LE(size, shoff + n * 40 + 20);
    };
    section(1, 1, infoAt, cu.length);
    section(2, 12, namesAt, names.length);
    return image;
  }

  it('an ELF32 whose DWARF has 8-byte addresses (kvm-unit-tests .flat: an x86-64 .elf in an ELF32) is x86-64', () => {
    expect(layoutForImage(elf32WithDwarf(5, 8))).toBe('x86-64');
    expect(layoutForImage(elf32WithDwarf(4, 8))).toBe('x86-64');
    expect(layoutForImage(elf32WithDwarf(5, 4))).toBe('i386');
    expect(layoutForImage(elf32WithDwarf(2, 4))).toBe('i386');
    // Section headers that point outside the file: undecided debug information, so i386.
    const broken = elf32WithDwarf(5, 8);
    Buffer.from(broken.buffer).writeUInt32LE(0xfffffff0, 0x20);
    expect(layoutForImage(broken)).toBe('i386');
  });
});

describe('the --gdb-arch hint', () => {
  async function session(arch: 'i386' | 'x86-64', target = new FakeTarget('protected')) {
    const hints: string[] = [];
    const client = await connect(target, { arch, onHint: (message) => hints.push(message) });
    return { client, hints, target };
  }

  it('when gdb asks for a register past the layout, once a session', async () => {
    const { client, hints } = await session('i386');
    expect(await client.request('p40')).toBe('E16');
    expect(await client.request('p41')).toBe('E16');
    expect(hints).toHaveLength(1);
    expect(hints[0]).toMatch(
      /^gdb asked for register 64: gdb seems to use the x86-64 register layout .* --gdb-arch x86-64 \(options\.gdb\.arch\)$/,
    );
  });

  it('when gdb writes a register of another size', async () => {
    const { client, hints } = await session('i386');
    expect(await client.request(`P0=${toLittleEndianHex(1n, 8)}`)).toBe('E16');
    expect(hints[0]).toMatch(/^gdb wrote 64 bits to the 32-bit eax: .*--gdb-arch x86-64/);
  });

  it('when gdb reads memory at the pc its own layout finds in the g reply', async () => {
    const { client, hints } = await session('i386');
    await client.request('g');
    expect(await client.request('m0,1')).toBe('00'); // an x86-64 gdb finds rip in our x87 block: 0
    expect(hints[0]).toMatch(/^gdb read memory at 0x0, the pc that the x86-64 layout finds .*--gdb-arch x86-64/);
  });

  it('when gdb continues at its own breakpoint without stepping over it', async () => {
    const { client, hints, target } = await session('x86-64', new FakeTarget('long'));
    await client.request('Z1,100010,1');
    expect(await client.request('c')).toMatch(/^T05/);
    expect(hints).toEqual([]);
    target.onContinue = { kind: 'exited', code: 0 };
    await client.request('c');
    expect(hints[0]).toMatch(/^gdb continued at its breakpoint at 0x100010 without stepping over it: .*--gdb-arch i386/);
  });

  it('when gdb hangs up right after its first g (its layout is shorter)', async () => {
    const { client, hints } = await session('x86-64');
    await client.request('g');
    client.socket.destroy();
    await server!.connection;
    expect(hints[0]).toMatch(/^gdb hung up right after reading the registers: gdb seems to use the i386 register layout/);
  });

  it('never for a gdb that follows the layout', async () => {
    const { client, hints, target } = await session('x86-64', new FakeTarget('long'));
    await client.request('g');
    await client.request('m100000,1');
    await client.request(`p${regnum(X86_64_LAYOUT, 'idtr_limit')}`);
    await client.request(`P${regnum(X86_64_LAYOUT, 'rbx')}=${toLittleEndianHex(5n, 8)}`);
    await client.request('Z1,100010,1');
    await client.request('c');
    // gdb steps over its breakpoint: out, step, in, continue.
    await client.request('z1,100010,1');
    await client.request('s');
    await client.request('Z1,100010,1');
    target.onContinue = { kind: 'exited', code: 0 };
    expect(await client.request('c')).toBe('W00');
    client.socket.destroy();
    await server!.connection;
    expect(hints).toEqual([]);
  });
});

/** A vCPU as VcpuDebugTarget drives it: pause() makes the "thread" report a stop soon after, as the exit loop does. */
class FakeVcpu {
  paused = true;
  resumes = 0;
  pauses = 0;
  debug: GuestDebug[] = [];
  regs = new FakeTarget().regs;
  onPauseRequest: (() => void) | undefined;
  private waiters: (() => void)[] = [];

  constructor(readonly id: number) {}

  /** The run has ended (Vcpu.state 'stopped'). */
  ended = false;
  /** Vcpu.pauseRequested: a pause request is still waiting to be taken. */
  pauseRequested = false;
  get state(): 'paused' | 'running' | 'stopped' {
    return this.ended ? 'stopped' : this.paused ? 'paused' : 'running';
  }

  getRegs = (): KvmRegs => ({ ...this.regs });
  getSregs = (): KvmSregs => longModeSregs();
  setGuestDebug(debug: GuestDebug): void {
    this.debug.push(debug);
  }
  fd = { getMpState: () => KVM_MP_STATE_RUNNABLE, translate: (linear: bigint) => Number(linear) };
  resume(): void {
    this.resumes++;
    this.paused = false;
  }
  pause(): Promise<void> {
    if (this.paused) return Promise.resolve();
    this.pauses++;
    queueMicrotask(() => this.onPauseRequest?.());
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  /** The vCPU thread stopped: Vcpu's onPaused, as run.ts wires it to the target. */
  stopped(target: VcpuDebugTarget, why: DebugStop): void {
    this.paused = true;
    target.onDebugStop(this.id, why);
    for (const resolve of this.waiters.splice(0)) resolve();
  }
  stop(): void {}
}

describe('VcpuDebugTarget: all-stop over several vCPUs', () => {
  const DR6_B0 = 1n;
  const DR6_BS = 1n << 14n;
  async function machine(count: number) {
    const vcpus = Array.from({ length: count }, (_, id) => new FakeVcpu(id));
    const target = new VcpuDebugTarget(vcpus as unknown as Vcpu[], { bytes: new Uint8Array(MEMORY_SIZE) } as unknown as GuestMemory);
    // A paused-for-someone-else vCPU reports an interrupt stop, as the exit loop's pause does.
    for (const vcpu of vcpus) vcpu.onPauseRequest = () => vcpu.stopped(target, { kind: 'interrupt' });
    await target.waitForStop(); // as when gdb connects: every vCPU (paused already here) is stopped
    return { vcpus, target };
  }
  const settled = async <T>(promise: Promise<T>): Promise<T | 'pending'> =>
    Promise.race([promise, new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), 20))]);

  it('a breakpoint on one vCPU stops the others, then reports that vCPU; debug registers go to every vCPU that runs', async () => {
    const { vcpus, target } = await machine(3);
    expect(target.insertBreakpoint('exec', 0x100010n, 1)).toBe(true);
    const stop = target.resume(
      new Map([
        [0, 'continue'],
        [1, 'continue'],
        [2, 'step'],
      ]),
    );
    expect(vcpus.map((v) => v.resumes)).toEqual([1, 1, 1]);
    for (const vcpu of vcpus) expect(vcpu.debug.at(-1)!.debugreg[0]).toBe(0x100010n);
    expect(vcpus[2]!.debug.at(-1)!.control & KVM_GUESTDBG_SINGLESTEP).toBe(KVM_GUESTDBG_SINGLESTEP);
    expect(vcpus[0]!.debug.at(-1)!.control & (KVM_GUESTDBG_SINGLESTEP | KVM_GUESTDBG_USE_HW_BP)).toBe(KVM_GUESTDBG_USE_HW_BP);
    vcpus[1]!.stopped(target, { kind: 'debug', exception: 1, pc: 0x100010n, dr6: DR6_B0 });
    expect(await stop).toEqual({ cpu: 1, reason: { kind: 'breakpoint', address: 0x100010n } });
    expect(vcpus.map((v) => v.pauses)).toEqual([1, 0, 1]);
    expect(vcpus.every((v) => v.paused)).toBe(true);
  });

  it('steps one vCPU alone, the others staying stopped', async () => {
    const { vcpus, target } = await machine(2);
    const stop = target.resume(new Map([[1, 'step']]));
    expect(vcpus.map((v) => v.resumes)).toEqual([0, 1]);
    vcpus[1]!.stopped(target, { kind: 'debug', exception: 1, pc: 0x100001n, dr6: DR6_BS });
    expect(await stop).toEqual({ cpu: 1, reason: { kind: 'step' } });
    expect(vcpus[0]!.pauses).toBe(0);
  });

  it("a pause request that crossed a stop is answered silently; someone else's pause is not gdb's", async () => {
    const { vcpus, target } = await machine(1);
    const vcpu = vcpus[0]!;
    const step = target.resume(new Map([[0, 'step']]));
    vcpu.pauseRequested = true; // a pause was asked for while this stop was on its way
    vcpu.stopped(target, { kind: 'debug', exception: 1, pc: 0x100001n, dr6: DR6_BS });
    expect(await step).toEqual({ cpu: 0, reason: { kind: 'step' } });
    vcpu.pauseRequested = false;
    const run = target.resume(new Map([[0, 'continue']]));
    expect(vcpu.resumes).toBe(2);
    vcpu.stopped(target, { kind: 'interrupt' }); // the leftover request, taken at once: go on
    expect(vcpu.resumes).toBe(3);
    vcpu.stopped(target, { kind: 'interrupt' }); // a snapshot's pause: left paused, not reported
    expect(await settled(run)).toBe('pending');
    expect(vcpu.resumes).toBe(3);
    target.interrupt(); // gdb's Ctrl-C still ends the continue, with nothing left running
    expect(await run).toEqual({ cpu: 0, reason: { kind: 'interrupt' } });
  });

  it('Ctrl-C stops the vCPUs that run and reports the first to stop', async () => {
    const { vcpus, target } = await machine(2);
    const run = target.resume(
      new Map([
        [0, 'continue'],
        [1, 'continue'],
      ]),
    );
    target.interrupt();
    expect(await run).toMatchObject({ reason: { kind: 'interrupt' } });
    expect(vcpus.every((v) => v.paused && v.pauses > 0)).toBe(true);
  });

  it('keeps a watchpoint that fired while the vCPU was being stopped for its next resume', async () => {
    const { vcpus, target } = await machine(2);
    expect(target.insertBreakpoint('write', 0x2000n, 4)).toBe(true);
    vcpus[1]!.onPauseRequest = () => vcpus[1]!.stopped(target, { kind: 'debug', exception: 1, pc: 0x100005n, dr6: DR6_B0 });
    const first = target.resume(
      new Map([
        [0, 'step'],
        [1, 'continue'],
      ]),
    );
    vcpus[0]!.stopped(target, { kind: 'debug', exception: 1, pc: 0x100001n, dr6: DR6_BS });
    expect(await first).toEqual({ cpu: 0, reason: { kind: 'step' } });
    const resumes = vcpus.map((v) => v.resumes);
    expect(await target.resume(new Map([[1, 'continue']]))).toEqual({
      cpu: 1,
      reason: { kind: 'watchpoint', watch: 'write', address: 0x2000n },
    });
    expect(vcpus.map((v) => v.resumes)).toEqual(resumes); // reported without running
  });

  it('a vCPU whose run ends is a thread gone; with nothing left running gdb hears a stop on a live one', async () => {
    const { vcpus, target } = await machine(2);
    const stop = target.resume(new Map([[1, 'continue']]));
    vcpus[1]!.ended = true;
    target.onVcpuEnd(1);
    expect(await stop).toEqual({ cpu: 0, reason: { kind: 'interrupt' } });
    expect([target.alive(0), target.alive(1)]).toEqual([true, false]);
    expect(target.describe(1)).toBe('CPU#1 [ended]');
    expect(target.describe(0)).toBe('CPU#0 [long mode]');
  });

  it("when every vCPU's run ends (the machine's end), only the run's end is reported", async () => {
    const { vcpus, target } = await machine(2);
    const stop = target.resume(
      new Map([
        [0, 'continue'],
        [1, 'continue'],
      ]),
    );
    // Both runs are over before either onVcpuEnd is called, as when a debug exit ends the machine.
    for (const vcpu of vcpus) vcpu.ended = true;
    target.onVcpuEnd(0);
    target.onVcpuEnd(1);
    expect(await settled(stop)).toBe('pending');
    target.onRunEnd({ outcome: { reason: 'debug-exit', exitCode: 2 }, exits: {} as never });
    expect(await stop).toEqual({ cpu: 0, reason: { kind: 'exited', code: 2 } });
  });

  it("the run's end answers a resume in flight", async () => {
    const { target } = await machine(2);
    const stop = target.resume(new Map([[0, 'continue']]));
    target.onRunEnd({ outcome: { reason: 'debug-exit', exitCode: 9 }, exits: {} as never });
    expect(await stop).toEqual({ cpu: 0, reason: { kind: 'exited', code: 9 } });
    expect(target.alive(0)).toBe(false);
  });
});

/** Frames a body already in wire form (nothing escaped), for packets encodePacket would not produce. */
function rawPacket(body: string | Buffer): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  return Buffer.concat([Buffer.from('$'), bytes, Buffer.from(`#${checksum(bytes).toString(16).padStart(2, '0')}`)]);
}

/**
 * A gdb connection that does not read what the stub writes: writes stay pending (writableLength
 * grows) until release(). Bytes are pushed to the stub as if they came from the socket.
 */
class StalledPeer extends Duplex {
  private held: (() => void)[] = [];
  private stalled = true;
  readonly received: Buffer[] = [];

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.received.push(chunk);
    if (this.stalled) this.held.push(() => done());
    else done();
  }

  release(): void {
    this.stalled = false;
    for (const done of this.held.splice(0)) done();
  }

  async send(bytes: Buffer | string): Promise<void> {
    this.push(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
    await new Promise((resolve) => setImmediate(resolve));
  }

  replies(): string[] {
    const decoder = new PacketDecoder();
    return decoder.feed(Buffer.concat(this.received)).flatMap((e) => (e.type === 'packet' ? [e.data.toString('latin1')] : []));
  }
}

describe('GdbStub bounds', () => {
  it('advertises MAX_PACKET_SIZE as PacketSize and answers a longer packet with E07, keeping the connection', async () => {
    const client = await connect(new FakeTarget());
    const supported = await client.request('qSupported:swbreak+');
    expect(supported.split(';')).toContain(`PacketSize=${MAX_PACKET_SIZE.toString(16)}`);
    const before = client.raw.join('').length;
    client.socket.write(rawPacket(`M1000,2000:${'00'.repeat(MAX_PACKET_SIZE / 2)}`)); // 16 KiB of hex plus its header
    expect(await client.next()).toBe('E07');
    expect(client.raw.join('').slice(before).startsWith('+')).toBe(true); // it arrived intact: acked
    // A run-length run that expands past the bound, and one with a bad count byte.
    client.socket.write(rawPacket(`X1000,4000:${'0*~'.repeat(200)}`));
    expect(await client.next()).toBe('E07');
    client.socket.write(rawPacket('m1000*\x01'));
    expect(await client.next()).toBe('E16');
    expect(await client.request('m1000,4')).toBe('deadbeef');
  });

  it('drops the connection on an unterminated flood and releases the target', async () => {
    const target = new FakeTarget();
    const client = await connect(target);
    expect(await client.request('?')).toBe('T05thread:01;');
    const chunk = Buffer.alloc(1 << 20, 'a');
    client.socket.on('error', () => {}); // writes after the hang-up may be reset
    client.socket.write('$');
    // Keep writing (up to 100 MiB) until the stub hangs up: it must, within MAX_UNTERMINATED_BYTES.
    for (let i = 0; i < 100 && !client.closed; i++) {
      if (client.socket.write(chunk)) continue;
      await new Promise((resolve) => {
        client.socket.once('drain', resolve);
        client.socket.once('close', resolve);
      });
    }
    await client.waitClosed();
    await server!.connection;
    expect(target.detached).toBe(true);
  });

  it('reads at most MAX_PACKET_SIZE / 2 bytes per m, nothing past 2^64, and answers bad ranges with E', async () => {
    const target = new FakeTarget();
    const asked: number[] = [];
    const read = target.readMemory.bind(target);
    target.readMemory = (cpu, address, length) => (asked.push(length), read(cpu, address, length));
    const client = await connect(target);
    expect((await client.request('m0,ffffffffffffffffffff')).length).toBe(MAX_PACKET_SIZE);
    expect(asked).toEqual([MAX_PACKET_SIZE / 2]);
    // The last bytes below 2^64: only those are asked for (the fake has nothing there).
    expect(await client.request('mfffffffffffffffe,10')).toMatch(/^E/);
    expect(asked.at(-1)).toBe(2);
    expect(await client.request('m10000000000000000,1')).toBe('E16');
    expect(await client.request('m1000,0')).toBe('E16');
    expect(await client.request('m1000')).toBe('E16');
    expect(await client.request('m1000,4,4')).toBe('E16');
    expect(await client.request('Mffffffffffffffff,2:0000')).toBe('E0e');
    expect(await client.request('M1000,ffffffffffffffffffffff:00')).toBe('E16');
    expect(await client.request(`M${'f'.repeat(5000)},1:00`)).toBe('E16');
  });

  it('clamps qXfer offsets and lengths: at most MAX_PACKET_SIZE - 1 bytes, "l" past the end', async () => {
    const client = await connect(new FakeTarget('long'));
    const xml = X86_64_LAYOUT.targetXml;
    expect(await client.request(`qXfer:features:read:target.xml:${'f'.repeat(400)},100`)).toBe('l');
    const whole = await client.request(`qXfer:features:read:target.xml:0,${'f'.repeat(400)}`);
    expect(whole.length).toBeLessThanOrEqual(MAX_PACKET_SIZE);
    expect(whole.slice(1)).toBe(xml.slice(0, MAX_PACKET_SIZE - 1));
    expect(whole[0]).toBe(xml.length > MAX_PACKET_SIZE - 1 ? 'm' : 'l');
  });

  it(`drops a peer that sends more than ${MAX_QUEUED_PACKETS} packets without waiting for replies`, async () => {
    const target = new FakeTarget();
    const client = await connect(target);
    client.send('c'); // the fake waits for an interrupt: later packets queue behind it
    await new Promise((r) => setTimeout(r, 20));
    client.socket.write(Buffer.concat(Array.from({ length: MAX_QUEUED_PACKETS + 1 }, () => encodePacket('m1000,4'))));
    await client.waitClosed();
    await server!.connection;
    // The stub stopped the running target before letting it go.
    expect(target.calls.at(-1)).toBe('interrupt');
    expect(target.detached).toBe(true);
  });

  it('stops answering, and resends nothing on -, while MAX_OUTPUT_BACKLOG bytes of replies are unread', async () => {
    const peer = new StalledPeer();
    const stub = new GdbStub(peer, new FakeTarget());
    const bigRead = `m0,${(MAX_PACKET_SIZE / 2).toString(16)}`;
    await peer.send(Buffer.concat(Array.from({ length: MAX_QUEUED_PACKETS - 1 }, () => encodePacket(bigRead))));
    // Each reply is a whole packet of hex: the stub stops once the backlog passes the bound.
    const bound = MAX_OUTPUT_BACKLOG + MAX_PACKET_SIZE + 16;
    expect(peer.writableLength).toBeGreaterThan(MAX_OUTPUT_BACKLOG);
    expect(peer.writableLength).toBeLessThan(bound);
    await peer.send('-'.repeat(10_000));
    expect(peer.writableLength).toBeLessThan(bound);
    // Once the peer reads, every reply comes, in order.
    peer.release();
    await new Promise((r) => setTimeout(r, 50));
    const replies = peer.replies();
    expect(replies.length).toBeGreaterThanOrEqual(MAX_QUEUED_PACKETS - 1);
    expect(replies.every((r) => r.length === MAX_PACKET_SIZE)).toBe(true);
    peer.destroy();
    await stub.done;
  });
});

/** Long-mode sregs with 4- or 5-level paging, for VcpuDebugTarget over a fake vCPU. */
function fakeVcpu(la57: boolean): { vcpu: Vcpu; translated: bigint[] } {
  const translated: bigint[] = [];
  const sregs = { ...longModeSregs(), cr4: longModeSregs().cr4 | (la57 ? 1n << 12n : 0n) };
  const vcpu = {
    getSregs: () => sregs,
    getRegs: () => new FakeTarget().regs,
    // As KVM_TRANSLATE over page tables that map every linear page onto RAM (wrapping at its end):
    // the walk ignores address bits above 47 (56 with LA57), so a non-canonical address would
    // alias a canonical one; only the canonical check refuses it.
    fd: {
      translate: (linear: bigint): number | undefined => {
        translated.push(linear);
        return Number(linear % BigInt(MEMORY_SIZE));
      },
    },
  };
  return { vcpu: vcpu as unknown as Vcpu, translated };
}

describe('VcpuDebugTarget through the stub', () => {
  async function connectTo(la57: boolean) {
    const { vcpu, translated } = fakeVcpu(la57);
    const bytes = new Uint8Array(MEMORY_SIZE);
    bytes.set([0x11, 0x22, 0x33, 0x44], 0x100000);
    const target = new VcpuDebugTarget([vcpu], { bytes } as unknown as GuestMemory);
    server = await startGdbServer(0, target);
    return { client: await RspClient.connect(server.port), bytes, translated };
  }

  it('refuses non-canonical addresses in long mode instead of aliasing guest-physical memory', async () => {
    const { client, bytes, translated } = await connectTo(false);
    expect(await client.request('m100000,4')).toBe('11223344');
    // Bit 63 set, bits 48-62 clear: not canonical; KVM_TRANSLATE would have read 0x100000.
    expect(await client.request('m8000000000100000,4')).toBe('E0e');
    expect(await client.request('M8000000000100000,1:ff')).toBe('E0e');
    expect(await client.request('X8000000000100000,1:\xff')).toBe('E0e');
    expect(bytes[0x100000]).toBe(0x11);
    // A range that starts canonical and runs into the hole is refused as a whole.
    expect(await client.request('m7ffffffffffe,4')).toBe('E0e');
    expect(translated.every((linear) => linear < 1n << 47n || linear >= 0xffff800000000000n)).toBe(true);
    // The upper canonical half is fine.
    expect(await client.request('mffff800000100000,4')).toBe('11223344');
  });

  it('with LA57, takes 57-bit canonical ranges and refuses the rest', async () => {
    const { client } = await connectTo(true);
    expect(await client.request('m100000,4')).toBe('11223344');
    // Canonical with 5-level paging (bits 56-63 clear), not with 4-level: the whole range is valid.
    expect(await client.request('m00f0000000100000,4')).toBe('11223344');
    expect(await client.request('m0100000000100000,4')).toBe('E0e');
  });
});

function runGdb(port: number, commands: string[], arch: string): Promise<{ stdout: string; stderr: string }> {
  // An internal error in gdb should fail the test, not leave a 50 MB core file in the tree.
  const noCore = ['-iex', 'maint set internal-error corefile no', '-iex', 'maint set internal-error quit yes'];
  const args = [
    '-nx',
    '-batch',
    ...noCore,
    '-ex',
    `set architecture ${arch}`,
    '-ex',
    `target remote 127.0.0.1:${port}`,
    ...commands.flatMap((c) => ['-ex', c]),
  ];
  return new Promise((resolve, reject) => {
    execFile(GDB, args, { timeout: GDB_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err && err.killed) reject(new Error(`gdb timed out\n${stdout}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

describe.skipIf(!existsSync(GDB))('the real gdb client', () => {
  it(
    'x86-64: registers, control registers, memory, stepi, hbreak, break, watch, continue, kill',
    async () => {
      const target = new FakeTarget('long');
      server = await startGdbServer(0, target);
      const { stdout, stderr } = await runGdb(
        server.port,
        [
          'info registers rip',
          'info registers cr0',
          'p/x $cr0',
          'p/x $efer',
          'p/x $fs_base',
          'p/x $cs',
          'x/4xb 0x1000',
          'set {char}0x1000 = 0x55',
          'set $rbx = 0x1234',
          'stepi',
          'p/x $pc',
          'hbreak *0x100010',
          'continue',
          'p/x $pc',
          'delete',
          'break *0x100020',
          'continue',
          'p/x $pc',
          'delete',
          'watch *(int *)0x2000',
          'continue',
          'delete',
          'kill',
        ],
        'i386:x86-64',
      );
      expect(stdout).toMatch(/rip\s+0x100000/);
      expect(stdout).toMatch(/cr0\s+0x80000011/);
      expect(stdout).toContain('$1 = 0x80000011');
      expect(stdout).toContain('$2 = 0x500');
      expect(stdout).toContain('$3 = 0x7000');
      expect(stdout).toContain('$4 = 0x18');
      expect(stdout).toMatch(/0x1000:\s+0xde\s+0xad\s+0xbe\s+0xef/);
      expect(stdout).toContain('$5 = 0x100001');
      expect(stdout).toMatch(/Hardware assisted breakpoint 1 at 0x100010/);
      expect(stdout).toContain('$6 = 0x100010');
      expect(stdout).toContain('$7 = 0x100020');
      expect(stdout).toMatch(/Hardware watchpoint 3: \*\(int \*\)0x2000/);
      expect(stdout).toMatch(/Old value = 0\s+New value = 1/);
      expect(stdout).toMatch(/\[Inferior 1 \(.*\) killed\]/);
      expect(stderr).not.toMatch(/Remote failure|Could not insert|Cannot insert/);
      expect(target.memory[0x1000]).toBe(0x55);
      expect(target.regs.rbx).toBe(0x1234n);
      expect(target.killed).toBe(true);
      // gdb never wrote an int3 (0xcc) into guest memory for `break`.
      expect(target.memory[0x100020]).toBe(0);
      await server.connection;
    },
    GDB_TIMEOUT_MS + 5_000,
  );

  it(
    'i386 (real mode): registers, segment registers, memory and detach',
    async () => {
      const target = new FakeTarget('real');
      server = await startGdbServer(0, target);
      const { stdout, stderr } = await runGdb(
        server.port,
        ['info registers eip', 'p/x $ds', 'p/x $cr0', 'x/2xb 0x1000', 'stepi', 'p/x $eip', 'detach'],
        'i386',
      );
      expect(stdout).toMatch(/eip\s+0x0\s/);
      expect(stdout).toContain('$1 = 0x1000');
      expect(stdout).toContain('$2 = 0x60000010');
      expect(stdout).toMatch(/0x1000:\s+0xde\s+0xad/);
      expect(stdout).toContain('$3 = 0x1');
      expect(stderr).not.toMatch(/Remote failure|truncated|Remote 'g' packet reply is too long/);
      await server.connection;
      expect(target.detached).toBe(true);
    },
    GDB_TIMEOUT_MS + 5_000,
  );

  it(
    "reports the guest's exit code (W) to gdb",
    async () => {
      const target = new FakeTarget('long');
      target.onContinue = { kind: 'exited', code: 42 };
      server = await startGdbServer(0, target);
      const { stdout } = await runGdb(server.port, ['continue'], 'i386:x86-64');
      // gdb prints exit codes in octal: 42 is 052.
      expect(stdout).toMatch(/\[Inferior 1 \(.*\) exited with code 052\]/);
      await server.connection;
      expect(target.killed).toBe(false);
    },
    GDB_TIMEOUT_MS + 5_000,
  );
});
