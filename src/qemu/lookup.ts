/**
 * Looking a name from the command line up in a table of options, devices or features: only the
 * table's own entries count, never Object.prototype's (`-constructor` is no option).
 */
export function own<T>(table: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}
