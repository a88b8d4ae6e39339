import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { ConsoleLog } from '../../src/domains/console-log.js';
import { overcommitWarnings, type NodeInfo } from '../../src/domains/host.js';
import { LineSplitter } from '../../src/domains/qmp.js';
import { processStartTime, supervisorAlive } from '../../src/domains/runtime.js';
import { DomainStore, resolveHome, SYSTEM_HOME, writeFileAtomic } from '../../src/domains/store.js';
import { guestMemoryResident } from '../../src/domains/supervisor.js';
import { parseDomain } from '../../src/domains/xml.js';
import { formatList } from '../../src/cli/domains.js';

let home: string;

beforeEach(() => {
  home = mkdtempSync(path.join(os.tmpdir(), 'tskvm-store-'));
});
afterEach(() => {
  rmSync(home, { recursive: true, force: true });
});

function domainXml(name: string, uuid?: string): string {
  const uuidElement = uuid ? `<uuid>${uuid}</uuid>` : '';
  const os = '<os><type>hvm</type><kernel>/k</kernel></os>';
  return `<domain type='kvm'><name>${name}</name>${uuidElement}<memory unit='MiB'>16</memory>${os}</domain>`;
}

async function rejection(promise: Promise<unknown>): Promise<UsageError> {
  try {
    await promise;
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error('expected a UsageError');
}

describe('resolveHome', () => {
  it('takes TSKVM_HOME, else the XDG data directory, else ~/.local/share', () => {
    expect(resolveHome({ env: { TSKVM_HOME: '/x/home' } })).toBe('/x/home');
    expect(resolveHome({ env: { XDG_DATA_HOME: '/data', HOME: '/h' } })).toBe('/data/tskvm');
    expect(resolveHome({ env: { HOME: '/h' } })).toBe('/h/.local/share/tskvm');
    // A relative XDG_DATA_HOME is invalid per the XDG spec: ignored.
    expect(resolveHome({ env: { XDG_DATA_HOME: 'rel', HOME: '/h' } })).toBe('/h/.local/share/tskvm');
  });

  it('maps the system and session URIs as libvirt does qemu:///system and qemu:///session', () => {
    expect(resolveHome({ connect: 'tskvm:///system', env: { TSKVM_HOME: '/x' } })).toBe(SYSTEM_HOME);
    expect(resolveHome({ connect: 'tskvm:///session', env: { HOME: '/h' } })).toBe('/h/.local/share/tskvm');
    expect(resolveHome({ env: { TSKVM_DEFAULT_URI: 'tskvm:///system', HOME: '/h' } })).toBe(SYSTEM_HOME);
    expect(() => resolveHome({ connect: 'qemu:///system' })).toThrow(/unknown connection URI 'qemu:\/\/\/system'/);
  });
});

describe('DomainStore', () => {
  it('keeps definitions in owner-only files and directories', async () => {
    const store = await DomainStore.open({ home });
    await store.define(parseDomain(domainXml('a')));
    expect(statSync(store.home).mode & 0o777).toBe(0o700);
    expect(statSync(store.domainsDir).mode & 0o777).toBe(0o700);
    expect(statSync(store.definitionFile('a')).mode & 0o777).toBe(0o600);
    expect(readdirSync(store.domainsDir)).toEqual(['a.xml']); // no temporary file left
    const found = await store.get('a');
    expect(found.domain.config.name).toBe('a');
  });

  it('replaces a definition with the same name and UUID (a redefine)', async () => {
    const store = await DomainStore.open({ home });
    const uuid = '11111111-2222-3333-4444-555555555555';
    expect((await store.define(parseDomain(domainXml('a', uuid)))).created).toBe(true);
    const changed = domainXml('a', uuid).replace('>16<', '>32<');
    expect((await store.define(parseDomain(changed))).created).toBe(false);
    expect((await store.get('a')).domain.config.memoryKiB).toBe(32 * 1024);
  });

  it('refuses a name in use with another UUID, and a UUID in use by another name, leaving the store unchanged', async () => {
    const store = await DomainStore.open({ home });
    const uuid = '11111111-2222-3333-4444-555555555555';
    await store.define(parseDomain(domainXml('a', uuid)));
    const before = readFileSync(store.definitionFile('a'), 'utf8');
    expect((await rejection(store.define(parseDomain(domainXml('a'))))).message).toMatch(/domain 'a' already exists with uuid 11111111-/);
    expect((await rejection(store.define(parseDomain(domainXml('b', uuid))))).message).toMatch(
      /<uuid>11111111-.* is already used by domain 'a'/,
    );
    expect(readFileSync(store.definitionFile('a'), 'utf8')).toBe(before);
    expect(await store.names()).toEqual(['a']);
  });

  it('20 concurrent defines of different domains all survive', async () => {
    const stores = await Promise.all(Array.from({ length: 20 }, () => DomainStore.open({ home })));
    await Promise.all(stores.map((store, i) => store.define(parseDomain(domainXml(`d${i}`)))));
    const store = stores[0]!;
    expect(await store.names()).toHaveLength(20);
    const { domains, problems } = await store.list();
    expect(problems).toEqual([]);
    expect(new Set(domains.map((d) => d.domain.config.uuid)).size).toBe(20);
  });

  it('of two concurrent defines with one UUID, exactly one wins', async () => {
    const store = await DomainStore.open({ home });
    const uuid = '11111111-2222-3333-4444-555555555555';
    const results = await Promise.allSettled([
      store.define(parseDomain(domainXml('x', uuid))),
      store.define(parseDomain(domainXml('y', uuid))),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(await store.names()).toHaveLength(1);
  });

  it('undefines', async () => {
    const store = await DomainStore.open({ home });
    await store.define(parseDomain(domainXml('a')));
    await store.undefine('a');
    expect(await store.names()).toEqual([]);
    expect((await rejection(store.get('a'))).message).toMatch(/domain 'a' not found/);
  });

  it('reports a damaged definition without hiding the others', async () => {
    const store = await DomainStore.open({ home });
    await store.define(parseDomain(domainXml('good')));
    writeFileSync(store.definitionFile('bad'), '<domain');
    const { domains, problems } = await store.list();
    expect(domains.map((d) => d.domain.config.name)).toEqual(['good']);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.message).toMatch(/bad\.xml: malformed XML/);
  });

  it('writeFileAtomic replaces a file whole', async () => {
    const file = path.join(home, 'f');
    await writeFileAtomic(file, 'one');
    await writeFileAtomic(file, 'two');
    expect(readFileSync(file, 'utf8')).toBe('two');
    expect(readdirSync(home)).toEqual(['f']);
  });
});

describe('runtime records', () => {
  it('tells a live process from a dead or reused pid by its start time', () => {
    const startTime = processStartTime(process.pid);
    expect(startTime).toMatch(/^\d+$/);
    expect(supervisorAlive({ pid: process.pid, startTime: startTime! })).toBe(true);
    expect(supervisorAlive({ pid: process.pid, startTime: `${startTime}1` })).toBe(false);
    expect(supervisorAlive({ pid: 2 ** 22 + 1, startTime: '1' })).toBe(false);
  });
});

describe('ConsoleLog', () => {
  it('rotates at its size limit and keeps the configured number of old files', () => {
    const file = path.join(home, 'c.log');
    const log = new ConsoleLog(file, { maxBytes: 10, files: 2 });
    for (const chunk of ['0123456789', 'abcdefghij', 'ABCDEFGHIJ', 'xyz']) log.write(Buffer.from(chunk));
    log.close();
    expect(readFileSync(file, 'utf8')).toBe('xyz');
    expect(readFileSync(`${file}.1`, 'utf8')).toBe('ABCDEFGHIJ');
    expect(readFileSync(`${file}.2`, 'utf8')).toBe('abcdefghij');
    expect(readdirSync(home).sort()).toEqual(['c.log', 'c.log.1', 'c.log.2']);
  });

  it('splits a chunk larger than the limit, and with no rotated files just starts over', () => {
    const file = path.join(home, 'c.log');
    const log = new ConsoleLog(file, { maxBytes: 4, files: 0 });
    log.write(Buffer.from('abcdefghij'));
    log.close();
    expect(readFileSync(file, 'utf8')).toBe('ij');
    expect(readdirSync(home)).toEqual(['c.log']);
  });
});

describe('QMP lines', () => {
  it('splits lines across chunks and drops blank ones', () => {
    const s = new LineSplitter();
    expect(s.push('{"a":1}\r\n{"b"')).toEqual(['{"a":1}']);
    expect(s.push(':2}\n\n')).toEqual(['{"b":2}']);
  });

  it('refuses an endless line', () => {
    const s = new LineSplitter(8);
    expect(() => s.push('0123456789')).toThrow(/longer than 8/);
  });
});

describe('guestMemoryResident', () => {
  const smaps = [
    '7f0000000000-7f0001000000 rw-s 00000000 00:01 1234                       /dev/zero (deleted)',
    'Size:              16384 kB',
    'Rss:                 132 kB',
    '7f0002000000-7f0003000000 rw-p 00000000 00:00 0 ',
    'Size:              16384 kB',
    'Rss:                  40 kB',
    '55d000000000-55d000001000 r-xp 00000000 08:01 99                         /usr/bin/node',
    'Size:              16384 kB',
    'Rss:                9000 kB',
  ].join('\n');
  it('finds the anonymous mapping of the guest RAM size and reads its resident size', () => {
    expect(guestMemoryResident(16 * 1024 * 1024, smaps)).toBe(132 * 1024);
    expect(guestMemoryResident(32 * 1024 * 1024, smaps)).toBeUndefined();
  });
});

describe('over-commit', () => {
  const node: NodeInfo = {
    cpuModel: 'x86_64',
    cpus: 2,
    usableCpus: 2,
    mhz: 2000,
    sockets: 1,
    coresPerSocket: 2,
    threadsPerCore: 1,
    numaCells: 1,
    memoryKiB: 1024 * 1024,
  };
  it('warns about one domain with more vCPUs than host CPUs, not about many small ones', () => {
    expect(overcommitWarnings('big', 4, 16 * 1024, { domains: 0, vcpus: 0, memoryKiB: 0 }, node)[0]).toMatch(
      /'big' has 4 vCPUs but the host has 2 CPUs: .* not recommended/,
    );
    expect(overcommitWarnings('small', 1, 16 * 1024, { domains: 30, vcpus: 30, memoryKiB: 30 * 16 * 1024 }, node)).toEqual([]);
  });

  it("warns when the running domains' memory passes the host's", () => {
    const w = overcommitWarnings('m', 1, 512 * 1024, { domains: 2, vcpus: 2, memoryKiB: 768 * 1024 }, node);
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/running domains' memory with 'm' \(1280 MiB in 3 domains\) is more than the host's \(1024 MiB\)/);
  });
});

describe('list output', () => {
  it('is virsh list, column for column', () => {
    const d = (id: number | undefined, name: string, state: 'running' | 'shut off'): Parameters<typeof formatList>[0][number] => ({
      ...(id === undefined ? {} : { id }),
      name,
      uuid: '',
      state,
      reason: '',
      active: id !== undefined,
      vcpus: 1,
      memoryKiB: 1,
    });
    // Shapes copied from virsh 9.0 (`virsh -c test:///default list --all`).
    expect(formatList([d(1, 'test', 'running')])).toBe(' Id   Name   State\n----------------------\n 1    test   running\n\n');
    expect(formatList([d(1, 'test', 'running'), d(undefined, 'demo', 'shut off')])).toBe(
      ' Id   Name   State\n-----------------------\n 1    test   running\n -    demo   shut off\n\n',
    );
    expect(formatList([])).toBe(' Id   Name   State\n--------------------\n\n');
  });
});
