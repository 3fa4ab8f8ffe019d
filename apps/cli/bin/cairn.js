#!/usr/bin/env node
// Thin launcher so that `npx cairn` works from the repository root after `npm ci && npm run build`.
import { main } from '../dist/main.js';

process.exitCode = await main(process.argv.slice(2));
