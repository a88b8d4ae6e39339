import { describe, expect, it } from 'vitest';
import { CTRL_A, CTRL_C, TerminalEscapes, type TerminalCommand } from '../../src/cli/terminal.js';

/** Feeds `chunks` through a TerminalEscapes and collects what comes out and what it reported. */
async function run(chunks: Array<number[] | string>): Promise<{ output: number[]; commands: TerminalCommand[]; pushes: number }> {
  const commands: TerminalCommand[] = [];
  const t = new TerminalEscapes((c) => commands.push(c));
  const output: number[] = [];
  let pushes = 0;
  t.on('data', (chunk: Buffer) => {
    pushes++;
    output.push(...chunk);
  });
  const ended = new Promise<void>((resolve, reject) => {
    t.on('end', resolve);
    t.on('error', reject);
  });
  for (const c of chunks) t.write(typeof c === 'string' ? Buffer.from(c, 'latin1') : Buffer.from(c));
  t.end();
  await ended;
  return { output, commands, pushes };
}

describe('TerminalEscapes', () => {
  it('names the control keys', () => {
    expect(CTRL_A).toBe(0x01);
    expect(CTRL_C).toBe(0x03);
  });

  it('passes plain bytes through unchanged, including other control and high bytes', async () => {
    const bytes = [0x68, 0x69, 0x0d, 0x0a, 0x00, 0x02, 0x04, 0x1b, 0x5b, 0x41, 0x7f, 0x80, 0xff];
    const r = await run([bytes, 'xyz X']);
    expect(r.output).toEqual([...bytes, 0x78, 0x79, 0x7a, 0x20, 0x58]);
    expect(r.commands).toEqual([]);
  });

  it('removes Ctrl-C and reports interrupt', async () => {
    const r = await run([[0x61, 0x03, 0x62]]);
    expect(r.output).toEqual([0x61, 0x62]);
    expect(r.commands).toEqual(['interrupt']);
  });

  it('reports each Ctrl-C', async () => {
    const r = await run([[0x03, 0x03], [0x03]]);
    expect(r.output).toEqual([]);
    expect(r.commands).toEqual(['interrupt', 'interrupt', 'interrupt']);
    expect(r.pushes).toBe(0);
  });

  it.each([
    ['x', 0x78],
    ['X', 0x58],
  ])('Ctrl-A %s reports quit and passes neither byte', async (_name, key) => {
    const r = await run([[0x61, 0x01, key, 0x62]]);
    expect(r.output).toEqual([0x61, 0x62]);
    expect(r.commands).toEqual(['quit']);
  });

  it.each([
    ['s', 0x73],
    ['S', 0x53],
  ])('Ctrl-A %s reports save and passes neither byte', async (_name, key) => {
    const r = await run([[0x61, 0x01, key, 0x62]]);
    expect(r.output).toEqual([0x61, 0x62]);
    expect(r.commands).toEqual(['save']);
  });

  it('a plain s is data, and Ctrl-A s split across chunks still saves', async () => {
    const r = await run([
      [0x73, 0x01],
      [0x73, 0x53],
    ]);
    expect(r.output).toEqual([0x73, 0x53]);
    expect(r.commands).toEqual(['save']);
  });

  it('Ctrl-A Ctrl-A yields one Ctrl-A', async () => {
    const r = await run([[0x41, 0x01, 0x01, 0x42]]);
    expect(r.output).toEqual([0x41, 0x01, 0x42]);
    expect(r.commands).toEqual([]);
  });

  it('Ctrl-A Ctrl-A Ctrl-A x yields one Ctrl-A and quits', async () => {
    const r = await run([[0x01, 0x01, 0x01, 0x78]]);
    expect(r.output).toEqual([0x01]);
    expect(r.commands).toEqual(['quit']);
  });

  it.each([
    ['a', 0x61],
    ['h', 0x68],
    ['c', 0x63],
    ['q', 0x71],
    ['Ctrl-C', 0x03],
    ['NUL', 0x00],
  ])('Ctrl-A followed by %s swallows both bytes', async (_name, key) => {
    const r = await run([[0x31, 0x01, key, 0x32]]);
    expect(r.output).toEqual([0x31, 0x32]);
    expect(r.commands).toEqual([]);
  });

  it('an escape split across two chunks still quits', async () => {
    const r = await run([
      [0x61, 0x01],
      [0x58, 0x62],
    ]);
    expect(r.output).toEqual([0x61, 0x62]);
    expect(r.commands).toEqual(['quit']);
  });

  it('Ctrl-A Ctrl-A split across chunks yields one Ctrl-A', async () => {
    const r = await run([[0x01], [0x01], [0x7a]]);
    expect(r.output).toEqual([0x01, 0x7a]);
    expect(r.commands).toEqual([]);
  });

  it('the escape state ends after one key: a later x is plain data', async () => {
    const r = await run([[0x01, 0x61], [0x78]]);
    expect(r.output).toEqual([0x78]);
    expect(r.commands).toEqual([]);
  });

  it('reports commands in input order', async () => {
    const r = await run([[0x03, 0x01, 0x78, 0x03]]);
    expect(r.commands).toEqual(['interrupt', 'quit', 'interrupt']);
    expect(r.output).toEqual([]);
  });
});
