/**
 * What secret masking costs on the output of a step that has secrets: every byte the
 * step prints goes through the masker before the step log.
 *
 *   npx tsx bench/secret-mask.ts [--mib 64] [--runs 5]
 *
 * The input is build-like text (compiler lines, paths, hex digests) with the secret in it
 * now and then, in the chunks a pipe delivers (64 KiB) and in small ones (512 B, a step
 * printing line by line). Baseline in the same run: the copy the step log makes of every
 * chunk anyway (StepLog.write). Masked: the masking stream, whose sink makes that same copy.
 * Best of `runs`, in MB/s (10^6 bytes).
 */
import { parseArgs } from 'node:util';
import { SecretMasker } from '../libs/builder/src/secret-mask.js';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '64' }, runs: { type: 'string', default: '5' } } });
const BYTES = Number(values.mib) * 1024 * 1024;
const RUNS = Number(values.runs);
const command = `npx tsx bench/secret-mask.ts ${process.argv.slice(2).join(' ')}`.trim();

const TOKEN = 'ghp_R4nd0mT0k3nV4lu3F0rB3nchm4rk1ng0123456\n';
const PEM = [
  '-----BEGIN OPENSSH PRIVATE KEY-----',
  ...Array.from({ length: 26 }, (_, i) => Buffer.from(`line ${i} of a private key, padded to make a full line`).toString('base64').slice(0, 64)),
  '-----END OPENSSH PRIVATE KEY-----',
  '',
].join('\n');

function buildOutput(secret: string): Buffer {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < BYTES; i++) {
    const line =
      i % 5000 === 4999
        ? `export TOKEN=${secret.trim()} # ${Buffer.from(secret).toString('base64')}\n`
        : i % 3 === 0
          ? `gcc -O2 -Wall -c src/module_${i % 97}/file_${i}.c -o _build/default/src/file_${i}.o\n`
          : i % 3 === 1
            ? `[${String(i % 100).padStart(3)}%] Building C object CMakeFiles/app.dir/src/file_${i}.c.o sha256:${(i * 2654435761).toString(16).padStart(8, '0').repeat(8)}\n`
            : `  -> installed /home/opam/.opam/default/lib/pkg_${i % 211}/META (${i} bytes)\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join(''));
}

function chunks(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) out.push(data.subarray(at, at + size));
  return out;
}

function best(fn: () => number): { mbs: number; out: number } {
  let top = 0;
  let out = 0;
  fn(); // warm-up
  for (let r = 0; r < RUNS; r++) {
    const start = process.hrtime.bigint();
    out = fn();
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    top = Math.max(top, BYTES / 1e6 / seconds);
  }
  return { mbs: top, out };
}

const rows: string[][] = [];
for (const [name, secret] of [
  ['a 43-byte token', TOKEN],
  ['an 8-byte password', 'hunter2!\n'],
  ['a 1.8 KB multi-line key', PEM],
] as const) {
  const masker = SecretMasker.for([Buffer.from(secret)])!;
  const data = buildOutput(secret);
  for (const size of [64 * 1024, 512]) {
    const input = chunks(data, size);
    const copy = best(() => {
      let n = 0;
      for (const c of input) n += Uint8Array.from(c).length;
      return n;
    });
    const masked = best(() => {
      let n = 0;
      const stream = masker.stream((c) => void (n += Uint8Array.from(c).length));
      for (const c of input) stream.write(c);
      stream.end();
      return n;
    });
    if (masked.out >= copy.out) throw new Error('nothing was masked: the benchmark is not measuring masking');
    rows.push([
      name,
      `${masker.patterns.length}`,
      size >= 1024 ? `${size / 1024} KiB` : `${size} B`,
      copy.mbs.toFixed(0),
      masked.mbs.toFixed(0),
      `${(copy.mbs / masked.mbs).toFixed(2)}x`,
    ]);
  }
}

console.log(`${command}: ${values.mib} MiB of build output, best of ${RUNS} runs, Node ${process.version}\n`);
const header = ['secret', 'patterns', 'chunks', 'copy MB/s', 'masked MB/s', 'cost'];
console.log(`| ${header.join(' | ')} |`);
console.log(`| ${header.map(() => '---').join(' | ')} |`);
for (const row of rows) console.log(`| ${row.join(' | ')} |`);
