// The environment the benchmarks start their processes with: the caller's, less
// NODE_EXTRA_CA_CERTS. Node 20 reads and parses every certificate of that file before it runs any
// JavaScript, in every process, TLS or not: on the development machine, whose environment points
// it at the system's bundle (~140 certificates), that is ~90 ms and ~1.7 MiB of every Node start
// (`node -e 0` 140 ms with it, 48 ms without). It is the host's setting, not Node's start-up nor
// tskvm's, and it would hide both; bench/launch.mjs still times `node -e 0` with it, to show it.

const CA_VARIABLE = 'NODE_EXTRA_CA_CERTS';

/** The caller's environment without NODE_EXTRA_CA_CERTS. */
export const benchEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== CA_VARIABLE));

/** The file NODE_EXTRA_CA_CERTS names in the caller's environment, or undefined. */
export const extraCaCerts = process.env[CA_VARIABLE] || undefined;
