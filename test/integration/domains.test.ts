/**
 * Domains with real processes: the CLI defines domains, starts supervisors that outlive it,
 * attaches consoles, suspends, resumes, saves, destroys, backs up and restores — against a
 * temporary TSKVM_HOME, with every supervisor ended at the end.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { assertKvm, describeKvm, requireKvm } from './helpers.js';
import { DomainHome, domainXml, echoThroughConsole, startTimeOf } from './domains-helpers.js';
import { expectLibvirtAccepts, itVirsh } from '../unit/domains-virsh.js';
import { TSKVM_NAMESPACE } from '../../src/domains/xml.js';

let h: DomainHome;

beforeAll(() => {
  if (requireKvm) assertKvm();
  h = new DomainHome('domains');
});
afterAll(() => h?.cleanUp());

/** The definitions directory, file by file, to show that a refused command changed nothing. */
function storeSnapshot(): Record<string, string> {
  const dir = path.join(h.home, 'domains');
  const files: Record<string, string> = {};
  for (const f of readdirSync(dir)) files[f] = readFileSync(path.join(dir, f), 'utf8');
  return files;
}

describeKvm('domains: the virsh round trip', () => {
  it('define → start → list → console → suspend → resume → save → restore → destroy → undefine', async () => {
    const xml = h.file('rt.xml', domainXml({ name: 'rt', kernel: h.guest('echo') }));
    let r = await h.cli(['define', xml]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toBe(`Domain 'rt' defined from ${xml}\n\n`);

    // virsh's table: columns 2, 4 and 8 wide (Id, Name, 'shut off'), each with 3 spaces, in dashes.
    r = await h.cli(['list', '--all']);
    expect(r.stdout.toString()).toBe(` Id   Name   State\n${'-'.repeat(23)}\n -    rt     shut off\n\n`);

    r = await h.cli(['start', 'rt']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe("Domain 'rt' started\n\n");
    // The CLI has exited; the supervisor runs on.
    const record = h.record('rt')!;
    expect(startTimeOf(record.pid)).toBe(record.startTime);

    expect(record.id).toBe(1); // the first domain started in this home
    r = await h.cli(['list']);
    expect(r.stdout.toString()).toBe(` Id   Name   State\n${'-'.repeat(22)}\n 1    rt     running\n\n`);
    const json = JSON.parse((await h.cli(['list', '--json'])).stdout.toString()) as { name: string; state: string; id: number }[];
    expect(json).toEqual([expect.objectContaining({ name: 'rt', state: 'running', id: record.id, vcpus: 1, memoryKiB: 16384 })]);

    expect(await echoThroughConsole(h, 'rt', 'hello console')).toBe(0);

    r = await h.cli(['suspend', 'rt']);
    expect(r.stdout.toString()).toBe("Domain 'rt' suspended\n\n");
    expect(await h.state('rt')).toBe('paused (user)');
    expect((await h.cli(['list'])).stdout.toString()).toMatch(/ rt {5}paused\n/);

    r = await h.cli(['resume', 'rt']);
    expect(r.stdout.toString()).toBe("Domain 'rt' resumed\n\n");
    expect(await h.state('rt')).toBe('running (unpaused)');
    expect(await echoThroughConsole(h, 'rt', 'after resume')).toBe(0);

    // save: the running state to a file, and the domain stops; restore brings the same guest back.
    const saveFile = path.join(h.work, 'rt.save');
    r = await h.cli(['save', 'rt', saveFile]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe(`Domain 'rt' saved to ${saveFile}\n\n`);
    expect(await h.state('rt')).toBe('shut off (saved)');
    expect(readFileSync(saveFile).subarray(0, 13).toString()).toBe('TSKVM-SAVE 1\n');
    r = await h.cli(['restore', saveFile]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe(`Domain restored from ${saveFile}\n\n`);
    expect(await h.state('rt')).toBe('running (restored)');
    expect(h.supervisorLog('rt')).toMatch(/state: paused \(save\)\n/);
    expect(await echoThroughConsole(h, 'rt', 'after restore')).toBe(0);
    const restored = h.record('rt')!;

    r = await h.cli(['destroy', 'rt']);
    expect(r.stdout.toString()).toBe("Domain 'rt' destroyed\n\n");
    expect(await h.state('rt')).toBe('shut off (destroyed)');
    expect(h.record('rt')).toBeUndefined();
    expect(startTimeOf(record.pid)).not.toBe(record.startTime);
    expect(startTimeOf(restored.pid)).not.toBe(restored.startTime);

    // Not a save file: a clear error, nothing started.
    r = await h.cli(['restore', xml]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/is not a tskvm save file/);

    await h.dumpxml('rt');
    r = await h.cli(['undefine', 'rt']);
    expect(r.stdout.toString()).toBe("Domain 'rt' has been undefined\n\n");
    expect((await h.cli(['list', '--all'])).stdout.toString()).toBe(' Id   Name   State\n--------------------\n\n');
  }, 180_000);

  it('of two concurrent starts of one domain, one wins and the other is told it is active', async () => {
    await h.cli(['define', h.file('twice.xml', domainXml({ name: 'twice', kernel: h.guest('echo') }))]);
    const results = await Promise.all([h.cli(['start', 'twice']), h.cli(['start', 'twice'])]);
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([0, 2]);
    const loser = results.find((r) => r.status === 2)!;
    expect(loser.stderr).toMatch(/domain 'twice' is already active \(id \d+, running\)/);
    expect(await h.state('twice')).toBe('running (booted)');
    expect((await h.cli(['destroy', 'twice'])).status).toBe(0);
    await h.cli(['undefine', 'twice']);
  });

  it('20 concurrent defines of different domains all survive', async () => {
    const kernel = h.guest('echo');
    const names = Array.from({ length: 20 }, (_, i) => `many${i}`);
    const results = await Promise.all(names.map((name) => h.cli(['define', h.file(`${name}.xml`, domainXml({ name, kernel }))])));
    for (const r of results) expect(r.status, r.stderr).toBe(0);
    const listed = JSON.parse((await h.cli(['list', '--all', '--json'])).stdout.toString()) as { name: string; uuid: string }[];
    const many = listed.filter((d) => d.name.startsWith('many'));
    expect(many.map((d) => d.name).sort()).toEqual([...names].sort());
    expect(new Set(many.map((d) => d.uuid)).size).toBe(20);
    for (const name of names) {
      const xml = await h.dumpxml(name);
      expect(xml).toContain(`<name>${name}</name>`);
    }
    await Promise.all(names.map((name) => h.cli(['undefine', name])));
  }, 120_000);

  it('a supervisor killed with SIGKILL shows crashed, never running, and the domain starts again', async () => {
    await h.cli(['define', h.file('victim.xml', domainXml({ name: 'victim', kernel: h.guest('echo') }))]);
    expect((await h.cli(['start', 'victim'])).status).toBe(0);
    const record = h.record('victim')!;
    process.kill(record.pid, 'SIGKILL');
    await h.waitForState('victim', /^crashed/);
    expect((await h.cli(['list', '--all'])).stdout.toString()).toMatch(/\n - +victim +crashed\n/);
    expect((await h.cli(['list'])).stdout.toString()).not.toContain('victim');
    const r = await h.cli(['start', 'victim']);
    expect(r.status, r.stderr).toBe(0);
    expect(await echoThroughConsole(h, 'victim', 'back again')).toBe(0);
    await h.cli(['destroy', 'victim']);
    await h.cli(['undefine', 'victim']);
  });
});

describeKvm('domains: lifecycle policies', () => {
  it('a guest power-off ends the domain (on_poweroff destroy); the console log keeps its output', async () => {
    await h.cli(['define', h.file('hello.xml', domainXml({ name: 'hello', kernel: h.guest('hello') }))]);
    expect((await h.cli(['start', 'hello'])).status).toBe(0);
    await h.waitForState('hello', /^shut off \(shutdown\)$/);
    expect(readFileSync(path.join(h.home, 'log', 'hello.console.log'), 'utf8')).toBe('Hello from a tskvm guest!\n');
    const info = (await h.cli(['dominfo', 'hello'])).stdout.toString();
    expect(info).toMatch(
      new RegExp(
        '^Id: {13}-\nName: {11}hello\nUUID: {11}[0-9a-f-]{36}\nOS Type: {8}hvm\n' +
          'State: {10}shut off\nCPU\\(s\\): {9}1\nMax memory: {5}16384 KiB\n',
      ),
    );
    await h.cli(['undefine', 'hello']);
  });

  it('a guest reset restarts it (on_reboot restart), and reboot does too', async () => {
    await h.cli([
      'define',
      h.file('rs.xml', domainXml({ name: 'rs', kernel: h.guest('reset'), extra: '  <on_reboot>restart</on_reboot>' })),
    ]);
    expect((await h.cli(['start', 'rs'])).status).toBe(0);
    const deadline = Date.now() + 30_000;
    let runs = 0;
    while (runs < 2 && Date.now() < deadline) {
      const stats = (await h.cli(['domstats', 'rs'])).stdout.toString();
      runs = Number(/tskvm\.runs=(\d+)/.exec(stats)?.[1] ?? 0);
    }
    expect(runs).toBeGreaterThanOrEqual(2);
    await h.cli(['destroy', 'rs']);
    await h.cli(['undefine', 'rs']);

    await h.cli(['define', h.file('rb.xml', domainXml({ name: 'rb', kernel: h.guest('echo') }))]);
    await h.cli(['start', 'rb']);
    const r = await h.cli(['reboot', 'rb']);
    expect(r.stdout.toString()).toBe("Domain 'rb' is being rebooted\n\n");
    const deadline2 = Date.now() + 30_000;
    while (!/tskvm\.runs=1/.test((await h.cli(['domstats', 'rb'])).stdout.toString()) && Date.now() < deadline2);
    expect(await h.state('rb')).toBe('running (booted)');
    expect(await echoThroughConsole(h, 'rb', 'rebooted')).toBe(0);
    expect((await h.cli(['shutdown', 'rb'])).stdout.toString()).toBe("Domain 'rb' is being shutdown\n\n");
    await h.waitForState('rb', /^shut off \(shutdown\)$/);
    await h.cli(['undefine', 'rb']);
  });

  it('a crash is preserved with on_crash preserve, until destroy', async () => {
    await h.cli([
      'define',
      h.file('tf.xml', domainXml({ name: 'tf', kernel: h.guest('triple'), extra: '  <on_crash>preserve</on_crash>' })),
    ]);
    expect((await h.cli(['start', 'tf'])).status).toBe(0);
    await h.waitForState('tf', /^crashed \(panicked\)$/);
    expect(h.supervisorLog('tf')).toMatch(/guest crashed: triple fault/);
    const r = await h.cli(['suspend', 'tf']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/the guest is not running \(it crashed and is preserved/);
    await h.cli(['destroy', 'tf']);
    expect(await h.state('tf')).toBe('shut off (destroyed)');
    await h.cli(['undefine', 'tf']);
  });

  it('domstats and nodeinfo show what runs and what it commits', async () => {
    await h.cli(['define', h.file('st.xml', domainXml({ name: 'st', kernel: h.guest('echo') }))]);
    await h.cli(['start', 'st']);
    const stats = (await h.cli(['domstats', 'st'])).stdout.toString();
    expect(stats).toMatch(/^Domain: 'st'\n {2}state\.state=1\n {2}state\.reason=1\n {2}cpu\.time=\d+\n/);
    expect(stats).toMatch(/\n {2}balloon\.maximum=16384\n/);
    expect(stats).toMatch(/\n {2}vcpu\.current=1\n {2}vcpu\.maximum=1\n/);
    expect(stats).toMatch(/\n {2}tskvm\.memory\.touched=\d+\n/);
    const node = (await h.cli(['nodeinfo'])).stdout.toString();
    expect(node).toMatch(/^CPU model: {11}x86_64\nCPU\(s\): {14}\d+\n/);
    expect(node).toMatch(
      /\nMemory size: {9}\d+ KiB\nDomains running: {5}1\nvCPUs committed: {5}1 on \d+ usable CPUs\nMemory committed: {4}16384 KiB\n/,
    );
    await h.cli(['destroy', 'st']);
    await h.cli(['undefine', 'st']);
  });

  it('warns when one domain has more vCPUs than the host has CPUs', async () => {
    const vcpus = os.availableParallelism() + 1;
    await h.cli(['define', h.file('wide.xml', domainXml({ name: 'wide', kernel: h.guest('echo'), vcpus }))]);
    const r = await h.cli(['start', 'wide']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`warning: domain 'wide' has ${vcpus} vCPUs but the host has \\d+ CPUs: .*not recommended`));
    expect(await echoThroughConsole(h, 'wide', 'smp')).toBe(0);
    await h.cli(['destroy', 'wide']);
    await h.cli(['undefine', 'wide']);
  });
});

describeKvm('domains: backup and restore', () => {
  it('backup → undefine → restore-backup gives an identical dumpxml and a guest that runs', async () => {
    const disk = h.file('bk-disk.img', Buffer.alloc(256 * 1024, 0xa5));
    const devices = `<disk type='file' device='disk'>
      <driver name='qemu' type='raw'/><source file='${disk}'/><target dev='vda' bus='virtio'/>
    </disk>
    <serial type='pty'/>`;
    await h.cli(['define', h.file('bk.xml', domainXml({ name: 'bk', kernel: h.guest('echo', 'bk-kernel.bin'), devices }))]);
    expect((await h.cli(['start', 'bk'])).status).toBe(0);
    const before = await h.dumpxml('bk');
    const dir = path.join(h.work, 'bk-backup');
    let r = await h.cli(['backup', 'bk', dir]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe(`Domain 'bk' backed up to ${dir} (2 images)\n\n`);
    // Consistent: the supervisor paused the guest for the copy and resumed it after.
    expect(h.supervisorLog('bk')).toMatch(/state: paused \(user\)\n.*state: running \(unpaused\)\n/);
    expect(await h.state('bk')).toBe('running (unpaused)');
    expect(readdirSync(dir).sort()).toEqual(['bk.xml', 'images', 'manifest.json']);

    await h.cli(['destroy', 'bk']);
    expect((await h.cli(['undefine', 'bk'])).status).toBe(0);
    // The images are lost too; restore-backup puts them back.
    writeFileSync(disk, 'overwritten');
    r = await h.cli(['restore-backup', dir]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe(`Domain 'bk' restored from backup ${dir}\n\n`);
    expect(readFileSync(disk)).toEqual(Buffer.alloc(256 * 1024, 0xa5));
    expect(await h.dumpxml('bk')).toBe(before);
    expect((await h.cli(['start', 'bk'])).status).toBe(0);
    expect(await echoThroughConsole(h, 'bk', 'restored guest')).toBe(0);
    await h.cli(['destroy', 'bk']);
    // The seed's way: define DIR/NAME.xml with the images in place.
    await h.cli(['undefine', 'bk']);
    r = await h.cli(['define', path.join(dir, 'bk.xml')]);
    expect(r.status, r.stderr).toBe(0);
    expect(await h.dumpxml('bk')).toBe(before);
    await h.cli(['undefine', 'bk']);
  });

  it('edit validates before it replaces the definition', async () => {
    await h.cli(['define', h.file('ed.xml', domainXml({ name: 'ed', kernel: h.guest('echo') }))]);
    const before = await h.dumpxml('ed');
    let r = await h.cli(['edit', 'ed'], { env: { EDITOR: 'sed -i \'s/<memory unit="KiB">16384/<memory unit="XB">16/\'' } });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/element <memory>, attribute unit='XB': unknown unit/);
    expect(await h.dumpxml('ed')).toBe(before);
    r = await h.cli(['edit', 'ed'], { env: { EDITOR: "sed -i 's/16384/32768/g'" } });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe("Domain 'ed' XML configuration edited.\n\n");
    expect(await h.dumpxml('ed')).toBe(before.replace(/16384/g, '32768'));
    r = await h.cli(['edit', 'ed'], { env: { EDITOR: 'true' } });
    expect(r.stdout.toString()).toBe("Domain 'ed' XML configuration not changed.\n\n");
    await h.cli(['undefine', 'ed']);
  });
});

describeKvm('domains: refused input changes nothing', () => {
  it('malformed XML, unknown units, duplicate names or UUIDs, missing files: exit 2, naming the element or file', async () => {
    const kernel = h.guest('echo');
    const uuid = '6695eb01-f6a4-8304-79aa-97f2502e193f';
    expect((await h.cli(['define', h.file('orig.xml', domainXml({ name: 'orig', kernel, uuid }))])).status).toBe(0);
    const before = storeSnapshot();
    const missingDisk = path.join(h.work, 'no-such-disk.img');
    const cases: [string, string, RegExp][] = [
      ['malformed', '<domain type="kvm"><name>m</name>', /malformed\.xml: malformed XML at line 1, column \d+/],
      [
        'unit',
        domainXml({ name: 'unit', kernel }).replace("unit='MiB'", "unit='XB'"),
        /element <memory>, attribute unit='XB': unknown unit/,
      ],
      ['dupname', domainXml({ name: 'orig', kernel }), /domain 'orig' already exists with uuid 6695eb01-/],
      [
        'dupuuid',
        domainXml({ name: 'other', kernel, uuid: uuid.toUpperCase() }),
        /<uuid>6695eb01-f6a4-8304-79aa-97f2502e193f<\/uuid> is already used by domain 'orig'/,
      ],
      [
        'nokernel',
        domainXml({ name: 'nok', kernel: path.join(h.work, 'no-such-kernel.bin') }),
        /element <os\/kernel>: kernel file '.*no-such-kernel\.bin' not found/,
      ],
      [
        'nodisk',
        domainXml({
          name: 'nod',
          kernel,
          devices: `<disk type='file' device='disk'><source file='${missingDisk}'/><target dev='vda'/></disk>`,
        }),
        /element <devices\/disk\[1\]\/source>: disk file '.*no-such-disk\.img' not found/,
      ],
    ];
    for (const [label, xml, message] of cases) {
      const r = await h.cli(['define', h.file(`${label === 'malformed' ? 'malformed' : label}.xml`, xml)]);
      expect(r.status, `${label}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stdout.toString()).toBe('');
      expect(storeSnapshot()).toEqual(before);
    }
    // A kernel removed after define: start refuses with the file's name, and nothing runs.
    const gone = h.file('gone.bin', readFileSync(kernel));
    await h.cli(['define', h.file('gone.xml', domainXml({ name: 'gone', kernel: gone }))]);
    spawnSync('rm', [gone]);
    const r = await h.cli(['start', 'gone']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/element <os\/kernel>: kernel file '.*gone\.bin' not found/);
    expect(await h.state('gone')).toMatch(/^shut off/);
    await h.cli(['undefine', 'gone']);
    await h.cli(['undefine', 'orig']);
  });
});

describeKvm('domains: a supervisor that cannot start the guest', () => {
  it('reports why (exit 2), leaves nothing running, and the domain shut off (failed)', async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const devices = `<serial type='tcp'><source mode='bind' host='127.0.0.1' service='${port}'/><protocol type='raw'/></serial>`;
      await h.cli(['define', h.file('busy.xml', domainXml({ name: 'busy', kernel: h.guest('echo'), devices }))]);
      const r = await h.cli(['start', 'busy']);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(`element <devices/serial[1]/source>, attribute service='${port}': 127.0.0.1:${port} is in use`);
      expect(await h.state('busy')).toBe('shut off (failed)');
      expect(h.record('busy')).toBeUndefined();
      await h.cli(['undefine', 'busy']);
    } finally {
      busy.close();
    }
    // The loader's refusal comes back the same way: a command line for a flat binary.
    const flat = domainXml({ name: 'flatcmd', kernel: h.guest('echo') }).replace('</kernel>', '</kernel><cmdline>x</cmdline>');
    await h.cli(['define', h.file('flatcmd.xml', flat)]);
    const r = await h.cli(['start', 'flatcmd']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/needs a multiboot kernel/);
    expect(await h.state('flatcmd')).toBe('shut off (failed)');
    await h.cli(['undefine', 'flatcmd']);
  });
});

describeKvm("domains: the control socket is the owner's alone", () => {
  it('its directory is 0700 and the sockets 0600', async () => {
    await h.cli(['define', h.file('sec.xml', domainXml({ name: 'sec', kernel: h.guest('echo') }))]);
    expect((await h.cli(['start', 'sec'])).status).toBe(0);
    const dir = path.join(h.home, 'run', 'sec');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(h.home, 'run')).mode & 0o777).toBe(0o700);
    for (const socket of ['control.sock', 'console.sock']) {
      const st = statSync(path.join(dir, socket));
      expect(st.isSocket()).toBe(true);
      expect(st.mode & 0o777).toBe(0o600);
    }
  });

  // Switching to another uid takes root; CI runs as root.
  it.skipIf(process.getuid?.() !== 0)('another uid cannot connect, even with the directories above opened up', async () => {
    const dir = path.join(h.home, 'run', 'sec');
    const control = path.join(dir, 'control.sock');
    const attempt = (): { code: string; status: number | null } => {
      const script =
        `require('net').connect(${JSON.stringify(control)})` +
        ".on('connect', () => { console.log('CONNECTED'); process.exit(0); })" +
        ".on('error', (e) => { console.log(e.code); process.exit(3); })";
      const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script], {
        encoding: 'utf8',
      });
      return { code: r.stdout.trim() || r.stderr.trim(), status: r.status };
    };
    // The owner can.
    await new Promise<void>((resolve, reject) =>
      net
        .connect(control)
        .on('connect', function (this: net.Socket) {
          this.destroy();
          resolve();
        })
        .on('error', reject),
    );
    // Another uid cannot, with the home's modes as tskvm left them...
    expect(attempt()).toEqual({ code: 'EACCES', status: 3 });
    // ...nor with every directory above the socket's opened up: its own 0700 directory keeps them out...
    const opened = [h.home, path.join(h.home, 'run')];
    const modes = opened.map((d) => statSync(d).mode & 0o7777);
    try {
      for (const d of opened) chmodSync(d, 0o755);
      expect(attempt()).toEqual({ code: 'EACCES', status: 3 });
      // ...and with that directory opened too, the socket's own 0600 does.
      chmodSync(dir, 0o755);
      expect(attempt()).toEqual({ code: 'EACCES', status: 3 });
    } finally {
      chmodSync(dir, 0o700);
      opened.forEach((d, i) => chmodSync(d, modes[i]!));
    }
    await h.cli(['destroy', 'sec']);
    await h.cli(['undefine', 'sec']);
  });
});

describeKvm('domains: interoperability with libvirt', () => {
  it('a libvirt domain written for QEMU is defined with the elements tskvm does not use kept', async () => {
    const kernel = h.guest('echo', 'qemu-kernel.bin');
    const disk = h.file('qemu-disk.img', Buffer.alloc(64 * 1024));
    const xml = `<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>qemuguest</name>
  <memory unit='MiB'>16</memory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc-q35-8.2'>hvm</type><kernel>${kernel}</kernel><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  <cpu mode='host-passthrough' check='none'/>
  <clock offset='utc'><timer name='rtc' tickpolicy='catchup'/></clock>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>
    <interface type='network'><mac address='52:54:00:6b:3c:58'/><source network='default'/><model type='virtio'/></interface>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <graphics type='vnc' port='-1' autoport='yes'/>
    <video><model type='virtio' heads='1' primary='yes'/></video>
    <memballoon model='virtio'/>
  </devices>
  <qemu:commandline><qemu:arg value='-no-hpet'/></qemu:commandline>
</domain>`;
    const r = await h.cli(['define', h.file('qemuguest.xml', xml)]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/note: kept but not used by tskvm: <qemu:commandline>, <interface>, <graphics>, <video>, <memballoon>/);
    const dumped = await h.dumpxml('qemuguest');
    for (const piece of [
      '<interface type="network">',
      '<mac address="52:54:00:6b:3c:58"/>',
      '<graphics type="vnc" port="-1" autoport="yes"/>',
      '<model type="virtio" heads="1" primary="yes"/>',
      '<qemu:arg value="-no-hpet"/>',
      '<timer name="rtc" tickpolicy="catchup"/>',
    ]) {
      expect(dumped).toContain(piece);
    }
    expect((await h.cli(['start', 'qemuguest'])).status).toBe(0);
    expect(await echoThroughConsole(h, 'qemuguest', 'from libvirt')).toBe(0);
    await h.cli(['destroy', 'qemuguest']);
    await h.cli(['undefine', 'qemuguest']);
  });

  it('tskvm options in its namespace survive define and dumpxml', async () => {
    const xml = domainXml({
      name: 'opts',
      kernel: h.guest('echo'),
      extra:
        `  <metadata><tskvm:options xmlns:tskvm='${TSKVM_NAMESPACE}'><tskvm:format>flat</tskvm:format>` +
        `<tskvm:console-log max-bytes='65536' files='2'/></tskvm:options></metadata>`,
    });
    expect((await h.cli(['define', h.file('opts.xml', xml)])).status).toBe(0);
    const dumped = await h.dumpxml('opts');
    expect(dumped).toMatch(
      new RegExp(
        '<tskvm:options xmlns:tskvm="urn:tskvm:domain:1.0">\\s*<tskvm:format>flat</tskvm:format>\\s*' +
          '<tskvm:console-log max-bytes="65536" files="2"/>',
      ),
    );
    await h.cli(['undefine', 'opts']);
  });

  itVirsh(
    'libvirt accepts every XML dumpxml wrote in these tests',
    () => {
      expect(h.dumped.length).toBeGreaterThan(10);
      for (const xml of new Set(h.dumped)) expectLibvirtAccepts(xml);
    },
    120_000,
  );
});
