/**
 * The host as virsh's nodeinfo shows it (CPU model, CPUs, frequency, sockets, cores, threads,
 * NUMA cells, memory), and the over-commit checks a start makes: libvirt's advice is that many
 * small guests on a few host CPUs are fine, but one guest with more vCPUs than the host has CPUs
 * is not (its vCPUs take turns, and a guest that spin-waits on another vCPU slows down badly);
 * and that the running guests' memory beyond the host's works only until they touch it.
 */
import { readdirSync } from 'node:fs';
import os from 'node:os';
import { hostCpus, readText } from '../host.js';

export interface NodeInfo {
  cpuModel: string;
  cpus: number;
  /** CPUs this process may run on (its affinity mask): what guests' vCPUs share. */
  usableCpus: number;
  mhz: number;
  sockets: number;
  coresPerSocket: number;
  threadsPerCore: number;
  numaCells: number;
  memoryKiB: number;
}

/** What running domains commit against the host. */
export interface Commitment {
  domains: number;
  vcpus: number;
  memoryKiB: number;
}

const KIB = 1024;

export function nodeInfo(): NodeInfo {
  const cpus = os.cpus();
  const cpuinfo = readText('/proc/cpuinfo') ?? '';
  const sockets = new Set<string>();
  let coresPerSocket = 0;
  let siblings = 0;
  let mhz = 0;
  for (const block of cpuinfo.split('\n\n')) {
    const field = (name: string): string | undefined => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(block)?.[1];
    const socket = field('physical id');
    if (socket !== undefined) sockets.add(socket);
    coresPerSocket = Math.max(coresPerSocket, Number(field('cpu cores') ?? 0));
    siblings = Math.max(siblings, Number(field('siblings') ?? 0));
    mhz ||= Number(field('cpu MHz') ?? 0);
  }
  const socketCount = Math.max(sockets.size, 1);
  const cores = coresPerSocket || Math.max(Math.floor(cpus.length / socketCount), 1);
  return {
    cpuModel: os.machine(),
    cpus: cpus.length,
    usableCpus: hostCpus(),
    mhz: Math.round(cpus[0]?.speed || mhz),
    sockets: socketCount,
    coresPerSocket: cores,
    threadsPerCore: siblings && cores ? Math.max(Math.round(siblings / cores), 1) : 1,
    numaCells: numaNodes(),
    memoryKiB: Math.floor(os.totalmem() / KIB),
  };
}

function numaNodes(): number {
  try {
    return Math.max(readdirSync('/sys/devices/system/node').filter((e) => /^node\d+$/.test(e)).length, 1);
  } catch {
    return 1;
  }
}

/**
 * Warnings for starting a domain with `vcpus` and `memoryKiB` while `running` is committed:
 * one domain with more vCPUs than host CPUs, and the running domains' memory (with this one) over
 * the host's.
 */
export function overcommitWarnings(
  name: string,
  vcpus: number,
  memoryKiB: number,
  running: Commitment,
  node: NodeInfo = nodeInfo(),
): string[] {
  const warnings: string[] = [];
  if (vcpus > node.usableCpus) {
    warnings.push(
      `domain '${name}' has ${vcpus} vCPUs but the host has ${node.usableCpus} CPUs: ` +
        `one guest with more vCPUs than host CPUs is not recommended ` +
        '(its vCPUs take turns, and a guest that spin-waits on another vCPU slows down badly); many small guests are fine',
    );
  }
  const total = running.memoryKiB + memoryKiB;
  if (total > node.memoryKiB) {
    warnings.push(
      `running domains' memory with '${name}' (${mib(total)} MiB in ${running.domains + 1} domains) ` +
        `is more than the host's (${mib(node.memoryKiB)} MiB): ` +
        'guest pages are committed as guests touch them, so this works until they touch more than the host has; ' +
        'then the host swaps or the OOM killer ends a supervisor',
    );
  }
  return warnings;
}

const mib = (kib: number): number => Math.round(kib / KIB);
