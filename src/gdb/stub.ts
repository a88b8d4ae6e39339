/**
 * The GDB remote stub: serves one gdb connection against a DebugTarget, all-stop, each vCPU a
 * thread (vCPU n is thread n + 1, as QEMU numbers them): when one stops, all are stopped, and the
 * stop reply names it.
 *
 * Packets: qSupported, qXfer:features:read (target.xml), QStartNoAckMode, ?, g/G, p/P, m/M/X,
 * c/s (and C/S, signal ignored), vCont? and vCont (c, C, s, S per thread), Z0–Z4/z0–z4, D,
 * k/vKill, qAttached, qC, qfThreadInfo/qsThreadInfo, qThreadExtraInfo, Hg/Hc, T; anything else
 * gets the empty reply ("not supported"), as the protocol asks. Registers and memory are the
 * Hg thread's; a stop makes the stopped thread current.
 *
 * One register layout for the session (registers.ts): the one asked for, else the image's, else
 * the boot vCPU's mode's. A gdb that uses the other layout (it loaded a file of the other
 * architecture) shows it in its packets (see hint()); the stub then gives one hint
 * (GdbStubOptions.onHint) naming --gdb-arch.
 *
 * Breakpoints are all debug-register breakpoints: KVM on this kind of host cannot reflect int3 to
 * userspace reliably, so Z0 is accepted and placed in a debug register ('exec'), sharing the four
 * slots with Z1–Z4; gdb therefore never writes int3 into guest memory. A full set of slots is an
 * E reply, which gdb reports as "Could not insert breakpoint".
 *
 * The target must be stopped when the connection starts (the machine stops the vCPU when gdb
 * connects, or before the first instruction with --gdb-wait). While a c/s is in flight the socket
 * stays live, so the Ctrl-C byte reaches target.interrupt().
 *
 * Bounds (a peer that is not gdb must not make the stub grow): packets are at most MAX_PACKET_SIZE
 * (packet.ts; advertised as PacketSize), and a longer one gets the E07 (E2BIG) reply; data that
 * never ends (MAX_UNTERMINATED_BYTES without a '#') drops the connection. m reads at most
 * MAX_PACKET_SIZE / 2 bytes (a shorter reply is allowed by the protocol), M/X write only what the
 * packet carries, and addresses are 64-bit in every packet (m/M/X, Z/z, c/s: an address past 2^64
 * is E16, a range running past it E0e). qXfer replies carry at most MAX_PACKET_SIZE - 1 bytes.
 * gdb waits for each reply, so more than MAX_QUEUED_PACKETS packets waiting for the stub is a
 * protocol violation that drops the connection; and while the peer leaves more than
 * MAX_OUTPUT_BACKLOG bytes of replies unread, the stub answers nothing more (and resends nothing
 * on '-') until they drain.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { DebugTarget, HwBreakpointKind, ResumeAction, StopEvent } from './target.js';
import {
  ACK_BYTES,
  MAX_PACKET_SIZE,
  MAX_UNTERMINATED_BYTES,
  NAK_BYTES,
  PacketDecoder,
  encodePacket,
  fromHex,
  fromLittleEndianHex,
  parseHexNumber,
  toHex,
  type PacketEvent,
  type PacketRejection,
} from './packet.js';
import {
  LAYOUTS,
  layoutForMode,
  otherLayout,
  readAllRegisters,
  readRegister,
  writeAllRegisters,
  writeRegister,
  type LayoutName,
  type RegisterLayout,
  type RegisterState,
  type RegisterWrite,
} from './registers.js';

export { MAX_PACKET_SIZE };
/** Packets received and not yet answered; gdb has at most one (plus Ctrl-C) outstanding. */
export const MAX_QUEUED_PACKETS = 16;
/** Reply bytes the peer has not read beyond which the stub stops answering until they drain. */
export const MAX_OUTPUT_BACKLOG = 4 * MAX_PACKET_SIZE;
/** Memory addresses are 64-bit: nothing at or past 2^64. */
const ADDRESS_SPACE_END = 1n << 64n;
/** gdb's thread ids are hex, vCPU n is thread n + 1; 0 means any thread, -1 all of them (here: these). */
const THREAD_ALL = -1;
const THREAD_ANY = -2;
/** gdb signal numbers (include/gdb/signals.h). */
const SIGINT = 0x02;
const SIGTRAP = 0x05;
const SIGSEGV = 0x0b;
const EXIT_CODE_MASK = 0xff;

/** Error replies: gdb only shows the number; these follow errno names. */
const ERR_FAULT = 'E0e'; // EFAULT: memory not mapped
const ERR_INVALID = 'E16'; // EINVAL: malformed packet or register
const ERR_NO_SPACE = 'E1c'; // ENOSPC: all four debug registers in use
const ERR_NOT_FOUND = 'E02'; // ENOENT: no such breakpoint
const ERR_TARGET = 'E01'; // the target threw
const ERR_TOO_BIG = 'E07'; // E2BIG: the packet is longer than PacketSize
const ERR_NO_THREAD = 'E03'; // ESRCH: no such thread
const OK = 'OK';
const UNSUPPORTED = '';

/** Z-packet types: 0 software, 1 hardware breakpoint, 2 write, 3 read, 4 access watchpoint. */
const Z_KINDS: readonly HwBreakpointKind[] = ['exec', 'exec', 'write', 'read', 'access'];
const WATCH_REASON = { write: 'watch', read: 'rwatch', access: 'awatch' } as const;

const LOG_PACKET_CHARS = 200;

export interface GdbStubOptions {
  /** Receives a line per packet in each direction and every diagnostic. */
  log?: (line: string) => void;
  /** The register layout to serve; absent: the boot vCPU's mode when gdb first asks. */
  arch?: LayoutName;
  /** Receives, once a session, the hint that gdb uses the other layout (one line, naming --gdb-arch). */
  onHint?: (message: string) => void;
}

type Reply = string | Buffer | undefined;

/** What ends the session from our side after the reply is sent. */
type Ending = 'detach' | 'kill' | undefined;

function hexByte(value: number): string {
  return value.toString(16).padStart(2, '0');
}

/** A vCPU's gdb thread id. */
function threadId(cpu: number): string {
  return hexByte(cpu + 1);
}

/** A thread id from a packet: the vCPU, or THREAD_ANY / THREAD_ALL; undefined when malformed. */
function parseThreadId(text: string): number | undefined {
  if (text === '-1') return THREAD_ALL;
  const id = parseHexNumber(text);
  if (id === undefined || id > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return id === 0n ? THREAD_ANY : Number(id) - 1;
}

function stopReply(event: StopEvent, hwbreakReasons: boolean): string {
  const reason = event.reason;
  const thread = `thread:${threadId(event.cpu)};`;
  switch (reason.kind) {
    case 'breakpoint':
      return `T${hexByte(SIGTRAP)}${thread}${hwbreakReasons ? 'hwbreak:;' : ''}`;
    case 'watchpoint':
      return `T${hexByte(SIGTRAP)}${thread}${WATCH_REASON[reason.watch]}:${reason.address.toString(16)};`;
    case 'step':
      return `T${hexByte(SIGTRAP)}${thread}`;
    case 'interrupt':
      return `T${hexByte(SIGINT)}${thread}`;
    case 'exited':
      return `W${hexByte(reason.code & EXIT_CODE_MASK)}`;
    case 'crashed':
      return `X${hexByte(SIGSEGV)}`;
    default: {
      const never: never = reason;
      throw new Error(`unknown stop reason ${JSON.stringify(never)}`);
    }
  }
}

export class GdbStub {
  /** Settles when the connection is closed and the target is released (detached, killed or gone). */
  readonly done: Promise<void>;

  private readonly decoder = new PacketDecoder();
  private readonly log: (line: string) => void;
  /** Packets waiting for the stub, in order; a rejected packet waits for its error reply. */
  private readonly queue: (Buffer | PacketRejection)[] = [];
  private processing = false;
  private noAck = false;
  private lastSent: Buffer | undefined;
  private running: Promise<StopEvent> | undefined;
  /** The `?` reply; the connection starts at a stop gdb should see as SIGTRAP, as QEMU reports it. */
  private lastStop: string;
  /** Fixed at first use: gdb cannot change register sizes mid-session. */
  private layoutCache: RegisterLayout | undefined;
  /** The vCPU of g/G/p/P/m/M/X (Hg) and the one c/s resume (Hc: THREAD_ALL or THREAD_ANY too). */
  private generalCpu = 0;
  private continueCpu = THREAD_ANY;
  private readonly onHint: (message: string) => void;
  private hinted = false;
  // Evidence that gdb reads our registers in the other layout (see hint()).
  /** The previous packet's text, and how many g packets gdb sent. */
  private previousPacket = '';
  private gPackets = 0;
  /** After a g reply: the pc that a gdb using the other layout reads from it (when that is not the real one). */
  private pcAsOther: bigint | undefined;
  /** Addresses of the exec breakpoints gdb has inserted, and the last stop when it was at one. */
  private readonly execBreakpoints = new Set<bigint>();
  private breakpointStop: { cpu: number; address: bigint } | undefined;
  private gdbFeatures = new Set<string>();
  /** The target is no longer ours to release: detached, killed, exited or crashed. */
  private released = false;
  private closed = false;
  private resolveDone!: () => void;

  constructor(
    private readonly stream: Duplex,
    private readonly target: DebugTarget,
    options: GdbStubOptions = {},
  ) {
    this.log = options.log ?? (() => {});
    this.onHint = options.onHint ?? (() => {});
    if (options.arch) this.layoutCache = LAYOUTS[options.arch];
    this.lastStop = `T${hexByte(SIGTRAP)}thread:${threadId(0)};`;
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', (err) => this.log(`gdb connection error: ${err.message}`));
    stream.on('close', () => void this.onClose());
  }

  private get layout(): RegisterLayout {
    this.layoutCache ??= layoutForMode(this.target.mode(0));
    return this.layoutCache;
  }

  private onData(chunk: Buffer): void {
    for (const event of this.decoder.feed(chunk)) {
      if (this.stream.destroyed) return; // dropped (drop()) part-way through the chunk
      this.onEvent(event);
    }
  }

  private onEvent(event: PacketEvent): void {
    switch (event.type) {
      case 'packet':
      case 'rejected':
        // A rejected packet still arrived intact: ack it, then answer it in turn with an error.
        if (!this.noAck) this.write(ACK_BYTES);
        if (this.queue.length >= MAX_QUEUED_PACKETS) {
          this.drop(`gdb sent more than ${MAX_QUEUED_PACKETS} packets without waiting for replies`);
          return;
        }
        this.queue.push(event.type === 'packet' ? event.data : event.why);
        void this.pump();
        return;
      case 'overrun':
        this.drop(`gdb sent a packet of more than ${MAX_UNTERMINATED_BYTES} bytes without an end`);
        return;
      case 'bad-checksum':
        this.log('gdb packet with a bad checksum');
        if (!this.noAck) this.write(NAK_BYTES);
        return;
      case 'interrupt':
        // Ctrl-C only means something while the guest runs; a stopped target has nothing to stop.
        if (this.running) this.target.interrupt();
        return;
      case 'nak':
        // A '-' flood must not pile up resends: one is enough while replies are unread.
        if (!this.noAck && this.lastSent && this.stream.writableLength <= MAX_OUTPUT_BACKLOG) this.write(this.lastSent);
        return;
      case 'ack':
        return;
      default: {
        const never: never = event;
        throw new Error(`unknown packet event ${JSON.stringify(never)}`);
      }
    }
  }

  /** Handles packets one at a time: a c/s holds the queue until the target stops. */
  private async pump(): Promise<void> {
    if (this.processing) return;
    this.processing = true;
    try {
      while (this.queue.length > 0 && !this.closed && !this.stream.destroyed) {
        if (this.stream.writableLength > MAX_OUTPUT_BACKLOG) {
          await this.drained();
          continue;
        }
        const data = this.queue.shift()!;
        if (typeof data === 'string') {
          this.log(data === 'too-long' ? `gdb packet longer than ${MAX_PACKET_SIZE} bytes refused` : 'malformed gdb packet refused');
          this.send(data === 'too-long' ? ERR_TOO_BIG : ERR_INVALID);
          continue;
        }
        const text = data.toString('latin1');
        this.log(`gdb <- ${text.slice(0, LOG_PACKET_CHARS)}`);
        this.lookForOtherLayout(text);
        let reply: Reply;
        let ending: Ending;
        try {
          [reply, ending] = await this.handle(text, data);
        } catch (err) {
          this.log(`gdb packet ${text.slice(0, LOG_PACKET_CHARS)} failed: ${(err as Error).message}`);
          reply = ERR_TARGET;
        }
        if (reply !== undefined) this.send(reply);
        if (text.startsWith('QStartNoAckMode') && reply === OK) this.noAck = true;
        if (ending) this.end(ending);
        this.previousPacket = text;
      }
    } finally {
      this.processing = false;
    }
  }

  private send(reply: string | Buffer): void {
    const packet = encodePacket(reply);
    this.log(`gdb -> ${packet.toString('latin1').slice(0, LOG_PACKET_CHARS)}`);
    this.lastSent = packet;
    this.write(packet);
  }

  private write(bytes: Buffer): void {
    if (!this.closed && this.stream.writable) this.stream.write(bytes);
  }

  /** Settles once the peer has read our replies (or the connection is gone). */
  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.stream.off('drain', done);
        this.stream.off('close', done);
        resolve();
      };
      this.stream.on('drain', done);
      this.stream.on('close', done);
      if (this.closed || this.stream.destroyed) done();
    });
  }

  /** The peer broke the protocol in a way that costs memory: the connection is dropped (onClose releases the target). */
  private drop(why: string): void {
    this.log(`${why}: dropping the connection`);
    this.queue.length = 0;
    this.stream.destroy();
  }

  private end(how: 'detach' | 'kill'): void {
    if (!this.released) {
      this.released = true;
      if (how === 'detach') this.target.detach();
      else this.target.kill();
    }
    this.stream.end();
  }

  private async onClose(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    // gdb hangs up after its first g when the reply is longer than its layout ("Remote 'g' packet reply is too long").
    if (this.previousPacket === 'g' && this.gPackets === 1 && !this.released) this.hint('gdb hung up right after reading the registers');
    try {
      // gdb went away mid-run: stop the vCPU so it can be released, then let the guest run on freely.
      if (this.running) {
        this.target.interrupt();
        await this.running.catch(() => undefined);
      }
      if (!this.released) {
        this.released = true;
        this.target.detach();
      }
    } catch (err) {
      this.log(`releasing the target after gdb disconnected failed: ${(err as Error).message}`);
    } finally {
      this.resolveDone();
    }
  }

  private async handle(text: string, data: Buffer): Promise<[Reply, Ending?]> {
    const command = text[0] ?? '';
    const args = text.slice(1);
    switch (command) {
      case '?':
        return [this.lastStop];
      case 'g': {
        const state = this.state();
        const reply = readAllRegisters(this.layout, state);
        this.gPackets++;
        // Only for the i386 layout: x86-64's rip then falls in our x87 block, always zero, so no
        // guest value can look like it (the other way round gdb hangs up instead, see onClose).
        const pc = this.layout.name === 'i386' ? pcOf(otherLayout(this.layout), reply) : undefined;
        this.pcAsOther = pc !== undefined && pc !== state.regs.rip ? pc : undefined;
        return [reply];
      }
      case 'G':
        if (args.length > this.layout.totalBytes * 2) this.hint(`gdb wrote ${args.length / 2} bytes of registers`);
        return [this.commit(writeAllRegisters(this.layout, args, this.state()))];
      case 'p': {
        const regnum = parseHexNumber(args);
        if (regnum !== undefined && regnum >= BigInt(this.layout.registers.length)) this.hint(`gdb asked for register ${regnum}`);
        const value = regnum === undefined ? undefined : readRegister(this.layout, Number(regnum), this.state());
        return [value ?? ERR_INVALID];
      }
      case 'P': {
        const [num = '', value = ''] = args.split('=');
        const regnum = parseHexNumber(num);
        if (regnum === undefined) return [ERR_INVALID];
        const reg = this.layout.registers[Number(regnum)];
        if (!reg) this.hint(`gdb wrote register ${regnum}`);
        else if (value.length !== reg.bitsize / 4) this.hint(`gdb wrote ${value.length * 4} bits to the ${reg.bitsize}-bit ${reg.name}`);
        return [this.commit(writeRegister(this.layout, Number(regnum), value, this.state()))];
      }
      case 'm':
        return [this.readMemory(args)];
      case 'M':
        return [this.writeMemory(args, false, data)];
      case 'X':
        return [this.writeMemory(args, true, data)];
      case 'c':
      case 's':
        return [await this.resumeClassic(command === 'c' ? 'continue' : 'step', args)];
      case 'C':
      case 'S': {
        // Csig[;addr]: there are no signals to deliver to a bare-metal guest; only the address counts.
        const address = args.split(';')[1] ?? '';
        return [await this.resumeClassic(command === 'C' ? 'continue' : 'step', address)];
      }
      case 'Z':
      case 'z':
        return [this.breakpoint(command === 'Z', args)];
      case 'D':
        return [OK, 'detach'];
      case 'k':
        return [undefined, 'kill'];
      case 'H':
        return [this.setThread(args)];
      case 'T': {
        const cpu = parseThreadId(args);
        return [cpu !== undefined && cpu >= 0 && this.target.alive(cpu) ? OK : ERR_NO_THREAD];
      }
      case 'q':
      case 'Q':
        return [this.query(text)];
      case 'v':
        if (text.startsWith('vKill')) return [OK, 'kill'];
        if (text === 'vCont?') return ['vCont;c;C;s;S'];
        if (text.startsWith('vCont;')) return [await this.vCont(text.slice('vCont;'.length))];
        return [UNSUPPORTED];
      default:
        return [UNSUPPORTED];
    }
  }

  private query(text: string): Reply {
    if (text.startsWith('qSupported')) {
      const offered = text.split(':')[1] ?? '';
      this.gdbFeatures = new Set(
        offered
          .split(';')
          .filter((f) => f.endsWith('+'))
          .map((f) => f.slice(0, -1)),
      );
      return [`PacketSize=${MAX_PACKET_SIZE.toString(16)}`, 'qXfer:features:read+', 'QStartNoAckMode+', 'swbreak+', 'hwbreak+'].join(';');
    }
    if (text === 'QStartNoAckMode') return OK;
    if (text.startsWith('qXfer:features:read:')) return this.readFeatures(text.slice('qXfer:features:read:'.length));
    if (text === 'qAttached' || text.startsWith('qAttached:')) return '1'; // attached to an existing "process": quit detaches
    if (text === 'qC') return `QC${threadId(this.generalCpu)}`;
    if (text === 'qfThreadInfo') return `m${this.liveCpus().map(threadId).join(',')}`;
    if (text === 'qsThreadInfo') return 'l';
    if (text.startsWith('qThreadExtraInfo,')) {
      const cpu = parseThreadId(text.slice('qThreadExtraInfo,'.length));
      if (cpu === undefined || cpu < 0 || cpu >= this.target.cpuCount) return ERR_NO_THREAD;
      return toHex(Buffer.from(this.target.describe(cpu), 'utf8'));
    }
    return UNSUPPORTED;
  }

  /** qXfer:features:read:ANNEX:OFFSET,LENGTH → m<more data> or l<last data> (at most MAX_PACKET_SIZE - 1 bytes). */
  private readFeatures(request: string): Reply {
    const match = /^([^:]+):([0-9a-fA-F]+),([0-9a-fA-F]+)$/.exec(request);
    if (!match) return ERR_INVALID;
    const [, annex, offHex, lenHex] = match;
    if (annex !== 'target.xml') return ERR_NOT_FOUND;
    const xml = Buffer.from(this.layout.targetXml, 'utf8');
    // As bigints first: a 16 KiB hex number must neither round nor become Infinity.
    const offset = Number(bigMin(parseHexNumber(offHex!)!, BigInt(xml.length)));
    const length = Number(bigMin(parseHexNumber(lenHex!)!, BigInt(MAX_PACKET_SIZE - 1)));
    const chunk = xml.subarray(offset, offset + length);
    const more = offset + length < xml.length;
    return Buffer.concat([Buffer.from(more ? 'm' : 'l'), chunk]);
  }

  private state(): RegisterState {
    return { regs: this.target.getRegs(this.generalCpu), sregs: this.target.getSregs(this.generalCpu) };
  }

  private commit(write: RegisterWrite | undefined): Reply {
    if (!write) return ERR_INVALID;
    if (write.regsChanged) this.target.setRegs(this.generalCpu, write.regs);
    if (write.sregsChanged) this.target.setSregs(this.generalCpu, write.sregs);
    return OK;
  }

  /**
   * gdb's behaviour shows it uses the other layout: say so once, naming the option that fixes it.
   * gdb given a target description of the other architecture than its file's warns, drops the
   * description and goes on with its own layout, so the packets show it: it asks for a register
   * past ours or writes one of another size; it reads memory at the pc its layout finds in our g
   * reply; it resumes at its own breakpoint without stepping over it (it cannot see that it
   * stopped there, so it loops); or it hangs up after the first g reply, longer than it expects.
   */
  private hint(evidence: string): void {
    if (this.hinted) return;
    this.hinted = true;
    const theirs = otherLayout(this.layout).name;
    const message =
      `${evidence}: gdb seems to use the ${theirs} register layout (it loaded a ${theirs} file), but this stub serves ` +
      `${this.layout.name}; run tskvm with --gdb-arch ${theirs} (options.gdb.arch)`;
    this.log(message);
    this.onHint(message);
  }

  /** Packets that show a gdb on the other layout, before they are handled (see hint()). */
  private lookForOtherLayout(text: string): void {
    if (text[0] !== 'm' || this.pcAsOther === undefined) return;
    const pc = this.pcAsOther;
    this.pcAsOther = undefined;
    if (parseHexNumber(text.slice(1).split(',')[0] ?? '') === pc) {
      this.hint(`gdb read memory at 0x${pc.toString(16)}, the pc that the ${otherLayout(this.layout).name} layout finds in the registers`);
    }
  }

  /** The vCPUs still there, in order. */
  private liveCpus(): number[] {
    return Array.from({ length: this.target.cpuCount }, (_, cpu) => cpu).filter((cpu) => this.target.alive(cpu));
  }

  /** Hg/Hc THREAD: which vCPU later packets mean. */
  private setThread(args: string): Reply {
    const op = args[0];
    const cpu = parseThreadId(args.slice(1));
    if ((op !== 'g' && op !== 'c') || cpu === undefined) return ERR_INVALID;
    if (cpu >= 0 && !this.target.alive(cpu)) return ERR_NO_THREAD;
    if (op === 'c') this.continueCpu = cpu;
    else if (cpu >= 0) this.generalCpu = cpu;
    else if (!this.target.alive(this.generalCpu)) this.generalCpu = this.liveCpus()[0] ?? 0; // any / all: keep ours if it lives
    return OK;
  }

  /** "ADDR,LEN" → [address, length], the length as a bigint (it is bounded by the caller). */
  private static parseRange(text: string): [bigint, bigint] | undefined {
    const parts = text.split(',');
    if (parts.length !== 2) return undefined;
    const address = parseHexNumber(parts[0]!);
    const length = parseHexNumber(parts[1]!);
    if (address === undefined || length === undefined || address >= ADDRESS_SPACE_END) return undefined;
    return [address, length];
  }

  private readMemory(args: string): Reply {
    const range = GdbStub.parseRange(args);
    if (!range) return ERR_INVALID;
    const [address] = range;
    // Two hex digits a byte must fit in one packet; gdb asks again for the rest. Nothing past 2^64.
    const length = Number(bigMin(range[1], BigInt(MAX_PACKET_SIZE / 2), ADDRESS_SPACE_END - address));
    if (length === 0) return ERR_INVALID;
    const bytes = this.target.readMemory(this.generalCpu, address, length);
    return bytes ? toHex(bytes) : ERR_FAULT;
  }

  /** M addr,len:HEX or X addr,len:BINARY (the binary is already unescaped by the decoder). */
  private writeMemory(args: string, binary: boolean, packet: Buffer): Reply {
    const colon = args.indexOf(':');
    if (colon < 0) return ERR_INVALID;
    const range = GdbStub.parseRange(args.slice(0, colon));
    if (!range) return ERR_INVALID;
    const [address, length] = range;
    // In the packet, the payload starts after the command letter and the header up to ':'; so the
    // packet's size bounds the write.
    const payload = binary ? new Uint8Array(packet.subarray(1 + colon + 1)) : fromHex(args.slice(colon + 1));
    if (!payload || BigInt(payload.length) !== length) return ERR_INVALID;
    if (length === 0n) return OK; // gdb probes X support with an empty write
    if (address + length > ADDRESS_SPACE_END) return ERR_FAULT;
    return this.target.writeMemory(this.generalCpu, address, payload) ? OK : ERR_FAULT;
  }

  /**
   * c/s [ADDR]: `c` resumes every vCPU; `s` steps the Hc thread (the Hg one when Hc names none)
   * while the others stay stopped, as gdb expects when it steps a thread over a breakpoint.
   */
  private async resumeClassic(how: ResumeAction, addressHex: string): Promise<Reply> {
    const cpu = this.continueCpu >= 0 ? this.continueCpu : this.generalCpu;
    if (addressHex) {
      const address = parseHexNumber(addressHex);
      if (address === undefined || address >= ADDRESS_SPACE_END) return ERR_INVALID;
      if (!this.released) this.target.setRegs(cpu, { ...this.target.getRegs(cpu), rip: address });
    }
    const actions = new Map<number, ResumeAction>();
    if (how === 'step') actions.set(cpu, 'step');
    else for (const live of this.liveCpus()) actions.set(live, 'continue');
    return this.resume(actions);
  }

  /**
   * vCont;ACTION[:THREAD];...: each thread takes the first action that names it or names no thread;
   * threads no action applies to stay stopped. C and S carry a signal, which a bare-metal guest
   * has no use for.
   */
  private async vCont(args: string): Promise<Reply> {
    const actions = new Map<number, ResumeAction>();
    const live = this.liveCpus();
    for (const item of args.split(';')) {
      const [action = '', thread] = item.split(':');
      const how: ResumeAction | undefined = /^(c|C[0-9a-fA-F]{2})$/.test(action)
        ? 'continue'
        : /^(s|S[0-9a-fA-F]{2})$/.test(action)
          ? 'step'
          : undefined;
      if (!how) return ERR_INVALID;
      const cpu = thread === undefined ? THREAD_ALL : parseThreadId(thread);
      if (cpu === undefined) return ERR_INVALID;
      const targets = cpu === THREAD_ALL ? live : cpu === THREAD_ANY ? live.slice(0, 1) : live.filter((c) => c === cpu);
      for (const c of targets) if (!actions.has(c)) actions.set(c, how);
    }
    return this.resume(actions);
  }

  private async resume(actions: ReadonlyMap<number, ResumeAction>): Promise<Reply> {
    if (this.released) return this.lastStop; // the guest has exited: nothing left to run
    const atBreakpoint = this.breakpointStop;
    this.breakpointStop = undefined;
    this.pcAsOther = undefined;
    if (
      atBreakpoint &&
      actions.get(atBreakpoint.cpu) === 'continue' &&
      this.execBreakpoints.has(atBreakpoint.address) &&
      this.target.getRegs(atBreakpoint.cpu).rip === atBreakpoint.address
    ) {
      this.hint(`gdb continued at its breakpoint at 0x${atBreakpoint.address.toString(16)} without stepping over it`);
    }
    this.running = this.target.resume(actions);
    let event: StopEvent;
    try {
      event = await this.running;
    } finally {
      this.running = undefined;
    }
    const reason = event.reason;
    if (reason.kind === 'exited' || reason.kind === 'crashed') {
      this.released = true;
      if (reason.kind === 'crashed') this.log(`guest crashed: ${reason.description}`);
    } else {
      this.generalCpu = event.cpu; // gdb makes the thread that stopped current
      if (reason.kind === 'breakpoint') this.breakpointStop = { cpu: event.cpu, address: reason.address };
    }
    this.lastStop = stopReply(event, this.gdbFeatures.has('hwbreak'));
    return this.lastStop;
  }

  /** Z/z TYPE,ADDR,KIND: KIND is the length (1 for an x86 breakpoint, 1/2/4/8 for a watchpoint). */
  private breakpoint(insert: boolean, args: string): Reply {
    const [typeText = '', addrHex = '', kindHex = ''] = args.split(';')[0]!.split(',');
    const kind = Z_KINDS[Number(typeText)];
    const address = parseHexNumber(addrHex);
    const length = parseHexNumber(kindHex);
    if (!/^[0-4]$/.test(typeText) || !kind || address === undefined || length === undefined) return ERR_INVALID;
    if (address >= ADDRESS_SPACE_END || length > BigInt(Number.MAX_SAFE_INTEGER)) return ERR_INVALID;
    // Execution breakpoints cover one instruction start whatever gdb's "kind" says.
    const span = kind === 'exec' ? 1 : Number(length);
    if (insert) {
      if (!this.target.insertBreakpoint(kind, address, span)) return ERR_NO_SPACE;
      if (kind === 'exec') this.execBreakpoints.add(address);
      return OK;
    }
    if (!this.target.removeBreakpoint(kind, address, span)) return ERR_NOT_FOUND;
    if (kind === 'exec') this.execBreakpoints.delete(address);
    return OK;
  }
}

/** The pc in a g reply as `layout` reads it; undefined when the reply is too short for it. */
function pcOf(layout: RegisterLayout, reply: string): bigint | undefined {
  const pcName = layout.name === 'x86-64' ? 'rip' : 'eip';
  let at = 0;
  for (const reg of layout.registers) {
    const width = reg.bitsize / 4;
    if (reg.name === pcName) return at + width <= reply.length ? fromLittleEndianHex(reply.slice(at, at + width)) : undefined;
    at += width;
  }
  return undefined;
}

function bigMin(first: bigint, ...rest: bigint[]): bigint {
  return rest.reduce((min, n) => (n < min ? n : min), first);
}

export interface GdbServerOptions extends GdbStubOptions {
  /** Called with the real port once listening (useful with port 0). */
  onListening?: (port: number) => void;
  /** Awaited when gdb connects, before the first packet is read: e.g. stop a running target. */
  beforeSession?: () => Promise<void>;
}

export interface GdbServer {
  port: number;
  /** Stops listening and drops the connection, if any; settles once the target is released. */
  close(): Promise<void>;
  /** Settles when gdb has disconnected (after D, k, the guest's end, or a dropped connection). */
  connection: Promise<void>;
}

const LOOPBACK = '127.0.0.1';

/**
 * Listens on 127.0.0.1:port (loopback only: the protocol has no authentication and can write guest
 * memory) and serves exactly one gdb connection; later connections are refused.
 */
export async function startGdbServer(port: number, target: DebugTarget, options: GdbServerOptions = {}): Promise<GdbServer> {
  const log = options.log ?? (() => {});
  const server = net.createServer();
  let socket: net.Socket | undefined;
  let resolveConnection!: () => void;
  const connection = new Promise<void>((resolve) => {
    resolveConnection = resolve;
  });

  server.on('connection', (incoming) => {
    if (socket) {
      incoming.destroy();
      return;
    }
    socket = incoming;
    server.close(); // one connection: stop accepting more
    incoming.setNoDelay(true);
    log(`gdb connected from ${incoming.remoteAddress}:${incoming.remotePort}`);
    // Hold gdb's first packets until the target is ready for them (paused: 'data' waits).
    incoming.pause();
    void (options.beforeSession?.() ?? Promise.resolve()).then(() => {
      const stub = new GdbStub(incoming, target, {
        log,
        ...(options.arch ? { arch: options.arch } : {}),
        ...(options.onHint ? { onHint: options.onHint } : {}),
      });
      incoming.resume();
      void stub.done.then(() => {
        log('gdb disconnected');
        resolveConnection();
      });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, LOOPBACK, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const realPort = typeof address === 'object' && address ? address.port : port;
  options.onListening?.(realPort);

  return {
    port: realPort,
    connection,
    async close() {
      if (server.listening) server.close();
      if (socket) socket.destroy();
      else resolveConnection();
      await connection;
    },
  };
}
