/**
 * What tskvm-qemu prints when a harness probes it as it probes qemu-system-x86_64: `-h` (its first
 * line is parsed for QEMU's version: kvm-unit-tests reads `QEMU emulator version 7.2.0`),
 * `-version`, and the lists behind `-device help`, `-cpu help`, `-machine help` and `-accel help`,
 * in QEMU's formats and naming only what tskvm has.
 */
import { CPUID_FEATURES } from '../arch/x86/cpuid.js';

/** The qemu-system-x86_64 whose options and answers this front end follows. */
export const QEMU_VERSION = '7.2.0';
/** QEMU's i440FX machine of that version: tskvm's PC is this one (no q35, no microvm). */
export const MACHINE_NAME = 'pc-i440fx-7.2';

/** `QEMU emulator version 7.2.0 (tskvm 0.1.0)`: QEMU's first line, with tskvm's version where QEMU puts its package. */
export function versionText(tskvmVersion: string): string {
  return (
    `QEMU emulator version ${QEMU_VERSION} (tskvm ${tskvmVersion})\n` +
    "tskvm-qemu: tskvm's QEMU-compatible front end, not QEMU: it takes the options test harnesses use (docs/qemu-frontend.md)\n"
  );
}

export function helpText(tskvmVersion: string): string {
  return `${versionText(tskvmVersion)}usage: tskvm-qemu [options]

tskvm runs the guest on KVM as QEMU's pc machine (i440FX, ${MACHINE_NAME}) with the host's CPU;
options it cannot honour are refused, naming the option. The options it takes:

Standard options:
-h or -help     display this help and exit
-version        display version information and exit
-machine [type=]pc[,accel=kvm][,kernel-irqchip=on][,vmport=on|auto][,pit=on|off][,smm=off]...
                the i440FX PC only; q35, microvm and the TCG accelerator are refused
-M              the same as -machine
-accel kvm[,kernel-irqchip=on]   -enable-kvm   (KVM is the only accelerator)
-cpu host|max|MODEL[,+feature|-feature|feature=on|off][,vendor=STRING][,enforce]...
                the host's CPU; a named model is taken as host (with a warning); -feature takes a
                feature out of CPUID, +feature is a warning when the host lacks it ('-cpu help')
-smp [cpus=]n[,maxcpus=n][,sockets=n][,cores=n][,threads=n]   vCPUs (up to 254)
-m [size=]megs  guest RAM (default 128M; suffixes K, M, G; at most 4G)
-mem-prealloc   commit all guest RAM up front
-overcommit mem-lock=off|cpu-pm=off   (on is refused)
-name string    accepted and ignored
-global kvm-pit.lost_tick_policy=discard   accepted (tskvm's in-kernel PIT re-injects lost ticks)
-device pc-testdev | pci-testdev | isa-debug-exit,iobase=0xf4[,iosize=1|2|4]
                QEMU's test devices, always present in tskvm's PC ('-device help' lists them)
-nodefaults     no default serial port
-no-reboot      exit when the guest resets (tskvm always does: it cannot reboot a guest)

Display and serial:
-display none   -nographic   -vga none|std   (tskvm has no graphical display)
-serial stdio|mon:stdio|file:PATH|null|none   COM1, then COM2-COM4 for each further -serial
-monitor none   (tskvm has no monitor: QMP, -chardev and -mon are refused)

Boot:
-kernel file    the kernel: multiboot, ELF, or a flat binary
-append cmdline the kernel's command line (multiboot)
-initrd "file1 arg,file2"   multiboot modules
-fda/-fdb file, -hda/-hdb file, -drive file=file,format=raw[,if=floppy|ide][,readonly=on], or
                a bare image: raw disks booted through tskvm's BIOS (a floppy is known by its size)
-boot [order=]a|c   the floppy or the hard disk first (default: the hard disk)
-snapshot       keep the guest's disk writes in memory (by default they reach the files, as in QEMU)

Debugging:
-s              shorthand for -gdb tcp::1234
-gdb tcp::port  gdb's remote protocol on 127.0.0.1:port
-S              stop before the first instruction until gdb continues (needs -s or -gdb)

Exit status, as QEMU's: (v << 1) | 1 when the guest writes v to isa-debug-exit (port 0xf4);
0 when the guest resets (a triple fault too), powers off, halts for good, or a signal ends the
run ("terminating on signal N" on stderr); 1 for a bad option or a host that cannot run KVM;
125 when KVM fails the guest (internal error, failed entry), where QEMU would stop and wait.

For everything else use tskvm itself: tskvm run --help.
`;
}

interface DeviceEntry {
  name: string;
  bus: string;
  desc?: string;
}

/** What -device accepts: QEMU's own test devices, which tskvm's PC always has. */
export const DEVICES: readonly DeviceEntry[] = [
  { name: 'isa-debug-exit', bus: 'ISA' },
  { name: 'pc-testdev', bus: 'ISA' },
  { name: 'pci-testdev', bus: 'PCI', desc: 'PCI Test Device' },
];

/** `-device help`: QEMU's `name "x", bus Y, desc "z"` lines under their category. */
export function deviceListText(): string {
  const lines = DEVICES.map((d) => `name "${d.name}", bus ${d.bus}${d.desc ? `, desc "${d.desc}"` : ''}`);
  return `Misc devices:\n${lines.join('\n')}\n`;
}

export function cpuListText(): string {
  const flags = Object.keys(CPUID_FEATURES).sort();
  const wrapped: string[] = [];
  let line = ' ';
  for (const flag of flags) {
    if (line.length + flag.length + 1 > 80) {
      wrapped.push(line);
      line = ' ';
    }
    line += ` ${flag}`;
  }
  wrapped.push(line);
  return (
    'Available CPUs:\n' +
    "x86 host                  this host's CPU, as KVM supports it (tskvm filters what it cannot give a guest)\n" +
    'x86 max                   the same as host\n' +
    '(a named model such as qemu64 or IvyBridge is taken as host, with a warning)\n\n' +
    `Recognized CPUID flags (-flag takes one out; +flag needs the host to have it):\n${wrapped.join('\n')}\n`
  );
}

export function machineListText(): string {
  return (
    'Supported machines are:\n' +
    `pc                   Standard PC (i440FX + PIIX, 1996) (alias of ${MACHINE_NAME})\n` +
    `${MACHINE_NAME.padEnd(20)} Standard PC (i440FX + PIIX, 1996) (default)\n`
  );
}

export function accelListText(): string {
  return 'Accelerators supported in QEMU binary:\nkvm\n';
}
