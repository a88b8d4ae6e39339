/**
 * The tskvm version, which every snapshot records: device state and the file's sections are laid
 * out by the code that wrote them, so only the same version restores a snapshot.
 */
import { readFileSync } from 'node:fs';

let version: string | undefined;

/** package.json's version (this file is two levels below it, in src/ and in dist/ alike). */
export function tskvmVersion(): string {
  version ??= (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  return version;
}
