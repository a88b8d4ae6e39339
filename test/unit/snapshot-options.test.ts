/**
 * The snapshot options, without KVM: the library's `save` (its triggers, Ctrl-A s's request
 * signal among them) and `restore` (which BIOS options a restore takes as this run's and which
 * it refuses), the machine description with a BIOS machine in it, and the CLI's flags and its
 * Ctrl-A s request.
 */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { checkSnapshotFlags, terminalSave } from '../../src/cli/snapshot-options.js';
import { boardFromSnapshot, describeMachine } from '../../src/snapshot/machine-config.js';
import { validateRestoreOption, validateSaveOption } from '../../src/snapshot/options.js';

describe('options.save', () => {
  it('takes a request signal as a trigger of its own, alone or with the others', () => {
    const request = new AbortController().signal;
    expect(validateSaveOption({ path: 's.snap', request })).toMatchObject({ path: 's.snap', request, onSerial: undefined, then: 'end' });
    expect(validateSaveOption({ path: 's.snap', onSerial: 'x', request })?.request).toBe(request);
    expect(() => validateSaveOption({ path: 's.snap', request: 'now' })).toThrow(/options\.save\.request: give an AbortSignal/);
    expect(() => validateSaveOption({ path: 's.snap' })).toThrow(/needs onSerial, onDebugExit or request/);
  });
});

describe('options.restore', () => {
  it("takes the BIOS's endpoints (console, screen, keys) as this run's, and refuses its machine options", () => {
    const endpoints = { bios: { keys: 'k', onConsole: () => {}, disks: [], diskWrite: false } };
    expect(validateRestoreOption({ restore: 'a.snap', ...endpoints })).toEqual({ path: 'a.snap', verifyMemory: true });
    expect(() => validateRestoreOption({ restore: 'a.snap', bios: { disks: ['d.img'] } })).toThrow(/options\.bios\.disks/);
    expect(() => validateRestoreOption({ restore: 'a.snap', bios: { boot: 'c' } })).toThrow(/options\.bios\.boot/);
    expect(() => validateRestoreOption({ restore: 'a.snap', bios: { diskWrite: true } })).toThrow(/options\.bios\.diskWrite/);
    expect(() => validateRestoreOption({ restore: 'a.snap', memory: '32M', bios: { boot: 0x80 } })).toThrow(
      /options\.memory, options\.bios\.boot: the machine and the guest come from the snapshot/,
    );
  });
});

describe('the machine description', () => {
  const firmware = { ramSize: 16 << 20, cpus: 1 };

  it("keeps a BIOS machine's description as plain JSON, and reads it back", () => {
    const bios = { disks: [{ drive: 0x80, writeThrough: false, bytes: { name: 'b.img', base64: 'AA==' } }], bootOrder: [0x80], e820: [] };
    const machine = describeMachine({ memorySize: 16 << 20, cpus: 1, irqchip: true, firmware, format: 'bootsector', bios });
    const back = boardFromSnapshot(JSON.parse(JSON.stringify(machine)) as typeof machine);
    expect(back).toMatchObject({ format: 'bootsector', bios });
    const plain = describeMachine({ memorySize: 16 << 20, cpus: 1, irqchip: true, firmware, format: 'elf' });
    expect(plain.board.bios).toBeUndefined();
    expect(boardFromSnapshot(plain).bios).toBeUndefined();
    expect(() => boardFromSnapshot({ ...plain, board: { ...plain.board, bios: [1] } })).toThrow(/machine\.board\.bios is not an object/);
  });
});

describe('the CLI flags and Ctrl-A s', () => {
  const command = (): Command => new Command().option('--cpus <n>').option('--disk <file>');

  it('--save needs --save-on unless stdin is a terminal, where Ctrl-A s saves', () => {
    expect(() => checkSnapshotFlags(command(), 'g.elf', { save: 's.snap' }, false)).toThrow(UsageError);
    expect(() => checkSnapshotFlags(command(), 'g.elf', { save: 's.snap' }, false)).toThrow(/stdin is not a terminal here/);
    expect(() => checkSnapshotFlags(command(), 'g.elf', { save: 's.snap' }, true)).not.toThrow();
    expect(() => checkSnapshotFlags(command(), 'g.elf', { saveOn: 'x' }, true)).toThrow(/--save-on needs --save FILE/);
  });

  it('Ctrl-A s fires the save request once, says why with no --save, and does nothing off a terminal', () => {
    const said: string[] = [];
    const saves = terminalSave('s.snap', true, (text) => said.push(text));
    let fired = 0;
    saves.signal!.addEventListener('abort', () => fired++);
    saves.request();
    saves.request();
    expect([fired, saves.signal!.aborted, said]).toEqual([1, true, []]);
    const none = terminalSave(undefined, true, (text) => said.push(text));
    expect(none.signal).toBeUndefined();
    none.request();
    expect(said).toEqual(['tskvm: Ctrl-A s: nothing saved: give --save FILE to save the guest with Ctrl-A s\r\n']);
    expect(terminalSave('s.snap', false, () => {}).signal).toBeUndefined();
  });
});
