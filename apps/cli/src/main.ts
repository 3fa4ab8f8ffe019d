import { Command, CommanderError } from 'commander';
import { describeError, EXIT, isUserError } from './cli-error.js';
import { registerAdmin } from './commands/admin.js';
import { registerBuild } from './commands/build.js';
import { registerCluster } from './commands/cluster.js';
import { registerDockerfile } from './commands/dockerfile.js';
import { registerFmt } from './commands/fmt.js';
import { registerImport } from './commands/import.js';
import { registerPlan } from './commands/plan.js';
import { registerStoreAdmin } from './commands/store-admin.js';
import { registerUp } from './commands/up.js';
import { processIo, type Io } from './io.js';

/** Runs `cairn ARGS...` and returns the exit code: 0 ok, 1 user error, 2 usage. */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  let exitCode: number = EXIT.ok;
  const setExit = (code: number) => {
    exitCode = Math.max(exitCode, code);
  };
  const program = new Command('cairn')
    .description(`Cairn runs build specs step by step in a sandbox and snapshots every step, so that a
repeated step comes from cache. Specs are OBuilder's S-expressions; Dockerfiles convert.`)
    .version('0.1.0')
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .addHelpText('after', `
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
Run "cairn help COMMAND" for a command's options and examples.`);
  registerFmt(program, io, setExit);
  registerDockerfile(program, io);
  registerImport(program, io);
  registerPlan(program, io, setExit);
  registerBuild(program, io, setExit);
  registerStoreAdmin(program, io);
  registerCluster(program, io, setExit);
  registerAdmin(program, io, setExit);
  registerUp(program, io, setExit);
  for (const command of program.commands) command.exitOverride().configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      const quiet = ['commander.helpDisplayed', 'commander.version', 'commander.help'].includes(e.code);
      return quiet ? EXIT.ok : EXIT.usage;
    }
    io.err(`${describeError(e, argv.includes('--json'))}\n`);
    if (isUserError(e)) return EXIT.userError;
    throw e;
  }
}
