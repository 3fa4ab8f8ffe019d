import { Command, CommanderError, Help } from 'commander';
import { describeError, EXIT, exitOfError } from './cli-error.js';
import { registerAdmin } from './commands/admin.js';
import { registerBuild } from './commands/build.js';
import { registerCancel } from './commands/cancel.js';
import { registerCompletion } from './commands/completion.js';
import { registerDockerfile } from './commands/dockerfile.js';
import { registerFmt } from './commands/fmt.js';
import { registerImages } from './commands/images.js';
import { registerImport } from './commands/import.js';
import { registerLogs } from './commands/logs.js';
import { registerPlan } from './commands/plan.js';
import { registerStatus } from './commands/status.js';
import { registerStoreAdmin } from './commands/store-admin.js';
import { registerSubmit } from './commands/submit.js';
import { registerUp } from './commands/up.js';
import { processIo, type Io } from './io.js';
import { colorsWanted, paint } from './terminal.js';
import { VERSION } from './version.js';

/** Runs `cairn ARGS...` and returns the exit code (EXIT in cli-error.ts). */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  let exitCode: number = EXIT.ok;
  const setExit = (code: number) => {
    exitCode = Math.max(exitCode, code);
  };
  const red = paint(colorsWanted({ noColor: argv.includes('--no-color'), isTTY: io.stderr?.isTTY ?? false })).red;
  const output = {
    writeOut: (s: string) => io.out(s),
    writeErr: (s: string) => io.err(s),
    outputError: (s: string, write: (s: string) => void) => write(red(s)),
    // Help is wrapped to the terminal's width; a pipe gets 80 columns.
    getOutHelpWidth: () => (io.stdout?.isTTY ? io.stdout.columns : undefined) ?? 80,
    getErrHelpWidth: () => (io.stderr?.isTTY ? io.stderr.columns : undefined) ?? 80,
  };
  const program = new Command('cairn')
    .description(
      `Cairn runs build specs step by step in a sandbox and snapshots every step, so that a
repeated step comes from cache. Specs are OBuilder's S-expressions; Dockerfiles convert.`,
    )
    .version(VERSION)
    .option('--no-color', 'no colours in the output (as does NO_COLOR=1); colours are used only on a terminal')
    .showSuggestionAfterError()
    .exitOverride()
    .configureHelp({ boxWrap: reflow })
    .configureOutput(output)
    .addHelpText(
      'after',
      `
Examples:
  cairn build -f examples/hello.spec examples/hello   build, from cache where possible
  cairn fmt build.spec                      canonical form of a spec
  cairn plan -f build.spec .                every step and its ID, without building
  cairn dockerfile -f build.spec            the equivalent Dockerfile
  cairn import -f Dockerfile > build.spec   a Dockerfile as a spec
  cairn submit --pool linux-x86_64 -f build.spec . --follow   build on the cluster
  cairn admin workers                       the cluster's workers and their load

Exit status: 0 success, 1 a problem with the input or a failed step (message on stderr),
2 usage error, 3 the cluster could not be reached, 130 interrupted or cancelled.
Run "cairn help COMMAND" for a command's options and examples.`,
    );
  registerFmt(program, io, setExit);
  registerDockerfile(program, io);
  registerImport(program, io);
  registerPlan(program, io, setExit);
  registerBuild(program, io);
  registerStoreAdmin(program, io);
  registerSubmit(program, io, setExit);
  registerLogs(program, io, setExit);
  registerStatus(program, io);
  registerCancel(program, io);
  registerAdmin(program, io);
  registerImages(program, io);
  registerUp(program, io, setExit);
  registerCompletion(program, io);
  const configure = (command: Command): void => {
    command.exitOverride().configureOutput(output).configureHelp({ boxWrap: reflow });
    command.commands.forEach(configure);
  };
  program.commands.forEach(configure);

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      const quiet = ['commander.helpDisplayed', 'commander.version', 'commander.help'].includes(e.code);
      return quiet ? EXIT.ok : EXIT.usage;
    }
    const json = argv.includes('--json');
    io.err(`${json ? describeError(e, true) : red(describeError(e, false))}\n`);
    const code = exitOfError(e);
    if (code === undefined) throw e;
    return code;
  }
}

/**
 * Descriptions are written as paragraphs, with line breaks only to keep the source
 * readable: those breaks are joined before commander wraps the text to the terminal's
 * width, so that help is not wrapped twice into ragged lines. A blank line still
 * separates paragraphs, and an indented line (an example) keeps its place.
 */
function reflow(this: Help, text: string, width: number): string {
  const joined = text.replace(/([^\n])\n(?=[^\s])/g, '$1 ');
  return Help.prototype.boxWrap.call(this, joined, width);
}
