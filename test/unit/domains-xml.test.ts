import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { canonicalUuid, formatDomain, parseDomain, TSKVM_NAMESPACE } from '../../src/domains/xml.js';
import { scaledBytes, unitBytes } from '../../src/domains/units.js';
import { expectLibvirtAccepts, itVirsh } from './domains-virsh.js';

const KiB = 1024;

function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error('expected a UsageError');
}

const MINIMAL = `<domain type='kvm'>
  <name>demo</name>
  <memory unit='MiB'>16</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>/boot/guest.bin</kernel></os>
</domain>`;

/** A domain as virt-install writes one for QEMU, with much tskvm does not use. */
export const QEMU_DOMAIN = `<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>fedora</name>
  <uuid>4DEA22B3-1D52-D8F3-2516-782E98AB3FA0</uuid>
  <title>A Fedora guest</title>
  <description>Written for QEMU &amp; libvirt</description>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>
      <libosinfo:os id='http://fedoraproject.org/fedora/39'/>
    </libosinfo:libosinfo>
  </metadata>
  <memory unit='GiB'>1</memory>
  <currentMemory unit='MiB'>512</currentMemory>
  <vcpu placement='static' current='1'>2</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-8.2'>hvm</type>
    <kernel>/var/lib/guests/vmlinuz</kernel>
    <initrd>/var/lib/guests/initrd.img</initrd>
    <cmdline>console=ttyS0 root=/dev/vda1</cmdline>
    <boot dev='hd'/>
  </os>
  <features><acpi/><apic/><vmport state='off'/></features>
  <cpu mode='host-passthrough' check='none' migratable='on'><topology sockets='1' dies='1' cores='2' threads='1'/></cpu>
  <clock offset='utc'>
    <timer name='rtc' tickpolicy='catchup'/><timer name='pit' tickpolicy='delay'/><timer name='hpet' present='no'/>
  </clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>coredump-restart</on_crash>
  <pm><suspend-to-mem enabled='no'/><suspend-to-disk enabled='no'/></pm>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='/var/lib/guests/fedora.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <controller type='usb' index='0' model='qemu-xhci' ports='15'/>
    <interface type='network'>
      <mac address='52:54:00:6b:3c:58'/>
      <source network='default'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'><target type='isa-serial' port='0'><model name='isa-serial'/></target></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <input type='tablet' bus='usb'/>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>
    <video><model type='virtio' heads='1' primary='yes'/></video>
    <memballoon model='virtio'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-no-hpet'/>
  </qemu:commandline>
</domain>
`;

describe('libvirt units', () => {
  it.each([
    ['b', 1],
    ['bytes', 1],
    ['KB', 1000],
    ['k', KiB],
    ['KiB', KiB],
    ['kib', KiB],
    ['MB', 1e6],
    ['M', KiB ** 2],
    ['MiB', KiB ** 2],
    ['GB', 1e9],
    ['G', KiB ** 3],
    ['GiB', KiB ** 3],
    ['TB', 1e12],
    ['T', KiB ** 4],
    ['TiB', KiB ** 4],
  ])('%s is %i bytes', (unit, bytes) => {
    expect(unitBytes(unit)).toBe(bytes);
  });

  it('refuses unknown units, naming the element and attribute', () => {
    const e = usageError(() => scaledBytes('16', 'XB', 'KiB', 'element <memory>'));
    expect(e.message).toMatch(/<memory>, attribute unit='XB': unknown unit/);
    expect(unitBytes('MiBs')).toBeUndefined();
    expect(unitBytes('')).toBeUndefined();
  });

  it('refuses values that are not whole numbers', () => {
    expect(usageError(() => scaledBytes('1.5', 'MiB', 'KiB', '<memory>')).message).toMatch(/not a whole number/);
    expect(usageError(() => scaledBytes('-1', undefined, 'KiB', '<memory>')).message).toMatch(/not a whole number/);
  });
});

describe('parseDomain', () => {
  it('reads a minimal domain and normalises it as libvirt does', () => {
    const { config, document } = parseDomain(MINIMAL);
    expect(config.name).toBe('demo');
    expect(config.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(config.memoryKiB).toBe(16 * 1024);
    expect(config.currentMemoryKiB).toBe(16 * 1024);
    expect(config.vcpus).toBe(1);
    expect(config.os).toEqual({ type: 'hvm', arch: 'x86_64', machine: 'pc', kernel: '/boot/guest.bin', boot: [] });
    expect(config.onPoweroff).toBe('destroy');
    expect(config.onReboot).toBe('restart');
    expect(config.onCrash).toBe('destroy');
    const xml = formatDomain({ config, document });
    // uuid right after name; memory in KiB; currentMemory added after memory.
    expect(xml).toMatch(
      new RegExp(
        '<name>demo</name>\n {2}<uuid>[0-9a-f-]{36}</uuid>\n' +
          ' {2}<memory unit="KiB">16384</memory>\n {2}<currentMemory unit="KiB">16384</currentMemory>',
      ),
    );
  });

  it('keeps the UUID it is given, in canonical form, and writes the same document back', () => {
    const first = parseDomain(QEMU_DOMAIN);
    expect(first.config.uuid).toBe('4dea22b3-1d52-d8f3-2516-782e98ab3fa0');
    const again = parseDomain(formatDomain(first));
    expect(formatDomain(again)).toBe(formatDomain(first));
    expect(again.config).toEqual(first.config);
  });

  it('keeps every element and attribute it does not use, in order', () => {
    const { config, document } = parseDomain(QEMU_DOMAIN);
    const xml = formatDomain({ config, document });
    const order = [
      '<libosinfo:os id="http://fedoraproject.org/fedora/39"/>',
      '<features>',
      '<vmport state="off"/>',
      '<cpu mode="host-passthrough" check="none" migratable="on">',
      '<timer name="hpet" present="no"/>',
      '<pm>',
      '<emulator>/usr/bin/qemu-system-x86_64</emulator>',
      '<driver name="qemu" type="qcow2" discard="unmap"/>',
      '<address type="pci" domain="0x0000" bus="0x04" slot="0x00" function="0x0"/>',
      '<controller type="usb" index="0" model="qemu-xhci" ports="15"/>',
      '<mac address="52:54:00:6b:3c:58"/>',
      '<model name="isa-serial"/>',
      '<channel type="unix">',
      '<graphics type="vnc" port="-1" autoport="yes" listen="127.0.0.1">',
      '<backend model="random">/dev/urandom</backend>',
      '<qemu:commandline>',
      '<qemu:arg value="-no-hpet"/>',
    ];
    let at = -1;
    for (const piece of order) {
      const next = xml.indexOf(piece);
      expect(next, `${piece} missing or out of order in\n${xml}`).toBeGreaterThan(at);
      at = next;
    }
    expect(xml).toContain('<description>Written for QEMU &amp; libvirt</description>');
    expect(xml).toContain('xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0"');
    expect(config.unused).toEqual(
      expect.arrayContaining(['<interface>', '<channel>', '<graphics>', '<video>', '<memballoon>', '<qemu:commandline>']),
    );
    expect(config.unused).not.toContain('<emulator>');
  });

  it('reads the parts tskvm uses from a QEMU domain', () => {
    const { config } = parseDomain(QEMU_DOMAIN);
    expect(config.title).toBe('A Fedora guest');
    expect(config.description).toBe('Written for QEMU & libvirt');
    expect(config.memoryKiB).toBe(1024 * 1024);
    expect(config.currentMemoryKiB).toBe(512 * 1024);
    expect(config.vcpus).toBe(2);
    expect(config.vcpusCurrent).toBe(1);
    expect(config.os.cmdline).toBe('console=ttyS0 root=/dev/vda1');
    expect(config.os.initrd).toBe('/var/lib/guests/initrd.img');
    expect(config.os.boot).toEqual(['hd']);
    expect(config.cpuMode).toBe('host-passthrough');
    expect(config.onCrash).toBe('coredump-restart');
    expect(config.disks).toHaveLength(2);
    expect(config.disks[0]).toMatchObject({
      type: 'file',
      device: 'disk',
      file: '/var/lib/guests/fedora.qcow2',
      targetDev: 'vda',
      targetBus: 'virtio',
      readonly: false,
      format: 'qcow2',
    });
    expect(config.disks[1]).toMatchObject({ device: 'cdrom', readonly: true });
    expect(config.disks[1]!.file).toBeUndefined();
    expect(config.serials).toEqual([{ port: 0, backend: { type: 'pty' }, where: 'devices/serial[1]' }]);
    expect(config.consolePort).toBe(0);
  });

  it('reads serial backends: pty, file, null and tcp on loopback', () => {
    const xml = MINIMAL.replace(
      '</os>',
      `</os><devices>
        <serial type='file'><source path='/tmp/com1.log' append='on'/><target port='0'/></serial>
        <serial type='tcp'><source mode='bind' host='127.0.0.1' service='4555'/><protocol type='raw'/><target port='1'/></serial>
        <serial type='null'><target port='3'/></serial>
        <serial type='pty'/>
      </devices>`,
    );
    const { config } = parseDomain(xml);
    expect(config.serials.map((s) => [s.port, s.backend])).toEqual([
      [0, { type: 'file', path: '/tmp/com1.log', append: true }],
      [1, { type: 'tcp', mode: 'bind', host: '127.0.0.1', port: 4555 }],
      [2, { type: 'pty' }],
      [3, { type: 'null' }],
    ]);
    expect(config.consolePort).toBe(2);
  });

  it('a console without a serial defines the serial port, as libvirt does', () => {
    const { config } = parseDomain(MINIMAL.replace('</os>', "</os><devices><console type='pty'/></devices>"));
    expect(config.serials).toEqual([{ port: 0, backend: { type: 'pty' }, where: 'devices/console[1]' }]);
    expect(config.consolePort).toBe(0);
  });

  it('reads tskvm options from its namespace in metadata, with any prefix', () => {
    const xml = MINIMAL.replace(
      '</os>',
      `</os><metadata><t:options xmlns:t='${TSKVM_NAMESPACE}'><t:format>multiboot</t:format><t:long-mode/><t:ksm/>` +
        `<t:console-log max-bytes='4096' files='2'/></t:options></metadata>`,
    );
    const { config } = parseDomain(xml);
    expect(config.tskvm).toEqual({ format: 'multiboot', longMode: true, ksm: true, consoleLog: { maxBytes: 4096, files: 2 } });
  });

  it('moves tskvm options at the top level into metadata (where libvirt admits them)', () => {
    const xml = MINIMAL.replace("<domain type='kvm'>", `<domain type='kvm' xmlns:tskvm='${TSKVM_NAMESPACE}'>`).replace(
      '</os>',
      '</os><tskvm:options><tskvm:format>flat</tskvm:format></tskvm:options>',
    );
    const domain = parseDomain(xml);
    expect(domain.config.tskvm.format).toBe('flat');
    const out = formatDomain(domain);
    expect(out).toMatch(/<metadata>\s*<tskvm:options xmlns:tskvm="urn:tskvm:domain:1.0">\s*<tskvm:format>flat<\/tskvm:format>/);
    expect(parseDomain(out).config.tskvm.format).toBe('flat');
  });

  it('maps memoryBacking to huge pages and pre-allocation', () => {
    const { config } = parseDomain(
      MINIMAL.replace('</os>', "</os><memoryBacking><hugepages/><allocation mode='immediate'/></memoryBacking>"),
    );
    expect(config.hugepages).toBe(true);
    expect(config.memPrealloc).toBe(true);
  });

  it('round-trips text with entities, character references and a CDATA section', () => {
    const xml = MINIMAL.replace(
      '<name>demo</name>',
      '<name>demo</name><description>a &lt;b&gt; &amp;#65; &#65;&#x42; <![CDATA[<raw> & more]]></description>',
    ).replace('</os>', "</os><devices><foo bar='it&apos;s &quot;q&quot;'>  two  spaces  </foo></devices>");
    const d = parseDomain(xml);
    expect(d.config.description).toBe('a <b> &#65; AB <raw> & more');
    const again = parseDomain(formatDomain(d));
    expect(again.config.description).toBe(d.config.description);
    expect(formatDomain(again)).toContain(`<foo bar="it&apos;s &quot;q&quot;">  two  spaces  </foo>`);
  });

  it('gives equal UUIDs one form', () => {
    expect(canonicalUuid('4DEA22B31D52D8F32516782E98AB3FA0')).toBe('4dea22b3-1d52-d8f3-2516-782e98ab3fa0');
  });
});

describe('parseDomain errors name the element, the attribute and the reason', () => {
  const cases: [string, string, RegExp][] = [
    ['malformed XML', '<domain type="kvm"><name>x</name>', /malformed XML at line 1, column \d+/],
    ['unclosed tags', '<domain><name>x</domain>', /malformed XML/],
    ['a root other than domain', '<network/>', /element <network>: the root element must be <domain>/],
    [
      'type other than kvm',
      MINIMAL.replace("type='kvm'", "type='qemu'"),
      /element <domain>, attribute type='qemu': tskvm runs guests on KVM only/,
    ],
    ['a missing name', MINIMAL.replace('<name>demo</name>', ''), /element <name>: missing/],
    ['a name with a slash', MINIMAL.replace('demo', 'a/b'), /element <name>: 'a\/b' is not a usable name/],
    ['an all-digit name', MINIMAL.replace('demo', '42'), /element <name>: '42' is all digits/],
    ['two names', MINIMAL.replace('<name>demo</name>', '<name>a</name><name>b</name>'), /element <name>: appears 2 times/],
    ['a bad uuid', MINIMAL.replace('</name>', '</name><uuid>not-a-uuid</uuid>'), /element <uuid>: 'not-a-uuid' is not a UUID/],
    [
      'an unknown unit',
      MINIMAL.replace("unit='MiB'", "unit='XB'"),
      /element <memory>, attribute unit='XB': unknown unit: use b, bytes, KiB/,
    ],
    [
      'memory that is not whole pages',
      MINIMAL.replace("<memory unit='MiB'>16</memory>", '<memory>1023</memory>'),
      /element <memory>: 1023 KiB is not a whole number of 4 KiB pages/,
    ],
    ['too much memory', MINIMAL.replace("unit='MiB'>16", "unit='GiB'>8"), /element <memory>: 8388608 KiB is more than tskvm supports/],
    [
      'currentMemory above memory',
      MINIMAL.replace('</memory>', "</memory><currentMemory unit='MiB'>32</currentMemory>"),
      /element <currentMemory>: 32768 KiB is more than <memory>/,
    ],
    ['vcpu zero', MINIMAL.replace('</memory>', '</memory><vcpu>0</vcpu>'), /element <vcpu>: '0' is not a whole number from 1/],
    [
      'vcpu current above the count',
      MINIMAL.replace('</memory>', "</memory><vcpu current='3'>2</vcpu>"),
      /element <vcpu>, attribute current='3': more than the maximum/,
    ],
    ['an os type other than hvm', MINIMAL.replace('>hvm<', '>xen<'), /element <os\/type>: 'xen'/],
    ['another architecture', MINIMAL.replace("arch='x86_64'", "arch='aarch64'"), /element <os\/type>, attribute arch='aarch64'/],
    ['a relative kernel', MINIMAL.replace('/boot/guest.bin', 'guest.bin'), /element <os\/kernel>: 'guest.bin' is relative/],
    ['a bad boot device', MINIMAL.replace('</kernel>', "</kernel><boot dev='usb'/>"), /element <os\/boot\[1\]>, attribute dev='usb'/],
    [
      'a bad lifecycle action',
      MINIMAL.replace('</os>', '</os><on_crash>explode</on_crash>'),
      /element <on_crash>: 'explode' is not an action/,
    ],
    [
      'a disk without target',
      MINIMAL.replace('</os>', "</os><devices><disk type='file'><source file='/x.img'/></disk></devices>"),
      /element <devices\/disk\[1\]\/target>: missing/,
    ],
    [
      'a disk without source',
      MINIMAL.replace('</os>', "</os><devices><disk type='file' device='disk'><target dev='vda'/></disk></devices>"),
      /element <devices\/disk\[1\]\/source>, attribute file: missing/,
    ],
    [
      'two disks on one target',
      MINIMAL.replace(
        '</os>',
        "</os><devices><disk type='file'><source file='/a'/><target dev='vda'/></disk>" +
          "<disk type='file'><source file='/b'/><target dev='vda'/></disk></devices>",
      ),
      /element <devices\/disk\[2\]\/target>, attribute dev='vda': used by another disk/,
    ],
    [
      'tcp serial off loopback',
      MINIMAL.replace('</os>', "</os><devices><serial type='tcp'><source mode='bind' host='0.0.0.0' service='4555'/></serial></devices>"),
      /element <devices\/serial\[1\]\/source>, attribute host='0.0.0.0': .*loopback only/,
    ],
    [
      'a serial port beyond COM4',
      MINIMAL.replace('</os>', "</os><devices><serial type='pty'><target port='4'/></serial></devices>"),
      /element <devices\/serial\[1\]\/target>, attribute port='4': tskvm's PC has COM1-COM4/,
    ],
    [
      'an unknown serial backend',
      MINIMAL.replace('</os>', "</os><devices><serial type='spicevmc'/></devices>"),
      /element <devices\/serial\[1\]>, attribute type='spicevmc': not a serial backend/,
    ],
    [
      'an unknown tskvm option',
      MINIMAL.replace('</os>', `</os><metadata><tskvm:options xmlns:tskvm='${TSKVM_NAMESPACE}'><tskvm:turbo/></tskvm:options></metadata>`),
      /element <metadata\/tskvm:options\/tskvm:turbo>: not a tskvm option/,
    ],
    [
      'an unknown tskvm format',
      MINIMAL.replace(
        '</os>',
        `</os><metadata><tskvm:options xmlns:tskvm='${TSKVM_NAMESPACE}'><tskvm:format>exe</tskvm:format></tskvm:options></metadata>`,
      ),
      /element <metadata\/tskvm:options\/tskvm:format>: 'exe'/,
    ],
    [
      'a topology that does not add up',
      MINIMAL.replace('</os>', "</os><cpu><topology sockets='1' cores='2' threads='2'/></cpu>"),
      /element <cpu\/topology>: sockets × dies × cores × threads is 4, but <vcpu> is 1/,
    ],
    ['an undefined entity', MINIMAL.replace('demo', 'de&nbsp;mo'), /unknown entity '&nbsp;'/],
    ['a DOCTYPE', `<!DOCTYPE domain [<!ENTITY x "y">]>${MINIMAL}`, /a DOCTYPE is not allowed/],
  ];
  it.each(cases)('%s', (_what, xml, message) => {
    const e = usageError(() => parseDomain(xml, 'demo.xml'));
    expect(e.message).toMatch(/^demo\.xml: /);
    expect(e.message).toMatch(message);
  });
});

describe('libvirt accepts what tskvm writes', () => {
  itVirsh('a normalised minimal domain, with tskvm options', () => {
    const xml = MINIMAL.replace("<domain type='kvm'>", `<domain type='kvm' xmlns:tskvm='${TSKVM_NAMESPACE}'>`).replace(
      '</os>',
      "</os><tskvm:options><tskvm:format>flat</tskvm:format><tskvm:console-log max-bytes='65536' files='1'/></tskvm:options>",
    );
    expectLibvirtAccepts(formatDomain(parseDomain(xml)));
  });

  itVirsh('a QEMU domain with elements tskvm keeps but does not use', () => {
    expectLibvirtAccepts(formatDomain(parseDomain(QEMU_DOMAIN)));
  });

  itVirsh('every serial backend tskvm reads', () => {
    const xml = MINIMAL.replace(
      '</os>',
      `</os><devices>
        <disk type='file' device='disk'><source file='/tmp/d.img'/><target dev='vda' bus='virtio'/><readonly/></disk>
        <serial type='file'><source path='/tmp/com1.log' append='on'/><target port='0'/></serial>
        <serial type='tcp'><source mode='bind' host='127.0.0.1' service='4555'/><protocol type='raw'/><target port='1'/></serial>
        <serial type='pty'><target port='2'/></serial>
        <serial type='null'><target port='3'/></serial>
        <console type='pty'><target type='serial' port='2'/></console>
      </devices>`,
    );
    expectLibvirtAccepts(formatDomain(parseDomain(xml)));
  });
});
