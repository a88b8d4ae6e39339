/**
 * The GDB remote stub: serves one gdb connection (all-stop, one thread) against a DebugTarget.
 *
 * Packets: qSupported, qXfer:features:read (target.xml), QStartNoAckMode, ?, g/G, p/P, m/M/X,
 * c/s (and C/S, signal ignored), Z0–Z4/z0–z4, D, k/vKill, qAttached, qC, qfThreadInfo/
 * qsThreadInfo, H, T; anything else gets the empty reply ("not supported"), as the protocol asks.
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
import type { DebugTarget, HwBreakpointKind, StopReason } from './target.js';
import {
  ACK_BYTES,
  MAX_PACKET_SIZE,
  MAX_UNTERMINATED_BYTES,
  NAK_BYTES,
  PacketDecoder,
  encodePacket,
  fromHex,
  parseHexNumber,
  toHex,
  type PacketEvent,
  type PacketRejection,
} from './packet.js';
import {
  layoutForMode,
  readAllRegisters,
  readRegister,
  writeAllRegisters,
  writeRegister,
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
/** Our one thread's id (gdb's thread-id syntax is hex). */
const THREAD_ID = '01';
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
const OK = 'OK';
const UNSUPPORTED = '';

/** Z-packet types: 0 software, 1 hardware breakpoint, 2 write, 3 read, 4 access watchpoint. */
const Z_KINDS: readonly HwBreakpointKind[] = ['exec', 'exec', 'write', 'read', 'access'];
const WATCH_REASON = { write: 'watch', read: 'rwatch', access: 'awatch' } as const;

const LOG_PACKET_CHARS = 200;

export interface GdbStubOptions {
  /** Receives a line per packet in each direction and every diagnostic. */
  log?: (line: string) => void;
}

type Reply = string | Buffer | undefined;

/** What ends the session from our side after the reply is sent. */
type Ending = 'detach' | 'kill' | undefined;

function hexByte(value: number): string {
  return value.toString(16).padStart(2, '0');
}

function stopReply(reason: StopReason, hwbreakReasons: boolean): string {
  const thread = `thread:${THREAD_ID};`;
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
  private running: Promise<StopReason> | undefined;
  /** The `?` reply; the connection starts at a stop gdb should see as SIGTRAP, as QEMU reports it. */
  private lastStop = `T${hexByte(SIGTRAP)}thread:${THREAD_ID};`;
  /** Fixed at first use: gdb cannot change register sizes mid-session. */
  private layoutCache: RegisterLayout | undefined;
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
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', (err) => this.log(`gdb connection error: ${err.message}`));
    stream.on('close', () => void this.onClose());
  }

  private get layout(): RegisterLayout {
    this.layoutCache ??= layoutForMode(this.target.mode());
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
      case 'g':
        return [readAllRegisters(this.layout, this.state())];
      case 'G':
        return [this.commit(writeAllRegisters(this.layout, args, this.state()))];
      case 'p': {
        const regnum = parseHexNumber(args);
        const value = regnum === undefined ? undefined : readRegister(this.layout, Number(regnum), this.state());
        return [value ?? ERR_INVALID];
      }
      case 'P': {
        const [num = '', value = ''] = args.split('=');
        const regnum = parseHexNumber(num);
        if (regnum === undefined) return [ERR_INVALID];
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
        return [await this.resume(command === 'c' ? 'continue' : 'step', args)];
      case 'C':
      case 'S': {
        // Csig[;addr]: there are no signals to deliver to a bare-metal guest; only the address counts.
        const address = args.split(';')[1] ?? '';
        return [await this.resume(command === 'C' ? 'continue' : 'step', address)];
      }
      case 'Z':
      case 'z':
        return [this.breakpoint(command === 'Z', args)];
      case 'D':
        return [OK, 'detach'];
      case 'k':
        return [undefined, 'kill'];
      case 'H':
      case 'T':
        return [OK];
      case 'q':
      case 'Q':
        return [this.query(text)];
      case 'v':
        if (text.startsWith('vKill')) return [OK, 'kill'];
        return [UNSUPPORTED]; // vCont? included: gdb falls back to c/s
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
    if (text === 'qC') return `QC${THREAD_ID}`;
    if (text === 'qfThreadInfo') return `m${THREAD_ID}`;
    if (text === 'qsThreadInfo') return 'l';
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
    return { regs: this.target.getRegs(), sregs: this.target.getSregs() };
  }

  private commit(write: RegisterWrite | undefined): Reply {
    if (!write) return ERR_INVALID;
    if (write.regsChanged) this.target.setRegs(write.regs);
    if (write.sregsChanged) this.target.setSregs(write.sregs);
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
    const bytes = this.target.readMemory(address, length);
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
    return this.target.writeMemory(address, payload) ? OK : ERR_FAULT;
  }

  private async resume(how: 'continue' | 'step', addressHex: string): Promise<Reply> {
    if (this.released) return this.lastStop; // the guest has exited: nothing left to run
    if (addressHex) {
      const address = parseHexNumber(addressHex);
      if (address === undefined || address >= ADDRESS_SPACE_END) return ERR_INVALID;
      this.target.setRegs({ ...this.target.getRegs(), rip: address });
    }
    this.running = this.target.resume(how);
    let reason: StopReason;
    try {
      reason = await this.running;
    } finally {
      this.running = undefined;
    }
    if (reason.kind === 'exited' || reason.kind === 'crashed') {
      this.released = true;
      if (reason.kind === 'crashed') this.log(`guest crashed: ${reason.description}`);
    }
    this.lastStop = stopReply(reason, this.gdbFeatures.has('hwbreak'));
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
    if (insert) return this.target.insertBreakpoint(kind, address, span) ? OK : ERR_NO_SPACE;
    return this.target.removeBreakpoint(kind, address, span) ? OK : ERR_NOT_FOUND;
  }
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
      const stub = new GdbStub(incoming, target, { log });
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
