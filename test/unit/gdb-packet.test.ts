import { describe, expect, it } from 'vitest';
import {
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
    expect(unescapePayload([...bytes('a}\x04b}]')]).toString('latin1')).toBe('a$b}');
    // "0* " is '0' repeated 32 - 29 = 3 more times.
    expect(unescapePayload([...bytes('0* ')]).toString()).toBe('0000');
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
