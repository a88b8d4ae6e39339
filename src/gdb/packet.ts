/**
 * GDB Remote Serial Protocol framing: `$data#cs` packets, `+`/`-` acknowledgements, the Ctrl-C
 * byte, and the escaping/run-length rules of gdb's "Overview" section. No I/O: the decoder turns
 * received bytes into events and the encoder turns a payload into wire bytes; the stub writes.
 */

const PACKET_START = 0x24; // '$'
const PACKET_END = 0x23; // '#'
const ESCAPE = 0x7d; // '}'
const RUN_LENGTH = 0x2a; // '*'
const ESCAPE_XOR = 0x20;
/** A run-length count byte n repeats the previous byte n - 29 more times (gdb's encoding). */
const RUN_LENGTH_BIAS = 29;
const ACK = 0x2b; // '+'
const NAK = 0x2d; // '-'
/** gdb sends a bare 0x03 (Ctrl-C) outside any packet to interrupt a running target. */
export const INTERRUPT_BYTE = 0x03;
const CHECKSUM_DIGITS = 2;

export type PacketEvent =
  /** A whole packet whose checksum matched; `data` is unescaped and run-length expanded. */
  | { type: 'packet'; data: Buffer }
  /** A whole packet whose checksum did not match (the peer should be sent '-'). */
  | { type: 'bad-checksum' }
  | { type: 'interrupt' }
  | { type: 'ack' }
  | { type: 'nak' };

type DecoderState = 'idle' | 'data' | 'checksum';

/** Streaming decoder: bytes may arrive split anywhere, several packets per chunk. */
export class PacketDecoder {
  private state: DecoderState = 'idle';
  private raw: number[] = [];
  private sum = 0;
  private checksumText = '';

  feed(chunk: Uint8Array): PacketEvent[] {
    const events: PacketEvent[] = [];
    for (const byte of chunk) {
      const event = this.step(byte);
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
      case 'data':
        if (byte === PACKET_END) {
          this.state = 'checksum';
          this.checksumText = '';
        } else if (byte === PACKET_START) {
          this.begin(); // a '$' inside a packet restarts it: the previous one was truncated
        } else {
          this.raw.push(byte);
          this.sum = (this.sum + byte) & 0xff;
        }
        return undefined;
      case 'checksum': {
        this.checksumText += String.fromCharCode(byte);
        if (this.checksumText.length < CHECKSUM_DIGITS) return undefined;
        this.state = 'idle';
        const expected = parseInt(this.checksumText, 16);
        if (!/^[0-9a-fA-F]{2}$/.test(this.checksumText) || expected !== this.sum) return { type: 'bad-checksum' };
        return { type: 'packet', data: unescapePayload(this.raw) };
      }
    }
  }

  private begin(): void {
    this.state = 'data';
    this.raw = [];
    this.sum = 0;
  }
}

/** Undoes '}' escaping and expands 'X*n' run-length sequences. */
export function unescapePayload(raw: readonly number[]): Buffer {
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i]!;
    if (byte === ESCAPE && i + 1 < raw.length) {
      out.push(raw[++i]! ^ ESCAPE_XOR);
    } else if (byte === RUN_LENGTH && i + 1 < raw.length && out.length > 0) {
      const repeat = raw[++i]! - RUN_LENGTH_BIAS;
      const last = out[out.length - 1]!;
      for (let n = 0; n < repeat; n++) out.push(last);
    } else {
      out.push(byte);
    }
  }
  return Buffer.from(out);
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
