/**
 * tskvm-qemu's command line: every option it takes, as kvm-unit-tests' run_tests.sh and
 * OS-development Makefiles spell them, comes out as the run tskvm makes; every option it refuses
 * is a UsageError that names the option and says why.
 */
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { parseQemuArgs, QEMU_DEFAULT_MEMORY, QEMU_GDB_DEFAULT_PORT, type QemuRun } from '../../src/qemu/parse.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

function run(...argv: string[]): QemuRun {
  const invocation = parseQemuArgs(['-kernel', 'k.flat', ...argv]);
  if (invocation.kind !== 'run') throw new Error(`expected a run, got ${invocation.what}`);
  return invocation.run;
}

function refused(argv: string[], message: RegExp): void {
  let err: unknown;
  try {
    parseQemuArgs(argv);
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${argv.join(' ')} to be refused`).toBeInstanceOf(UsageError);
  expect((err as Error).message).toMatch(message);
}

describe('parseQemuArgs: the kvm-unit-tests command line', () => {
  it("takes x86/run's whole command line", () => {
    const r = run(
      '--no-reboot',
      '-nodefaults',
      '-global',
      'kvm-pit.lost_tick_policy=discard',
      '-device',
      'pc-testdev',
      '-device',
      'isa-debug-exit,iobase=0xf4,iosize=0x4',
      '-display',
      'none',
      '-serial',
      'stdio',
      '-device',
      'pci-testdev',
      '-machine',
      'accel=kvm',
      '-smp',
      '2',
      '-append',
      'a b',
      '-initrd',
      '/tmp/env',
    );
    expect(r).toMatchObject({
      kernel: 'k.flat',
      append: 'a b',
      initrd: '/tmp/env',
      cpus: 2,
      memoryBytes: QEMU_DEFAULT_MEMORY,
      serial: ['COM1=stdio'],
      noReboot: true,
      gdbPort: undefined,
      gdbWait: false,
    });
    expect(r.warnings).toEqual([expect.stringMatching(/^-global kvm-pit\.lost_tick_policy=discard: KVM re-injects/)]);
  });

  it('takes -opt and --opt alike, and the last -kernel', () => {
    expect(parseQemuArgs(['--kernel', 'a', '-kernel', 'b', '--serial', 'stdio', '--display', 'none'])).toMatchObject({
      kind: 'run',
      run: { kernel: 'b', serial: ['COM1=stdio'] },
    });
  });

  it('takes the per-test qemu_params of unittests.cfg', () => {
    expect(run('-m', '2048').memoryBytes).toBe(2048 * MiB);
    expect(run('-m', '4g').memoryBytes).toBe(4 * GiB);
    expect(run('-m', '256').memoryBytes).toBe(256 * MiB);
    expect(run('-m', 'size=512M').memoryBytes).toBe(512 * MiB);
    expect(run('-m', '2560').memoryBytes).toBe(2560 * MiB);
    expect(run('-machine', 'vmport=on').warnings.join()).not.toMatch(/vmport/);
    expect(run('-machine', 'pit=off').warnings).toContainEqual(
      expect.stringMatching(/pit=off: tskvm's PC always has KVM's in-kernel 8254 PIT/),
    );
    expect(run('-enable-kvm', '-accel', 'kvm', '-M', 'pc,accel=kvm:tcg,kernel-irqchip=on').kernel).toBe('k.flat');
    expect(run('-machine', 'pc-i440fx-7.2,smm=off,usb=off,hpet=on').kernel).toBe('k.flat');
    expect(run('-overcommit', 'mem-lock=off,cpu-pm=off').kernel).toBe('k.flat');
    expect(run('-cpu', 'max').cpu).toMatchObject({ model: 'max', remove: [], require: [] });
  });

  it('reads -smp as QEMU does', () => {
    expect(run('-smp', '4').cpus).toBe(4);
    expect(run('-smp', 'cpus=3').cpus).toBe(3);
    expect(run('-smp', '2,maxcpus=2').cpus).toBe(2);
    const topo = run('-smp', 'sockets=2,cores=2,threads=1');
    expect(topo.cpus).toBe(4);
    expect(topo.warnings).toContainEqual(expect.stringMatching(/CPUID topology leaves are the host's/));
    refused(['-kernel', 'k', '-smp', '4,maxcpus=8'], /^-smp 4,maxcpus=8 is not supported by tskvm \(maxcpus=8: tskvm has no CPU hotplug/);
    refused(['-kernel', 'k', '-smp', '3,sockets=2'], /^-smp 3,sockets=2 is not supported by tskvm \(the topology has 2 CPUs but cpus=3/);
    refused(['-kernel', 'k', '-smp', '0'], /^-smp 0 is not supported by tskvm \(cpus=0: give a whole number from 1\)/);
  });

  it("routes -serial to COM1-COM4 in order, and follows QEMU's default serial port", () => {
    expect(run('-serial', 'stdio', '-serial', 'file:/tmp/com2', '-serial', 'null', '-serial', 'none').serial).toEqual([
      'COM1=stdio',
      'COM2=file:/tmp/com2',
      'COM3=null',
      'COM4=null',
    ]);
    expect(run('-serial', 'mon:stdio').serial).toEqual(['COM1=stdio']);
    expect(run('-nographic').serial).toEqual(['COM1=stdio']);
    expect(run('-nographic').warnings).toEqual([]);
    // -nodefaults: no serial port unless one is asked for.
    expect(run('-nodefaults', '-display', 'none').serial).toEqual(['COM1=null']);
    expect(run('-nodefaults', '-display', 'none').warnings).toEqual([]);
    // No display and no -serial: QEMU's console on its window, which tskvm does not have.
    expect(run().warnings).toEqual([
      expect.stringMatching(/default serial console: the guest's COM1 output is dropped \(add -serial stdio\)/),
      expect.stringMatching(/no graphical display: running as with -display none/),
    ]);
    expect(run('-serial', 'vc', '-display', 'none').warnings).toContainEqual(
      expect.stringMatching(/^-serial vc: .*COM1's output is dropped/),
    );
    refused(
      ['-kernel', 'k', '-serial', 'stdio', '-serial', 'stdio'],
      /^-serial stdio is not supported by tskvm \(only one serial port can be on stdio/,
    );
    refused(
      ['-kernel', 'k', '-serial', 'pty'],
      /^-serial pty is not supported by tskvm \(tskvm routes a serial port to stdio, mon:stdio, file:PATH, null or none\)/,
    );
    refused(['-kernel', 'k', '-serial', 'tcp::4444,server'], /^-serial tcp::4444,server is not supported/);
    refused(
      ['-kernel', 'k', ...['1', '2', '3', '4', '5'].flatMap(() => ['-serial', 'null'])],
      /^-serial null is not supported by tskvm \(tskvm's PC has 4 serial ports/,
    );
  });

  it('maps -s, -gdb and -S to the gdb server', () => {
    expect(run('-s')).toMatchObject({ gdbPort: QEMU_GDB_DEFAULT_PORT, gdbWait: false });
    expect(run('-s', '-S')).toMatchObject({ gdbPort: 1234, gdbWait: true });
    expect(run('-gdb', 'tcp::5555')).toMatchObject({ gdbPort: 5555 });
    expect(run('-gdb', 'tcp:localhost:5556').gdbPort).toBe(5556);
    expect(run('-gdb', 'tcp:127.0.0.1:5557').gdbPort).toBe(5557);
    const any = run('-gdb', 'tcp:0.0.0.0:5558');
    expect(any.gdbPort).toBe(5558);
    expect(any.warnings).toContainEqual(expect.stringMatching(/listens on 127\.0\.0\.1 only/));
    expect(run('-s', '-gdb', 'none').gdbPort).toBeUndefined();
    refused(['-kernel', 'k', '-S'], /^-S without -s or -gdb is not supported by tskvm \(.*add -s or -gdb tcp::PORT/);
    refused(
      ['-kernel', 'k', '-gdb', 'unix:/tmp/sock'],
      /^-gdb unix:\/tmp\/sock is not supported by tskvm \(tskvm's gdb server listens on TCP/,
    );
    refused(['-kernel', 'k', '-gdb', 'tcp:10.0.0.1:1234'], /^-gdb tcp:10\.0\.0\.1:1234 is not supported by tskvm \(.*127\.0\.0\.1 only/);
    refused(['-kernel', 'k', '-gdb', 'tcp::99999'], /^-gdb tcp::99999 is not supported/);
  });

  it('boots disk images through the BIOS: -fda, -hda, -drive, a bare image, -boot, -snapshot', () => {
    const disks = (...argv: string[]): QemuRun => {
      const invocation = parseQemuArgs(argv);
      if (invocation.kind !== 'run') throw new Error('expected a run');
      return invocation.run;
    };
    expect(disks('-fda', 'f.img', '-hda', 'h.img')).toMatchObject({
      kernel: undefined,
      disks: [
        { path: 'f.img', kind: 'floppy', option: '-fda f.img' },
        { path: 'h.img', kind: 'hard disk', option: '-hda h.img' },
      ],
      boot: undefined,
      diskWrite: true,
    });
    expect(disks('-drive', 'format=raw,file=os.img').disks).toEqual([
      { path: 'os.img', kind: 'hard disk', option: '-drive format=raw,file=os.img' },
    ]);
    expect(disks('-drive', 'file=a.img,if=floppy,index=0,format=raw').disks[0]!.kind).toBe('floppy');
    expect(disks('os.img', '-serial', 'stdio').disks).toEqual([{ path: 'os.img', kind: 'hard disk', option: 'os.img' }]);
    expect(disks('-fda', 'a.img', '-hda', 'c.img', '-boot', 'order=ac,menu=off').boot).toBe('a');
    expect(disks('-hda', 'c.img', '-boot', 'c').boot).toBe('c');
    expect(disks('-hda', 'c.img', '-snapshot').diskWrite).toBe(false);
    expect(disks('-drive', 'file=c.img,format=raw,readonly=on').diskWrite).toBe(false);
    expect(disks('-drive', 'file=c.img,snapshot=on').diskWrite).toBe(false);
  });

  it('accepts the options that change nothing in tskvm', () => {
    const r = run(
      '-name',
      'guest=x,debug-threads=on',
      '-monitor',
      'none',
      '-vga',
      'none',
      '-net',
      'none',
      '-nic',
      'none',
      '-display',
      'none',
    );
    expect(r.warnings).toEqual([]);
    expect(r.serial).toEqual(['COM1=null']);
    expect(run('-mem-prealloc').memPrealloc).toBe(true);
  });
});

describe('parseQemuArgs: help and lists', () => {
  it('answers -h, -help, --help, -version and --version at once', () => {
    for (const flag of ['-h', '-help', '--help']) expect(parseQemuArgs([flag, '-not-an-option'])).toEqual({ kind: 'print', what: 'help' });
    for (const flag of ['-version', '--version']) expect(parseQemuArgs([flag])).toEqual({ kind: 'print', what: 'version' });
  });

  it("answers -device '?' and help, -cpu help, -machine help, -accel help", () => {
    for (const v of ['?', 'help']) {
      expect(parseQemuArgs(['-device', v])).toEqual({ kind: 'print', what: 'devices' });
      expect(parseQemuArgs(['-cpu', v])).toEqual({ kind: 'print', what: 'cpus' });
      expect(parseQemuArgs(['-machine', v])).toEqual({ kind: 'print', what: 'machines' });
      expect(parseQemuArgs(['-accel', v])).toEqual({ kind: 'print', what: 'accels' });
    }
  });
});

describe('parseQemuArgs: what tskvm refuses, naming the option', () => {
  const k = ['-kernel', 'k.flat'];
  it("refuses the intel_iommu test's machine and devices", () => {
    refused(
      [...k, '-M', 'q35,kernel-irqchip=split'],
      /^-machine q35 is not supported by tskvm \(tskvm's PC is QEMU's i440FX pc machine; q35/,
    );
    refused(
      [...k, '-machine', 'pc,kernel-irqchip=split'],
      /^-machine kernel-irqchip=split is not supported by tskvm \(tskvm always uses KVM's in-kernel PIC/,
    );
    refused(
      [...k, '-device', 'intel-iommu,intremap=on,eim=off'],
      /^-device intel-iommu is not supported by tskvm \(tskvm's PC has no IOMMU/,
    );
    refused([...k, '-device', 'edu'], /^-device edu is not supported by tskvm \(QEMU's educational PCI device/);
    refused([...k, '-device', 'hyperv-testdev'], /^-device hyperv-testdev is not supported by tskvm \(tskvm offers the guest no Hyper-V/);
  });

  it('refuses migration, the monitor and QMP', () => {
    refused(
      [...k, '-incoming', 'unix:/tmp/x'],
      /^-incoming is not supported by tskvm \(tskvm has no live migration; .*--save FILE --save-on PATTERN/,
    );
    refused([...k, '-qmp', 'unix:/tmp/q,server,nowait'], /^-qmp is not supported by tskvm \(tskvm has no QEMU monitor or QMP/);
    refused([...k, '-chardev', 'socket,id=c'], /^-chardev is not supported by tskvm/);
    refused([...k, '-mon', 'chardev=c'], /^-mon is not supported by tskvm/);
    refused([...k, '-monitor', 'stdio'], /^-monitor stdio is not supported by tskvm \(tskvm has no QEMU monitor/);
    refused([...k, '-no-shutdown'], /^-no-shutdown is not supported by tskvm \(QEMU then stops and waits for its monitor/);
  });

  it('refuses disks and kernels together, CD-ROMs, other formats and interfaces', () => {
    refused(
      [...k, '-hda', 'x.img'],
      /^-kernel with -hda x\.img is not supported by tskvm \(tskvm's BIOS serves disks to a boot sector it boots, not to a -kernel/,
    );
    refused(['-cdrom', 'x.iso'], /^-cdrom is not supported by tskvm \(tskvm's BIOS has no CD-ROM boot/);
    refused(
      ['-drive', 'file=x.qcow2,format=qcow2'],
      /^-drive file=x\.qcow2,format=qcow2 is not supported by tskvm \(format=qcow2: tskvm's BIOS reads raw images only/,
    );
    refused(
      ['-drive', 'file=x,if=virtio'],
      /^-drive file=x,if=virtio is not supported by tskvm \(if=virtio: tskvm's BIOS has floppies and hard disks only/,
    );
    refused(['-drive', 'file=x,media=cdrom'], /media=cdrom: tskvm's BIOS has no CD-ROM boot/);
    refused(['-drive', 'format=raw'], /^-drive format=raw is not supported by tskvm \(give the image with file=FILE\)/);
    refused(['-hda', 'x', '-boot', 'd'], /^-boot d is not supported by tskvm \(d: tskvm's BIOS boots a floppy \(a\) or a hard disk \(c\)/);
    refused(['-hda', 'x', '-drive', 'file=y,readonly=on'], /^readonly=on on some disks only is not supported by tskvm/);
  });

  it('refuses firmware, displays and accelerators tskvm does not have', () => {
    refused([...k, '-bios', 'OVMF.fd'], /^-bios is not supported by tskvm \(tskvm loads the -kernel itself/);
    refused([...k, '-display', 'gtk'], /^-display gtk is not supported by tskvm \(tskvm has no graphical display: use -display none/);
    refused([...k, '-vga', 'virtio'], /^-vga virtio is not supported by tskvm/);
    refused([...k, '-accel', 'tcg'], /^-accel tcg is not supported by tskvm \(tskvm runs guests on KVM only, never with TCG emulation/);
    refused([...k, '-machine', 'accel=tcg:kvm'], /^-machine accel=tcg:kvm is not supported by tskvm \(tskvm runs guests on KVM only/);
    refused([...k, '-machine', 'microvm'], /^-machine microvm is not supported by tskvm \(tskvm has one machine, QEMU's pc/);
    refused(
      [...k, '-machine', 'vmport=off'],
      /^-machine vmport=off is not supported by tskvm \(tskvm's PC always answers VMware's backdoor/,
    );
    refused([...k, '-machine', 'smm=on'], /^-machine smm=on is not supported by tskvm \(tskvm has no system management mode/);
    refused([...k, '-machine', 'acpi=off'], /^-machine acpi=off is not supported by tskvm \(tskvm's PC always has its ACPI tables\)/);
    refused([...k, '-machine', 'nvdimm=on'], /^-machine nvdimm=on is not supported by tskvm \(tskvm takes accel, kernel-irqchip/);
    refused(
      [...k, '-overcommit', 'cpu-pm=on'],
      /^-overcommit cpu-pm=on is not supported by tskvm \(tskvm does not let guests halt or pause without exiting/,
    );
    refused([...k, '-netdev', 'user,id=n'], /^-netdev is not supported by tskvm \(tskvm has no network devices\)/);
    refused([...k, '-nic', 'user'], /^-nic user is not supported by tskvm \(tskvm has no network devices/);
    refused([...k, '-d', 'int'], /^-d is not supported by tskvm \(for a log of VM exits use tskvm run --trace/);
  });

  it('refuses devices and -global settings it does not have', () => {
    refused(
      [...k, '-device', 'isa-debug-exit,iobase=0x501'],
      /^-device isa-debug-exit,iobase=0x501 is not supported by tskvm \(tskvm's debug-exit port is at 0xf4/,
    );
    refused(
      [...k, '-device', 'isa-debug-exit'],
      /^-device isa-debug-exit is not supported by tskvm \(QEMU's default iobase is 0x501, and tskvm's debug-exit port is at 0xf4/,
    );
    expect(run('-device', 'isa-debug-exit,iobase=244,iosize=1').kernel).toBe('k.flat');
    refused(
      [...k, '-device', 'isa-debug-exit,iosize=8'],
      /^-device isa-debug-exit,iosize=8 is not supported by tskvm \(iosize: use 1, 2 or 4\)/,
    );
    refused(
      [...k, '-device', 'pci-testdev,membar=64k'],
      /^-device pci-testdev,membar=64k is not supported by tskvm \(pci-testdev takes no properties/,
    );
    refused([...k, '-device', 'virtio-net-pci'], /^-device virtio-net-pci is not supported by tskvm \(tskvm has no virtio devices\)/);
    refused(
      [...k, '-device', 'e1000'],
      /^-device e1000 is not supported by tskvm \(it is not a device tskvm's PC has \('-device help' lists/,
    );
    refused([...k, '-global', 'isa-fdc.driveA=x'], /^-global isa-fdc\.driveA=x is not supported by tskvm/);
    expect(run('-global', 'driver=kvm-pit,property=lost_tick_policy,value=delay').warnings.join()).not.toMatch(/kvm-pit/);
  });

  it('refuses memory it cannot give and hotplug', () => {
    refused([...k, '-m', '8G'], /^-m 8G is not supported by tskvm \(at most 4G of guest memory is supported; /);
    refused(
      [...k, '-m', '1G,slots=2,maxmem=4G'],
      /^-m 1G,slots=2,maxmem=4G is not supported by tskvm \(slots: tskvm has no memory hotplug/,
    );
    refused([...k, '-m', 'lots'], /^-m lots is not supported by tskvm \(use a number with a suffix K, M or G/);
  });

  it('names an unknown option and a missing argument, and asks for a kernel', () => {
    refused(
      [...k, '-foo'],
      /^-foo is not supported by tskvm \(it is not among the qemu-system-x86_64 options tskvm-qemu takes: see 'tskvm-qemu -h'/,
    );
    refused([...k, '--frobnicate'], /^-frobnicate is not supported by tskvm/);
    // QEMU has no -opt=value spelling: the whole word is the option's name.
    refused([...k, '-m=256'], /^-m=256 is not supported by tskvm/);
    refused([...k, '-m'], /^-m: requires an argument$/);
    // Names of Object.prototype's members are no options, devices or features.
    refused([...k, '-constructor'], /^-constructor is not supported by tskvm \(it is not among/);
    refused([...k, '-device', 'toString'], /^-device toString is not supported by tskvm \(it is not a device/);
    refused([...k, '-cpu', 'host,-constructor'], /'constructor' is not a CPUID feature tskvm knows/);
    refused(['-serial', 'stdio'], /^nothing to boot: give a kernel with -kernel FILE, or a disk image with -fda, -hda or -drive/);
  });
});
