/**
 * Managing guests as libvirt does: domain XML, a store of definitions, a supervisor process per
 * running domain, and virsh's commands as functions. The CLI's subcommands (src/cli/domains.ts)
 * are thin wrappers over these.
 */
export {
  attachConsole,
  backupDomain,
  checkDomainFiles,
  committedResources,
  CONSOLE_ESCAPE,
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
  type BackupFile,
  type BackupManifest,
  type ConsoleOptions,
  type DefineResult,
  type DomainOptions,
  type DomainSummary,
  type DomInfo,
  type DomStats,
  type NodeReport,
  type StartResult,
} from './commands.js';
export { nodeInfo, overcommitWarnings, type Commitment, type NodeInfo } from './host.js';
export { QmpClient, QmpError, qmpExecute } from './qmp.js';
export { DomainStore, resolveHome, SESSION_URI, SYSTEM_HOME, SYSTEM_URI, type HomeOptions } from './store.js';
export { runtimePaths, type DomainState } from './runtime.js';
export { formatDomain, parseDomain, TSKVM_NAMESPACE, type Domain, type DomainConfig } from './xml.js';
