/**
 * GDB Remote Serial Protocol framing: `$data#cs` packets, `+`/`-` acknowledgements, the Ctrl-C
 * byte, and the escaping/run-length rules of gdb's "Overview" section. No I/O: the decoder turns
 * received bytes into events and the encoder turns a payload into wire bytes; the stub writes.
 *
 * Bounds: a packet's data (between `$` and `#`, as on the wire) and its decoded form (escapes
 * undone, run-length runs expanded) are at most MAX_PACKET_SIZE bytes each, the size the stub
 * advertises in qSupported's PacketSize (gdb never sends more). The decoder holds one fixed
 * buffer of that size: a longer packet is counted but not stored and is reported, once its `#cs`
 * arrives, as rejected ('too-long'); data that runs on for MAX_UNTERMINATED_BYTES without a `#`
 * is an 'overrun' (no gdb does that: the stub drops the connection).
 */

const PACKET_START = 0x24; // '$'
const PACKET_END = 0x23; // '#'
const ESCAPE = 0x7d; // '}'
const RUN_LENGTH = 0x2a; // '*'
const ESCAPE_XOR = 0x20;
/** A run-length count byte n repeats the previous byte n - 29 more times (gdb's encoding). */
const RUN_LENGTH_BIAS = 29;
/** Count bytes are printable: ' ' (3 more) to '~' (97 more); gdb's "Overview" forbids the rest. */
const RUN_LENGTH_MIN_COUNT = 0x20;
const RUN_LENGTH_MAX_COUNT = 0x7e;
const ACK = 0x2b; // '+'
const NAK = 0x2d; // '-'
/** gdb sends a bare 0x03 (Ctrl-C) outside any packet to interrupt a running target. */
export const INTERRUPT_BYTE = 0x03;
const CHECKSUM_DIGITS = 2;

/**
 * Largest packet accepted, in bytes of data as on the wire and again once decoded; advertised as
 * qSupported's PacketSize. gdb caps it at 16 KiB itself (MAX_REMOTE_PACKET_SIZE) and reads
 * memory in chunks that fit: m replies carry at most MAX_PACKET_SIZE / 2 bytes as hex.
 */
export const MAX_PACKET_SIZE = 0x4000;
/** Data without a terminating `#` beyond this is not a packet but a flood: an 'overrun'. */
export const MAX_UNTERMINATED_BYTES = 4 * MAX_PACKET_SIZE;

/** Why a complete packet was refused: longer than MAX_PACKET_SIZE, or a bad escape or run-length sequence. */
export type PacketRejection = 'too-long' | 'malformed';

export type PacketEvent =
  /** A whole packet whose checksum matched; `data` is unescaped and run-length expanded. */
  | { type: 'packet'; data: Buffer }
  /** A whole packet whose checksum did not match (the peer should be sent '-'). */
  | { type: 'bad-checksum' }
  /** A whole packet (checksum matched) that cannot be handed on: the peer should get an error reply. */
  | { type: 'rejected'; why: PacketRejection }
  /** MAX_UNTERMINATED_BYTES of packet data and no end in sight; the decoder then ignores bytes until the next `$`. */
  | { type: 'overrun' }
  | { type: 'interrupt' }
  | { type: 'ack' }
  | { type: 'nak' };

/** 'discard': inside a packet past MAX_PACKET_SIZE, counting bytes without storing them; 'flood': after an overrun. */
type DecoderState = 'idle' | 'data' | 'discard' | 'flood' | 'checksum';

/** Streaming decoder: bytes may arrive split anywhere, several packets per chunk. */
export class PacketDecoder {
  private state: DecoderState = 'idle';
  /** The packet's raw data so far; never more than MAX_PACKET_SIZE bytes. */
  private readonly raw = new Uint8Array(MAX_PACKET_SIZE);
  private length = 0;
  /** Data bytes of the current packet, stored or not. */
  private seen = 0;
  private sum = 0;
  private checksumText = '';

  /** Bytes of packet data held now (at most MAX_PACKET_SIZE). */
  get buffered(): number {
    return this.length;
  }

  feed(chunk: Uint8Array): PacketEvent[] {
    const events: PacketEvent[] = [];
    for (let i = 0; i < chunk.length; i++) {
      if (this.state === 'flood') {
        // Skip the flood at memchr speed: only a '$' means anything now.
        i = chunk.indexOf(PACKET_START, i);
        if (i < 0) break;
      }
      const event = this.step(chunk[i]!);
      if (event) events.push(event);
    }
    return events;
  }

  private step(byte: number): PacketEvent | undefined {
    switch (this.state) {
      case 'idle':
        if (byte === PACKET_START) this.begin();
        else if (byte === INTERRUPT_BYTE) return { type: 'interrupt' };
        else if (byte === ACK) return { type: 'ack' };
        else if (byte === NAK) return { type: 'nak' };
        // Anything else between packets is line noise; gdb ignores it too.
        return undefined;
      case 'flood':
        if (byte === PACKET_START) this.begin();
        return undefined;
      case 'data':
      case 'discard':
        if (byte === PACKET_END) {
          this.state = 'checksum';
          this.checksumText = '';
        } else if (byte === PACKET_START) {
          this.begin(); // a '$' inside a packet restarts it: the previous one was truncated
        } else {
          return this.take(byte);
        }
        return undefined;
      case 'checksum': {
        this.checksumText += String.fromCharCode(byte);
        if (this.checksumText.length < CHECKSUM_DIGITS) return undefined;
        const stored = this.raw.subarray(0, this.length);
        const tooLong = this.seen > MAX_PACKET_SIZE;
        this.state = 'idle';
        this.length = 0;
        const expected = parseInt(this.checksumText, 16);
        if (!/^[0-9a-fA-F]{2}$/.test(this.checksumText) || expected !== this.sum) return { type: 'bad-checksum' };
        if (tooLong) return { type: 'rejected', why: 'too-long' };
        const data = unescapePayload(stored);
        return typeof data === 'string' ? { type: 'rejected', why: data } : { type: 'packet', data };
      }
    }
  }

  /** One byte of packet data: stored while there is room, then only counted and summed. */
  private take(byte: number): PacketEvent | undefined {
    this.sum = (this.sum + byte) & 0xff;
    this.seen++;
    if (this.state === 'data') {
      if (this.length < MAX_PACKET_SIZE) {
        this.raw[this.length++] = byte;
        return undefined;
      }
      this.state = 'discard';
      this.length = 0; // the stored part is of no use now
    }
    if (this.seen < MAX_UNTERMINATED_BYTES) return undefined;
    this.state = 'flood';
    return { type: 'overrun' };
  }

  private begin(): void {
    this.state = 'data';
    this.length = 0;
    this.seen = 0;
    this.sum = 0;
  }
}

/**
 * Undoes '}' escaping and expands 'X*n' run-length sequences, into at most `limit` bytes.
 * 'too-long' when the result would be longer; 'malformed' for a '}' or '*' with nothing after
 * it, a '*' with nothing before it, or a count byte outside ' '..'~'. The length is found (and
 * the sequences checked) before anything is allocated.
 */
export function unescapePayload(raw: ArrayLike<number>, limit = MAX_PACKET_SIZE): Buffer | PacketRejection {
  const decoded = decodedLength(raw);
  if (typeof decoded === 'string') return decoded;
  if (decoded > limit) return 'too-long';
  const out = Buffer.allocUnsafe(decoded);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i]!;
    if (byte === ESCAPE) {
      out[n++] = raw[++i]! ^ ESCAPE_XOR;
    } else if (byte === RUN_LENGTH) {
      const repeat = raw[++i]! - RUN_LENGTH_BIAS;
      out.fill(out[n - 1]!, n, n + repeat);
      n += repeat;
    } else {
      out[n++] = byte;
    }
  }
  return out;
}

/** How long `raw` is once decoded, or why it cannot be decoded. */
function decodedLength(raw: ArrayLike<number>): number | 'malformed' {
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i]!;
    if (byte === ESCAPE) {
      if (++i >= raw.length) return 'malformed';
      n++;
    } else if (byte === RUN_LENGTH) {
      const count = raw[++i];
      if (n === 0 || count === undefined || count < RUN_LENGTH_MIN_COUNT || count > RUN_LENGTH_MAX_COUNT) return 'malformed';
      n += count - RUN_LENGTH_BIAS;
    } else {
      n++;
    }
  }
  return n;
}

/** Bytes that cannot appear raw inside a packet. */
function needsEscape(byte: number): boolean {
  return byte === PACKET_START || byte === PACKET_END || byte === ESCAPE || byte === RUN_LENGTH;
}

/** Escapes a payload for the wire; the result is what the checksum covers. */
export function escapePayload(payload: Uint8Array): Buffer {
  const out: number[] = [];
  for (const byte of payload) {
    if (needsEscape(byte)) out.push(ESCAPE, byte ^ ESCAPE_XOR);
    else out.push(byte);
  }
  return Buffer.from(out);
}

export function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (const byte of bytes) sum = (sum + byte) & 0xff;
  return sum;
}

/** Frames a payload (text is taken as latin1, so binary data survives) as `$…#cs`. */
export function encodePacket(payload: string | Uint8Array): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  const body = escapePayload(bytes);
  const trailer = `#${checksum(body).toString(16).padStart(CHECKSUM_DIGITS, '0')}`;
  return Buffer.concat([Buffer.from('$'), body, Buffer.from(trailer)]);
}

export const ACK_BYTES = Buffer.from('+');
export const NAK_BYTES = Buffer.from('-');

// ---- hex helpers ----

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Parses an even-length hex string; undefined if it is not one. */
export function fromHex(text: string): Uint8Array | undefined {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) return undefined;
  return new Uint8Array(Buffer.from(text, 'hex'));
}

/** A register value as gdb sends it: `bytes` bytes, little-endian, hex. */
export function toLittleEndianHex(value: bigint, bytes: number): string {
  let v = BigInt.asUintN(bytes * 8, value);
  let out = '';
  for (let i = 0; i < bytes; i++) {
    out += Number(v & 0xffn)
      .toString(16)
      .padStart(2, '0');
    v >>= 8n;
  }
  return out;
}

/** The inverse of toLittleEndianHex; undefined on malformed hex. */
export function fromLittleEndianHex(text: string): bigint | undefined {
  const bytes = fromHex(text);
  if (!bytes) return undefined;
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]!);
  return value;
}

/** Parses a big-endian hex number as used in packet arguments (addresses, lengths). */
export function parseHexNumber(text: string): bigint | undefined {
  if (!/^[0-9a-fA-F]+$/.test(text)) return undefined;
  return BigInt(`0x${text}`);
}
