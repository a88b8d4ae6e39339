/**
 * The expect-style serial console without KVM: matches in order, `before` is what came between,
 * split and multi-byte output, time-outs that show the output, the run ending, lines(), the bound
 * on kept output, and input (the caller's first, then write()s) reaching the machine's queue and
 * the `input` stream.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ExpectTimeoutError, MAX_CONSOLE_OUTPUT, SerialConsole } from '../../src/io/serial-console.js';

const bytes = (text: string): Buffer => Buffer.from(text);

describe('SerialConsole', () => {
  it('matches strings and RegExps in order, with what came before', async () => {
    const c = new SerialConsole('COM1');
    c.feed(bytes('boot ok\nlogin: '));
    expect(await c.expect('ok')).toEqual({ match: 'ok', groups: null, before: 'boot ' });
    const m = await c.expect(/(\w+): $/);
    expect([m.match, m.groups?.[1], m.before]).toEqual(['login: ', 'login', '\n']);
    const later = c.expect(/= (\d+)/g); // the g flag does not make it stateful
    c.feed(bytes('6*7 = 4'));
    c.feed(bytes('2\n'));
    expect((await later).groups?.[1]).toBe('42');
  });

  it('decodes UTF-8 split across chunks', async () => {
    const c = new SerialConsole('COM1');
    const euro = bytes('€');
    c.feed(euro.subarray(0, 1));
    c.feed(euro.subarray(1));
    expect((await c.expect('€')).match).toBe('€');
  });

  it('times out with the output it saw, and fails at once when the run has ended', async () => {
    const c = new SerialConsole('COM2');
    c.feed(bytes('Ready>'));
    const err = await c.expect('$ ', { timeoutMs: 30 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExpectTimeoutError);
    expect((err as ExpectTimeoutError).code).toBe('EEXPECT');
    expect((err as Error).message).toMatch(/^COM2: expected \$ , but 30 ms passed; the output since the last match was:\nReady>$/);
    const waiting = c.expect('never');
    c.close('timeout');
    await expect(waiting).rejects.toThrow(/the run ended \(timeout\)/);
  });

  it('yields lines as they complete and ends with the run', async () => {
    const c = new SerialConsole('COM1');
    c.feed(bytes('old line\n'));
    const lines = c.lines();
    c.feed(bytes('one\r\ntw'));
    c.feed(bytes('o\npartial'));
    expect((await lines.next()).value).toBe('one');
    expect((await lines.next()).value).toBe('two');
    c.close('halt');
    expect((await lines.next()).done).toBe(true);
  });

  it('keeps the last MAX_CONSOLE_OUTPUT characters', () => {
    const c = new SerialConsole('COM1');
    c.feed(Buffer.alloc(MAX_CONSOLE_OUTPUT, 'a'));
    c.feed(bytes('tail'));
    expect(c.output.length).toBe(MAX_CONSOLE_OUTPUT);
    expect(c.output.endsWith('tail')).toBe(true);
  });

  it('feeds the caller input first, then write()s, into the guest stream; its EOF ends nothing', async () => {
    const source = new PassThrough();
    const c = new SerialConsole('COM1', source);
    const got: string[] = [];
    c.input.on('data', (chunk: Buffer) => got.push(chunk.toString()));
    source.end('from stdin ');
    await new Promise((resolve) => setImmediate(resolve));
    c.write('typed');
    await new Promise((resolve) => setImmediate(resolve));
    expect(got.join('')).toBe('from stdin typed');
    expect(c.input.writableEnded).toBe(false);
    const text = new SerialConsole('COM1', 'given');
    expect(text.input.read()?.toString()).toBe('given');
  });

  it('hands the machine a queue, not a stream: the source is read only by a reader, close() stops it', async () => {
    const source = new PassThrough();
    const c = new SerialConsole('COM1', source);
    expect(source.listenerCount('data')).toBe(0);
    const got: Uint8Array[] = [];
    c.inputQueue.subscribe((chunk) => got.push(chunk));
    source.write('in ');
    await new Promise((resolve) => setImmediate(resolve));
    c.write('typed');
    c.close('halt');
    c.write('after');
    source.write('after');
    await new Promise((resolve) => setImmediate(resolve));
    expect(Buffer.concat(got).toString()).toBe('in typed');
    expect(source.isPaused()).toBe(true);
    expect(c.input.writableEnded).toBe(true); // made after the end: ended too
  });
});
