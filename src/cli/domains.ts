/**
 * virsh's commands on tskvm's command line: define, undefine, list, start, console, shutdown,
 * destroy, reboot, suspend, resume, save, restore, dumpxml, dominfo, domstate, domstats, edit,
 * backup, restore-backup, nodeinfo. Each parses its arguments, calls the library
 * (src/domains/commands.ts) and prints what virsh prints, in virsh's shapes (the `list` table,
 * "Domain 'x' started" and a blank line); diagnostics go to stderr; errors are thrown for
 * main's reportError (UsageError: exit 2).
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { stderr, stdout } from './stdio.js';
import {
  attachConsole,
  backupDomain,
  defineDomain,
  destroyDomain,
  domInfo,
  domStats,
  dumpXml,
  editDomain,
  listDomains,
  nodeReport,
  rebootDomain,
  restoreBackup,
  restoreDomain,
  resumeDomain,
  saveDomain,
  shutdownDomain,
  startDomain,
  suspendDomain,
  undefineDomain,
  type DomainOptions,
  type DomainSummary,
} from '../domains/commands.js';

interface ConnectOption {
  connect?: string;
}

const CONNECT_HELP = 'tskvm:///session (default: $TSKVM_HOME or ~/.local/share/tskvm) or tskvm:///system (/var/lib/tskvm)';

function storeOptions(opts: ConnectOption): DomainOptions {
  return opts.connect === undefined ? {} : { connect: opts.connect };
}

/** virsh's confirmations end with a blank line. */
function say(line: string): void {
  stdout().write(`${line}\n\n`);
}

function warn(kind: 'note' | 'warning', message: string): void {
  stderr().write(`tskvm: ${kind}: ${message}\n`);
}

/** Registers the domain subcommands on the tskvm program (src/cli/main.ts calls this once). */
export function registerDomainCommands(program: Command): void {
  const command = (name: string, description: string): Command =>
    program.command(name).description(description).option('--connect <uri>', CONNECT_HELP);

  command('define', 'define (or redefine) a domain from an XML file, as virsh define')
    .argument('<file>', 'domain XML (libvirt format)')
    .action(async (file: string, opts: ConnectOption) => {
      let xml: string;
      try {
        xml = await readFile(file, 'utf8');
      } catch (err) {
        throw new UsageError(`cannot read '${file}': ${(err as Error).message}`);
      }
      const result = await defineDomain(xml, { ...storeOptions(opts), source: file });
      for (const note of result.notes) warn('note', note);
      say(`Domain '${result.name}' defined from ${file}`);
    });

  command('undefine', 'remove the definition of an inactive domain (its images and logs stay)')
    .argument('<domain>', 'name, UUID or id')
    .action(async (ref: string, opts: ConnectOption) => {
      const { name } = await undefineDomain(ref, storeOptions(opts));
      say(`Domain '${name}' has been undefined`);
    });

  command('list', 'list domains: Id, Name, State (active ones; --all for every defined domain)')
    .option('--all', 'inactive domains too')
    .option('--inactive', 'only inactive domains')
    .option('--name', 'only the names, one a line')
    .option('--json', 'as JSON, with vCPUs, memory and UUIDs')
    .action(async (opts: ConnectOption & { all?: boolean; inactive?: boolean; name?: boolean; json?: boolean }) => {
      let domains = await listDomains({ ...storeOptions(opts), all: opts.all === true || opts.inactive === true });
      if (opts.inactive) domains = domains.filter((d) => !d.active);
      if (opts.json) stdout().write(`${JSON.stringify(domains.map(jsonSummary), null, 2)}\n`);
      else if (opts.name) stdout().write(`${domains.map((d) => `${d.name}\n`).join('')}\n`);
      else stdout().write(formatList(domains));
    });

  command('start', 'start a defined domain in its own supervisor process')
    .argument('<domain>', 'name or UUID')
    .option('--console', 'attach to its console once it runs (Ctrl-] detaches)')
    .option('--force-console', 'with --console: take the console over from another session')
    .action(async (ref: string, opts: ConnectOption & { console?: boolean; forceConsole?: boolean }) => {
      const result = await startDomain(ref, storeOptions(opts));
      for (const warning of result.warnings) warn('warning', warning);
      say(`Domain '${result.name}' started`);
      if (opts.console) await consoleSession(result.name, storeOptions(opts), opts.forceConsole === true);
    });

  command('console', "attach to a running domain's serial console (Ctrl-] detaches)")
    .argument('<domain>', 'name, UUID or id')
    .option('--force', 'take the console over from another session')
    .action(async (ref: string, opts: ConnectOption & { force?: boolean }) => {
      await consoleSession(ref, storeOptions(opts), opts.force === true);
    });

  const simple = (
    name: string,
    description: string,
    run: (ref: string, o: DomainOptions) => Promise<{ name: string }>,
    message: (n: string) => string,
  ): void => {
    command(name, description)
      .argument('<domain>', 'name, UUID or id')
      .action(async (ref: string, opts: ConnectOption) => {
        const { name: domain } = await run(ref, storeOptions(opts));
        say(message(domain));
      });
  };
  simple(
    'shutdown',
    'power the domain off (<on_poweroff> applies; tskvm has no ACPI, so the guest is not asked first)',
    shutdownDomain,
    (n) => `Domain '${n}' is being shutdown`,
  );
  simple(
    'destroy',
    'stop the domain at once',
    (ref, o) => destroyDomain(ref, o),
    (n) => `Domain '${n}' destroyed`,
  );
  simple('reboot', 'reset the domain: its guest starts again', rebootDomain, (n) => `Domain '${n}' is being rebooted`);
  simple('suspend', "pause the domain's vCPUs", suspendDomain, (n) => `Domain '${n}' suspended`);
  simple('resume', 'let a suspended domain go on', resumeDomain, (n) => `Domain '${n}' resumed`);

  command('save', "save a running domain's state to FILE and stop it (restore brings it back)")
    .argument('<domain>', 'name, UUID or id')
    .argument('<file>', 'the save file')
    .action(async (ref: string, file: string, opts: ConnectOption) => {
      const result = await saveDomain(ref, file, storeOptions(opts));
      say(`Domain '${result.name}' saved to ${file}`);
    });

  command('restore', 'start a domain from a file `save` wrote')
    .argument('<file>', 'the save file')
    .action(async (file: string, opts: ConnectOption) => {
      const result = await restoreDomain(file, storeOptions(opts));
      for (const warning of result.warnings) warn('warning', warning);
      say(`Domain restored from ${file}`);
    });

  command('dumpxml', "print a domain's definition")
    .argument('<domain>', 'name, UUID or id')
    .action(async (ref: string, opts: ConnectOption) => {
      stdout().write(await dumpXml(ref, storeOptions(opts)));
    });

  command('dominfo', 'basic information about a domain')
    .argument('<domain>', 'name, UUID or id')
    .action(async (ref: string, opts: ConnectOption) => {
      const info = await domInfo(ref, storeOptions(opts));
      const rows: [string, string][] = [
        ['Id', info.id === undefined ? '-' : String(info.id)],
        ['Name', info.name],
        ['UUID', info.uuid],
        ['OS Type', info.osType],
        ['State', info.state],
        ['CPU(s)', String(info.cpus)],
        ...(info.cpuTimeSeconds !== undefined ? ([['CPU time', `${info.cpuTimeSeconds.toFixed(1)}s`]] as [string, string][]) : []),
        ['Max memory', `${info.maxMemoryKiB} KiB`],
        ['Used memory', `${info.usedMemoryKiB} KiB`],
        ['Persistent', info.persistent ? 'yes' : 'no'],
        ['Autostart', info.autostart ? 'enable' : 'disable'],
        ['Managed save', info.managedSave ? 'yes' : 'no'],
        ['Security model', info.securityModel],
        ['Security DOI', info.securityDoi],
      ];
      stdout().write(`${labelled(rows, DOMINFO_LABEL_WIDTH)}\n`);
    });

  command('domstate', "a domain's state (with --reason, why)")
    .argument('<domain>', 'name, UUID or id')
    .option('--reason', 'say why it is in that state')
    .action(async (ref: string, opts: ConnectOption & { reason?: boolean }) => {
      const info = await domInfo(ref, storeOptions(opts));
      say(opts.reason ? `${info.state} (${info.reason})` : info.state);
    });

  command('domstats', "a domain's statistics: state, CPU time, memory and memory touched, vCPUs, exits by reason")
    .argument('<domain>', 'name, UUID or id')
    .option('--json', 'as JSON')
    .action(async (ref: string, opts: ConnectOption & { json?: boolean }) => {
      const stats = await domStats(ref, storeOptions(opts));
      if (opts.json) {
        stdout().write(`${JSON.stringify({ name: stats.name, ...Object.fromEntries(stats.fields) }, null, 2)}\n`);
        return;
      }
      stdout().write(`Domain: '${stats.name}'\n${stats.fields.map(([k, v]) => `  ${k}=${v}\n`).join('')}\n`);
    });

  command('edit', "edit a domain's definition in $VISUAL/$EDITOR; it is checked before it replaces the old one")
    .argument('<domain>', 'name, UUID or id')
    .action(async (ref: string, opts: ConnectOption) => {
      const result = await editDomain(ref, storeOptions(opts));
      say(result.changed ? `Domain '${result.name}' XML configuration edited.` : `Domain '${result.name}' XML configuration not changed.`);
    });

  command('backup', "copy a domain's XML and the images it names to DIR (a running domain is suspended while copying)")
    .argument('<domain>', 'name, UUID or id')
    .argument('<dir>', 'a new or empty directory')
    .action(async (ref: string, dir: string, opts: ConnectOption) => {
      const result = await backupDomain(ref, dir, storeOptions(opts));
      say(`Domain '${result.name}' backed up to ${result.dir} (${result.files.length} image${result.files.length === 1 ? '' : 's'})`);
    });

  command('restore-backup', 'put back the images a backup holds and define its domain')
    .argument('<dir>', 'a directory `backup` wrote')
    .action(async (dir: string, opts: ConnectOption) => {
      const result = await restoreBackup(dir, storeOptions(opts));
      for (const file of result.restored) warn('note', `restored ${file}`);
      say(`Domain '${result.name}' restored from backup ${dir}`);
    });

  command('nodeinfo', "the host's CPUs and memory, and what running domains commit")
    .option('--json', 'as JSON')
    .action(async (opts: ConnectOption & { json?: boolean }) => {
      const node = await nodeReport(storeOptions(opts));
      if (opts.json) {
        stdout().write(`${JSON.stringify(node, null, 2)}\n`);
        return;
      }
      const rows: [string, string][] = [
        ['CPU model', node.cpuModel],
        ['CPU(s)', String(node.cpus)],
        ['CPU frequency', `${node.mhz} MHz`],
        ['CPU socket(s)', String(node.sockets)],
        ['Core(s) per socket', String(node.coresPerSocket)],
        ['Thread(s) per core', String(node.threadsPerCore)],
        ['NUMA cell(s)', String(node.numaCells)],
        ['Memory size', `${node.memoryKiB} KiB`],
        ['Domains running', String(node.committed.domains)],
        ['vCPUs committed', `${node.committed.vcpus} on ${node.usableCpus} usable CPUs`],
        ['Memory committed', `${node.committed.memoryKiB} KiB`],
      ];
      stdout().write(`${labelled(rows, NODEINFO_LABEL_WIDTH)}\n`);
    });
}

/** virsh pads dominfo's labels (with the colon) to 16 columns and nodeinfo's to 21. */
const DOMINFO_LABEL_WIDTH = 16;
const NODEINFO_LABEL_WIDTH = 21;

function labelled(rows: [string, string][], width: number): string {
  return rows.map(([label, value]) => `${`${label}:`.padEnd(width)}${value}\n`).join('');
}

/**
 * virsh list's table: a space, the cells padded to their column's width and three spaces apart
 * (the last not padded), a rule of dashes as wide as the columns and their gaps, a blank line.
 */
export function formatList(domains: readonly DomainSummary[]): string {
  const header = ['Id', 'Name', 'State'];
  const rows = domains.map((d) => [d.id === undefined ? '-' : String(d.id), d.name, d.state]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const GAP = 3;
  const line = (cells: string[]): string =>
    ` ${cells.map((c, i) => (i < cells.length - 1 ? c.padEnd(widths[i]!) : c)).join(' '.repeat(GAP))}\n`;
  const rule = '-'.repeat(widths.reduce((n, w) => n + w + GAP, 0));
  return `${line(header)}${rule}\n${rows.map(line).join('')}\n`;
}

function jsonSummary(d: DomainSummary): Record<string, unknown> {
  return {
    id: d.id ?? null,
    name: d.name,
    uuid: d.uuid,
    state: d.state,
    reason: d.reason,
    active: d.active,
    vcpus: d.vcpus,
    memoryKiB: d.memoryKiB,
    ...(d.title ? { title: d.title } : {}),
  };
}

/** An interactive console: raw mode on a terminal, Ctrl-] detaches; guest output on stdout. */
async function consoleSession(ref: string, options: DomainOptions, force: boolean): Promise<void> {
  const stdin = process.stdin;
  const terminal = stdin.isTTY ? stdin : undefined;
  try {
    const how = await attachConsole(ref, {
      ...options,
      input: stdin,
      output: stdout(),
      force,
      onAttached: () => {
        stderr().write(`Connected to domain '${ref}'\nEscape character is ^] (Ctrl + ])\n`);
        terminal?.setRawMode(true);
      },
    });
    if (how === 'ended') stderr().write(`\ntskvm: domain '${ref}' ended; console closed\n`);
  } finally {
    terminal?.setRawMode(false);
    stdin.pause();
  }
}
