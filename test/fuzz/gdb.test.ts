/**
 * Fuzzing the GDB remote protocol side (src/gdb): the packet decoder with random bytes, and with
 * valid packets among noise split at random points; and the stub's command parser with random and
 * mutated packets against a fake target. Nothing may throw out of the decoder or the stub, the
 * decoder never holds more than MAX_PACKET_SIZE bytes, every well-framed packet gets exactly one
 * well-framed reply of at most MAX_PACKET_SIZE bytes (or the documented E reply), and the target
 * is only ever asked for bounded memory accesses inside the 64-bit address space.
 */
import { Duplex } from 'node:stream';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { MAX_PACKET_SIZE, PacketDecoder, checksum, encodePacket, escapePayload, type PacketEvent } from '../../src/gdb/packet.js';
import { GdbStub } from '../../src/gdb/stub.js';
import type { CpuMode, DebugTarget, HwBreakpointKind, ResumeAction, StopEvent, StopReason } from '../../src/gdb/target.js';
import { KVM_REGS_FIELDS, type KvmRegs, type KvmSregs, type KvmSegment } from '../../src/kvm/structs.js';
import { FUZZ_TIMEOUT_MS, fuzz, holds, same, sameList } from './fuzz-config.js';

const ADDRESS_SPACE_END = 1n << 64n;
const FAKE_MEMORY = 0x10000;
const latin1 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('latin1');
/** Run-length counts that are not '#' or '$' (those would end or restart the packet). */
const RUN_LENGTH_COUNTS = [0x20, 0x21, 0x22, 0x25, 0x30, 0x7e];
const RUN_LENGTH_BIAS = 29;

// ---- the decoder -------------------------------------------------------------------------------

function checkEvents(decoder: PacketDecoder, events: PacketEvent[]): void {
  holds(decoder.buffered <= MAX_PACKET_SIZE, `the decoder holds ${decoder.buffered} bytes`);
  for (const e of events) if (e.type === 'packet') holds(e.data.length <= MAX_PACKET_SIZE, `a ${e.data.length}-byte packet`);
}

/** Splits `bytes` at the given cut points (taken modulo its length). */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  let from = 0;
  for (const cut of at) {
    parts.push(bytes.subarray(from, cut));
    from = cut;
  }
  parts.push(bytes.subarray(from));
  return parts;
}

/** Bytes gdb may send between packets that the decoder must pass over: acks, naks, and noise without '$' or Ctrl-C. */
const betweenArb = fc.array(
  fc.integer({ min: 0, max: 255 }).filter((b) => b !== 0x24 && b !== 0x03 && b !== 0x2b && b !== 0x2d),
  {
    maxLength: 8,
  },
);

// ---- the stub ----------------------------------------------------------------------------------

function segment(selector: number): KvmSegment {
  return { base: 0n, limit: 0xffffffff, selector, type: 3, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0 };
}

/**
 * A target that answers at once and records every request the stub makes that is not bounded (the
 * stub turns a target's exception into an E reply, so a failed check must not be a throw).
 */
class BoundedTarget implements DebugTarget {
  readonly violations: string[] = [];
  private regs: KvmRegs;
  private sregs: KvmSregs;
  readonly memory = new Uint8Array(FAKE_MEMORY);
  ended = false;

  constructor(
    private readonly cpuMode: CpuMode,
    private readonly stops: StopReason[],
  ) {
    const regs = {} as KvmRegs;
    for (const name of KVM_REGS_FIELDS) regs[name] = 0n;
    this.regs = regs;
    const seg = segment(0x10);
    this.sregs = {
      ...{ cs: seg, ds: seg, es: seg, fs: seg, gs: seg, ss: seg, tr: seg, ldt: seg },
      gdt: { base: 0n, limit: 0 },
      idt: { base: 0n, limit: 0 },
      ...{ cr0: 0x11n, cr2: 0n, cr3: 0n, cr4: 0n, cr8: 0n, efer: 0n, apicBase: 0xfee00900n },
      interruptBitmap: [0n, 0n, 0n, 0n],
    };
  }

  private check(condition: boolean, what: string): void {
    if (!condition) this.violations.push(what);
  }

  private checkAddress(address: bigint, length: number, what: string): void {
    this.check(address >= 0n && address < ADDRESS_SPACE_END, `${what} at 0x${address.toString(16)}, outside the 64-bit address space`);
    this.check(Number.isSafeInteger(length) && length >= 0, `${what} of ${length} bytes`);
    if (Number.isSafeInteger(length)) this.check(address + BigInt(length) <= ADDRESS_SPACE_END, `${what} past 2^64`);
  }

  /** Two vCPUs (gdb threads 1 and 2), sharing one register file: the stub must only ever name these. */
  readonly cpuCount = 2;
  private checkCpu(cpu: number): void {
    this.check(Number.isInteger(cpu) && cpu >= 0 && cpu < this.cpuCount, `vCPU ${cpu}`);
  }
  alive(cpu: number): boolean {
    return cpu >= 0 && cpu < this.cpuCount && !this.ended;
  }
  describe(cpu: number): string {
    this.checkCpu(cpu);
    return `CPU#${cpu}`;
  }
  mode(cpu: number): CpuMode {
    this.checkCpu(cpu);
    return this.cpuMode;
  }
  getRegs(cpu: number): KvmRegs {
    this.checkCpu(cpu);
    return { ...this.regs };
  }
  setRegs(cpu: number, regs: KvmRegs): void {
    this.checkCpu(cpu);
    for (const name of KVM_REGS_FIELDS) this.check(regs[name] >= 0n && regs[name] < ADDRESS_SPACE_END, `register ${name} = ${regs[name]}`);
    this.regs = { ...regs };
  }
  getSregs(cpu: number): KvmSregs {
    this.checkCpu(cpu);
    return structuredClone(this.sregs);
  }
  setSregs(cpu: number, sregs: KvmSregs): void {
    this.checkCpu(cpu);
    this.sregs = structuredClone(sregs);
  }
  readMemory(cpu: number, address: bigint, length: number): Uint8Array | undefined {
    this.checkCpu(cpu);
    this.checkAddress(address, length, 'a read');
    this.check(length > 0 && length <= MAX_PACKET_SIZE / 2, `a read of ${length} bytes`);
    if (address + BigInt(length) > BigInt(FAKE_MEMORY)) return undefined;
    return this.memory.slice(Number(address), Number(address) + length);
  }
  writeMemory(cpu: number, address: bigint, data: Uint8Array): boolean {
    this.checkCpu(cpu);
    this.checkAddress(address, data.length, 'a write');
    this.check(data.length > 0 && data.length <= MAX_PACKET_SIZE, `a write of ${data.length} bytes`);
    if (address + BigInt(data.length) > BigInt(FAKE_MEMORY)) return false;
    this.memory.set(data, Number(address));
    return true;
  }
  resume(actions: ReadonlyMap<number, ResumeAction>): Promise<StopEvent> {
    this.check(!this.ended, 'resumed a target that had ended');
    for (const cpu of actions.keys()) this.checkCpu(cpu);
    const stop = this.stops.shift() ?? { kind: 'step' };
    if (stop.kind === 'exited' || stop.kind === 'crashed') this.ended = true;
    return Promise.resolve({ cpu: actions.keys().next().value ?? 0, reason: stop });
  }
  interrupt(): void {}
  insertBreakpoint(_kind: HwBreakpointKind, address: bigint, length: number): boolean {
    this.checkAddress(address, 0, 'a breakpoint');
    this.check(Number.isSafeInteger(length), `a breakpoint of ${length} bytes`);
    return length <= 8;
  }
  removeBreakpoint(kind: HwBreakpointKind, address: bigint, length: number): boolean {
    return this.insertBreakpoint(kind, address, length);
  }
  kill(): void {
    this.ended = true;
  }
  detach(): void {
    this.ended = true;
  }
}

/** The stub's end of a connection: bytes pushed in as if from gdb, replies collected. */
class Peer extends Duplex {
  readonly written: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.written.push(chunk);
    done();
  }
  async settle(): Promise<void> {
    for (let i = 0; i < 4; i++) await new Promise((resolve) => setImmediate(resolve));
  }
}

const hexDigits = (max: number): fc.Arbitrary<string> =>
  fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'), minLength: 1, maxLength: max });
const addressArb = fc.oneof(
  fc.constantFrom('0', '1000', 'fff0', 'ffff', '10000', 'ffffffffffffffff', 'fffffffffffffffe', '10000000000000000', '8000000000001000'),
  hexDigits(24),
);
const lengthArb = fc.oneof(
  fc.constantFrom('0', '1', '4', '10', '1000', '2000', '2001', '4000', 'ffffffff', 'ffffffffffffffffffff'),
  hexDigits(8),
);
const bytesArb = (max: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength: max });

/** Packets from the stub's command set with random arguments, as gdb might send them (and worse). */
const commandArb: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  fc.constantFrom('?', 'g', 'c', 's', 'D', 'k', 'vKill', 'vCont?', 'Hg0', 'Hc-1', 'T01', 'qC', 'qAttached', 'qfThreadInfo', 'qsThreadInfo'),
  fc.constantFrom('QStartNoAckMode', 'qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386', 'qSupported', 'vMustReplyEmpty'),
  fc.tuple(addressArb, lengthArb).map(([a, l]) => `m${a},${l}`),
  fc.tuple(addressArb, bytesArb(64)).map(([a, b]) => `M${a},${b.length.toString(16)}:${Buffer.from(b).toString('hex')}`),
  fc.tuple(addressArb, lengthArb, hexDigits(40)).map(([a, l, h]) => `M${a},${l}:${h}`),
  fc.tuple(addressArb, bytesArb(64)).map(([a, b]) => Buffer.concat([Buffer.from(`X${a},${b.length.toString(16)}:`), b])),
  fc.tuple(addressArb, lengthArb, bytesArb(16)).map(([a, l, b]) => Buffer.concat([Buffer.from(`X${a},${l}:`), b])),
  fc.tuple(fc.integer({ min: 0, max: 9 }), addressArb, lengthArb, fc.boolean()).map(([t, a, k, ins]) => `${ins ? 'Z' : 'z'}${t},${a},${k}`),
  fc.tuple(fc.constantFrom('c', 's', 'C05;', 'S05;', 'C'), addressArb).map(([c, a]) => `${c}${a}`),
  // Threads: ids gdb could send (any, all, ours, past ours, huge) in H, T, vCont and qThreadExtraInfo.
  fc
    .tuple(
      fc.constantFrom('Hg', 'Hc', 'T', 'qThreadExtraInfo,', 'vCont;c:', 'vCont;s:', 'vCont;S05:'),
      fc.oneof(fc.constantFrom('0', '-1', '1', '2', '3'), hexDigits(20)),
    )
    .map(([p, id]) => `${p}${id}`),
  fc.constantFrom('vCont;c', 'vCont;s:1;c', 'vCont;s:2;c:1', 'vCont;x', 'vCont;', 'vCont;c:1;t'),
  fc.tuple(hexDigits(4), hexDigits(40)).map(([r, v]) => `P${r}=${v}`),
  hexDigits(6).map((r) => `p${r}`),
  hexDigits(1200).map((h) => `G${h}`),
  fc
    .tuple(fc.constantFrom('target.xml', 'other.xml', ''), addressArb, lengthArb)
    .map(([annex, o, l]) => `qXfer:features:read:${annex}:${o},${l}`),
  fc.string({ maxLength: 40 }),
  bytesArb(80),
);

/** A command, sometimes with a few bytes of damage. */
const packetArb = fc
  .tuple(commandArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 2 }))
  .map(([command, flips]) => {
    const bytes = typeof command === 'string' ? Buffer.from(command, 'latin1') : Buffer.from(command);
    for (const [at, value] of flips) if (bytes.length > 0) bytes[at % bytes.length] = value;
    return bytes;
  });

const stopArb: fc.Arbitrary<StopReason> = fc.oneof(
  fc.constant({ kind: 'step' as const }),
  fc.constant({ kind: 'interrupt' as const }),
  fc.bigInt({ min: 0n, max: ADDRESS_SPACE_END - 1n }).map((address) => ({ kind: 'breakpoint' as const, address })),
  fc.record({
    kind: fc.constant('watchpoint' as const),
    watch: fc.constantFrom('write' as const, 'read' as const),
    address: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  }),
  fc.integer({ min: 0, max: 0xffffffff }).map((code) => ({ kind: 'exited' as const, code })),
  fc.constant({ kind: 'crashed' as const, description: 'triple fault' }),
);

/** The packets, acks and naks the stub wrote since `from`. */
function output(peer: Peer, decoder: PacketDecoder): PacketEvent[] {
  const events = decoder.feed(Buffer.concat(peer.written.splice(0)));
  checkEvents(decoder, events);
  return events;
}

describe('GDB remote protocol fuzzing', () => {
  it(
    'the decoder takes any bytes without throwing or holding more than MAX_PACKET_SIZE',
    () =>
      fuzz(
        fc.array(
          fc.oneof(
            bytesArb(300),
            bytesArb(40).map((b) => Uint8Array.from([0x24, ...b])),
            fc.constant(new Uint8Array(20_000).fill(0x61)),
          ),
          {
            maxLength: 20,
          },
        ),
        (chunks) => {
          const decoder = new PacketDecoder();
          for (const chunk of chunks) checkEvents(decoder, decoder.feed(chunk));
        },
        400,
      ),
    FUZZ_TIMEOUT_MS,
  );

  it(
    'packets among acks and noise, split anywhere, come out whole and in order',
    () =>
      fuzz(
        fc.record({
          packets: fc.array(fc.tuple(bytesArb(MAX_PACKET_SIZE / 4), betweenArb), { maxLength: 8 }),
          cuts: fc.array(fc.nat(), { maxLength: 12 }),
        }),
        ({ packets, cuts }) => {
          const wire = Buffer.concat(packets.flatMap(([payload, between]) => [encodePacket(payload), Buffer.from(between)]));
          const decoder = new PacketDecoder();
          const got: string[] = [];
          for (const part of split(wire, cuts)) {
            const events = decoder.feed(part);
            checkEvents(decoder, events);
            for (const e of events) if (e.type === 'packet') got.push(latin1(e.data));
          }
          sameList(
            got,
            packets.map(([payload]) => latin1(payload)),
            'the decoded packets',
          );
        },
        400,
      ),
    FUZZ_TIMEOUT_MS,
  );

  it(
    'the stub answers every packet once, within MAX_PACKET_SIZE, and asks the target only for bounded accesses',
    () =>
      fuzz(
        fc.record({
          mode: fc.constantFrom<CpuMode>('real', 'protected', 'long'),
          packets: fc.array(
            fc.tuple(
              packetArb,
              fc.constantFrom('good', 'good', 'good', 'good', 'bad-checksum', 'run-length'),
              fc.array(fc.nat(), { maxLength: 3 }),
            ),
            { maxLength: 40, size: 'max' },
          ),
          stops: fc.array(stopArb, { maxLength: 40 }),
        }),
        async ({ mode, packets, stops }) => {
          const peer = new Peer();
          const target = new BoundedTarget(mode, stops);
          const stub = new GdbStub(peer, target);
          const replies = new PacketDecoder();
          let noAck = false;
          for (const [payload, framing, cuts] of packets) {
            let wire = encodePacket(payload);
            let sent = payload;
            let expectReply = true;
            if (framing === 'bad-checksum') {
              wire = Buffer.from(wire);
              wire[wire.length - 1] = wire[wire.length - 1] === 0x30 ? 0x31 : 0x30;
              expectReply = false;
            } else if (framing === 'run-length' && payload.length > 0) {
              // The last byte repeated, gdb's way: the stub sees the expanded packet.
              const count = RUN_LENGTH_COUNTS[payload.length % RUN_LENGTH_COUNTS.length]!;
              const body = Buffer.concat([escapePayload(payload), Buffer.from([0x2a, count])]);
              wire = Buffer.concat([Buffer.from('$'), body, Buffer.from(`#${checksum(body).toString(16).padStart(2, '0')}`)]);
              sent = Buffer.concat([payload, Buffer.alloc(count - RUN_LENGTH_BIAS, payload.at(-1))]);
            }
            for (const part of split(wire, cuts)) peer.push(Buffer.from(part));
            await peer.settle();
            const events = output(peer, replies);
            const answers = events.filter((e) => e.type === 'packet');
            const text = latin1(sent);
            if (!noAck) same(events[0]?.type, expectReply ? 'ack' : 'nak', `the ack for ${JSON.stringify(text.slice(0, 40))}`);
            if (!expectReply) {
              same(answers.length, 0, 'replies to a packet with a bad checksum');
              continue;
            }
            // k ends the session without a reply, D and vKill after one; everything else gets exactly one.
            same(answers.length, text[0] === 'k' ? 0 : 1, `replies to ${JSON.stringify(text.slice(0, 40))}`);
            for (const answer of answers)
              holds(answer.type === 'packet' && answer.data.length <= MAX_PACKET_SIZE, 'a reply within PacketSize');
            if (text === 'QStartNoAckMode') noAck = true;
            sameList(target.violations, [], `what ${JSON.stringify(text.slice(0, 40))} asked of the target`);
            if (text[0] === 'k' || text[0] === 'D' || text.startsWith('vKill')) break;
          }
          peer.destroy();
          await stub.done;
        },
        300,
      ),
    FUZZ_TIMEOUT_MS,
  );

  it(
    'random bytes at the stub: nothing throws, and the connection stays bounded or is dropped',
    () =>
      fuzz(
        fc.array(
          fc.oneof(
            bytesArb(200),
            packetArb.map((p) => encodePacket(p)),
          ),
          { maxLength: 30 },
        ),
        async (chunks) => {
          const peer = new Peer();
          const target = new BoundedTarget('long', []);
          const stub = new GdbStub(peer, target);
          const replies = new PacketDecoder();
          for (const chunk of chunks) {
            if (peer.destroyed) break;
            peer.push(Buffer.from(chunk));
            await peer.settle();
            output(peer, replies);
            sameList(target.violations, [], 'what the stub asked of the target');
          }
          peer.destroy();
          await stub.done;
        },
        300,
      ),
    FUZZ_TIMEOUT_MS,
  );
});
