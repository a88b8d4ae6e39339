import { describe, expect, it } from 'vitest';
import {
  MAX_PACKET_SIZE,
  MAX_UNTERMINATED_BYTES,
  PacketDecoder,
  checksum,
  encodePacket,
  escapePayload,
  fromHex,
  fromLittleEndianHex,
  parseHexNumber,
  toHex,
  toLittleEndianHex,
  unescapePayload,
} from '../../src/gdb/packet.js';

const bytes = (text: string) => Buffer.from(text, 'latin1');
const MiB = 2 ** 20;

/** `$body#cs` with the right checksum, body taken as wire bytes (nothing escaped). */
function framed(body: Uint8Array): Buffer {
  return Buffer.concat([bytes('$'), body, bytes(`#${checksum(body).toString(16).padStart(2, '0')}`)]);
}

/** Heap and ArrayBuffer bytes in use now: what a decoder that stored a flood would grow. */
function memoryInUse(): number {
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

function packets(events: ReturnType<PacketDecoder['feed']>): string[] {
  return events.flatMap((e) => (e.type === 'packet' ? [e.data.toString('latin1')] : []));
}

describe('RSP packet encoding', () => {
  it('frames a payload with a two-digit modulo-256 checksum', () => {
    // gdb's own example: $OK#9a
    expect(encodePacket('OK').toString()).toBe('$OK#9a');
    expect(encodePacket('').toString()).toBe('$#00');
    expect(checksum(bytes('g'))).toBe(0x67);
  });

  it('escapes $ # } * as } followed by the byte xor 0x20', () => {
    expect(escapePayload(bytes('a$b#c}d*e')).toString('latin1')).toBe('a}\x04b}\x03c}]d}\x0ae');
    const framed = encodePacket(Buffer.from([0x24, 0x7d]));
    expect(framed.toString('latin1')).toBe(`$}\x04}]#${checksum(bytes('}\x04}]')).toString(16).padStart(2, '0')}`);
  });
});

describe('PacketDecoder', () => {
  it('decodes a packet with a good checksum and reports acks and naks', () => {
    const decoder = new PacketDecoder();
    const events = decoder.feed(bytes('+$g#67-'));
    expect(events).toEqual([{ type: 'ack' }, { type: 'packet', data: bytes('g') }, { type: 'nak' }]);
  });

  it('reports a bad checksum instead of a packet', () => {
    expect(new PacketDecoder().feed(bytes('$g#68'))).toEqual([{ type: 'bad-checksum' }]);
    expect(new PacketDecoder().feed(bytes('$g#zz'))).toEqual([{ type: 'bad-checksum' }]);
  });

  it('reassembles packets split across chunks and several in one chunk', () => {
    const decoder = new PacketDecoder();
    const wire = `${encodePacket('qSupported:swbreak+;hwbreak+').toString()}${encodePacket('?').toString()}`;
    const seen: string[] = [];
    for (const ch of wire) seen.push(...packets(decoder.feed(bytes(ch))));
    expect(seen).toEqual(['qSupported:swbreak+;hwbreak+', '?']);
  });

  it('reports a Ctrl-C byte outside packets but not inside one', () => {
    const decoder = new PacketDecoder();
    expect(decoder.feed(Buffer.from([0x03]))).toEqual([{ type: 'interrupt' }]);
    // 0x03 inside binary packet data is data, not an interrupt.
    const framed = encodePacket(Buffer.from([0x58, 0x03]));
    expect(decoder.feed(framed)).toEqual([{ type: 'packet', data: Buffer.from([0x58, 0x03]) }]);
  });

  it('unescapes } sequences and expands run-length encoding', () => {
    expect(unescapePayload(bytes('a}\x04b}]'))).toEqual(bytes('a$b}'));
    // "0* " is '0' repeated 32 - 29 = 3 more times; an escaped byte can be repeated too.
    expect(unescapePayload(bytes('0* '))).toEqual(bytes('0000'));
    expect(unescapePayload(bytes('}\x04*!x'))).toEqual(bytes('$$$$$x'));
    const decoder = new PacketDecoder();
    const body = 'X}\x03';
    const wire = `$${body}#${checksum(bytes(body)).toString(16).padStart(2, '0')}`;
    expect(packets(decoder.feed(bytes(wire)))).toEqual(['X#']);
  });

  it('round-trips binary payloads through encodePacket', () => {
    const payload = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const events = new PacketDecoder().feed(encodePacket(payload));
    expect(events).toEqual([{ type: 'packet', data: payload }]);
  });

  it('restarts on a $ inside a packet (the earlier one was cut off)', () => {
    expect(packets(new PacketDecoder().feed(bytes('$gar$g#67')))).toEqual(['g']);
  });
});

describe('PacketDecoder bounds', () => {
  it('accepts a packet of exactly MAX_PACKET_SIZE bytes and rejects one byte more, storing no more than the bound', () => {
    const decoder = new PacketDecoder();
    const full = Buffer.alloc(MAX_PACKET_SIZE, 'a');
    expect(decoder.feed(framed(full))).toEqual([{ type: 'packet', data: full }]);
    const over = Buffer.alloc(MAX_PACKET_SIZE + 1, 'a');
    const wire = framed(over);
    expect(decoder.feed(wire.subarray(0, wire.length - 3))).toEqual([]);
    expect(decoder.buffered).toBe(0); // past the bound nothing is kept
    expect(decoder.feed(wire.subarray(wire.length - 3))).toEqual([{ type: 'rejected', why: 'too-long' }]);
    // A bad checksum is still a bad checksum (the peer resends), and the decoder carries on.
    expect(decoder.feed(Buffer.concat([bytes('$'), over, bytes('#00')]))).toEqual([{ type: 'bad-checksum' }]);
    expect(packets(decoder.feed(bytes('$g#67')))).toEqual(['g']);
  });

  it('reports a 100 MiB unterminated packet once as an overrun without storing it', () => {
    const decoder = new PacketDecoder();
    const chunk = Buffer.alloc(MiB, 'a');
    const before = memoryInUse();
    const events = [...decoder.feed(bytes('$'))];
    let most = 0;
    for (let i = 0; i < 100; i++) {
      events.push(...decoder.feed(chunk));
      most = Math.max(most, decoder.buffered);
    }
    expect(events).toEqual([{ type: 'overrun' }]);
    expect(most).toBeLessThanOrEqual(MAX_PACKET_SIZE);
    // Before the bound, this cost 2.2 GB; the decoder's own buffer is 16 KiB.
    expect(memoryInUse() - before).toBeLessThan(32 * MiB);
    // The flood's '#' and checksum are line noise; the next '$' starts a packet again.
    expect(packets(decoder.feed(bytes('#00$g#67')))).toEqual(['g']);
  });

  it('refuses run-length runs that expand past MAX_PACKET_SIZE, before allocating them', () => {
    // 1 MB of "0*~" (97 more zeros each) once cost 945 MB; now it is an overrun long before its end
    // (the stub drops the connection), and 40 KB of it, terminated, is too long on the wire.
    const huge = Buffer.from('0*~'.repeat(Math.floor(MiB / 3)), 'latin1');
    const before = memoryInUse();
    expect(new PacketDecoder().feed(framed(huge))).toEqual([{ type: 'overrun' }]);
    expect(new PacketDecoder().feed(framed(huge.subarray(0, 40_000)))).toEqual([{ type: 'rejected', why: 'too-long' }]);
    // Short on the wire, long once expanded: 169 runs of 98 bytes is more than 16 KiB.
    const runs = Buffer.from('0*~'.repeat(Math.ceil(MAX_PACKET_SIZE / 98)), 'latin1');
    expect(runs.length).toBeLessThan(MAX_PACKET_SIZE);
    expect(new PacketDecoder().feed(framed(runs))).toEqual([{ type: 'rejected', why: 'too-long' }]);
    expect(memoryInUse() - before).toBeLessThan(32 * MiB);
    // Exactly at the bound is fine.
    const exact = Buffer.concat([bytes('0*~'.repeat(MAX_PACKET_SIZE / 98 - 1)), Buffer.alloc((MAX_PACKET_SIZE % 98) + 98, '0')]);
    const [event] = new PacketDecoder().feed(framed(exact));
    expect(event?.type === 'packet' && event.data.length).toBe(MAX_PACKET_SIZE);
    expect(unescapePayload(bytes('ab*!'), 5)).toBe('too-long');
    expect(unescapePayload(bytes('ab*!'), 6)).toEqual(bytes('abbbbb'));
  });

  it('refuses malformed escape and run-length sequences', () => {
    expect(unescapePayload(bytes('*!'))).toBe('malformed'); // nothing to repeat
    expect(unescapePayload(bytes('a*'))).toBe('malformed'); // no count
    expect(unescapePayload(bytes('a}'))).toBe('malformed'); // nothing escaped
    expect(unescapePayload(bytes('a*\x1f'))).toBe('malformed'); // count below ' '
    expect(unescapePayload(Buffer.from([0x61, 0x2a, 0xff]))).toBe('malformed'); // count above '~'
    expect(new PacketDecoder().feed(framed(bytes('m0,4*\x7f')))).toEqual([{ type: 'rejected', why: 'malformed' }]);
  });

  it('counts MAX_UNTERMINATED_BYTES from the packet start, across a restart', () => {
    const decoder = new PacketDecoder();
    // A '$' restarts the count: two floods just under the bound are no overrun.
    const under = Buffer.alloc(MAX_UNTERMINATED_BYTES - 1, 'a');
    expect(decoder.feed(Buffer.concat([bytes('$'), under, bytes('$'), under]))).toEqual([]);
    expect(decoder.feed(bytes('a'))).toEqual([{ type: 'overrun' }]);
  });
});

describe('hex helpers', () => {
  it('converts bytes and little-endian register values', () => {
    expect(toHex(new Uint8Array([0, 0xab, 0x10]))).toBe('00ab10');
    expect(fromHex('00ab10')).toEqual(new Uint8Array([0, 0xab, 0x10]));
    expect(fromHex('0')).toBeUndefined();
    expect(fromHex('zz')).toBeUndefined();
    expect(toLittleEndianHex(0x12345678n, 4)).toBe('78563412');
    expect(toLittleEndianHex(-1n, 2)).toBe('ffff');
    expect(fromLittleEndianHex('78563412')).toBe(0x12345678n);
    expect(fromLittleEndianHex('0000000000000080')).toBe(0x8000000000000000n);
    expect(parseHexNumber('ffff800000000000')).toBe(0xffff800000000000n);
    expect(parseHexNumber('')).toBeUndefined();
  });
});
