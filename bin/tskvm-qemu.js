#!/usr/bin/env node
// tskvm-qemu: qemu-system-x86_64's command line over tskvm (docs/qemu-frontend.md).
import { qemuMain, exit } from '../dist/qemu/main.js';

await exit(await qemuMain(process.argv.slice(2)));
