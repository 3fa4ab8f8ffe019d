import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { printSpec } from '@cairn/spec';
import { EXIT } from '../cli-error.js';
import type { Io } from '../io.js';
import { readSpec } from '../read-spec.js';

export function registerFmt(program: Command, io: Io, setExit: (code: number) => void): void {
  program
    .command('fmt')
    .summary('print a spec in canonical form')
    .description("Print each spec in the canonical layout (the same as OBuilder's printer). Comments are not kept.")
    .argument('<files...>', 'spec files (- for stdin)')
    .option('--write', 'rewrite the files in place instead of printing them')
    .option('--check', 'print nothing; exit 1 and name each file that is not canonical')
    .option('--json', 'print {"file", "canonical"} per file, for scripts')
    .addHelpText(
      'after',
      `
Examples:
  cairn fmt build.spec               print the canonical form
  cairn fmt --write *.spec           rewrite every spec in place
  cairn fmt --check build.spec       exit 1 when build.spec is not canonical (CI)`,
    )
    .action(async (files: string[], opts: { write?: boolean; check?: boolean; json?: boolean }) => {
      const report: { file: string; canonical: boolean }[] = [];
      for (const file of files) {
        const { text, spec } = await readSpec(io, file);
        const canonical = printSpec(spec);
        report.push({ file, canonical: canonical === text });
        if (opts.check) {
          if (canonical !== text && !opts.json) io.err(`${file} is not in canonical form; run: cairn fmt --write ${file}\n`);
        } else if (opts.write && file !== '-') {
          if (canonical !== text) await writeFile(file, canonical);
        } else if (!opts.json) io.out(canonical);
      }
      if (opts.json) io.out(`${JSON.stringify(files.length === 1 ? report[0] : report)}\n`);
      if (opts.check && report.some((r) => !r.canonical)) setExit(EXIT.failed);
    });
}
