import { Argument, type Command, type Option } from 'commander';
import type { Io } from '../io.js';

/** A command as completion sees it: its words, options and subcommands. */
interface Node {
  readonly path: string[];
  readonly summary: string;
  readonly subcommands: Node[];
  readonly options: { flags: string[]; description: string; takesValue: boolean; choices: readonly string[]; file: boolean }[];
}

// Option values that name files or folders complete as paths; others (IDs, URLs) do not.
const PATH_VALUE = /file|spec|path|dir|context|<kind:path>|FILE/;

function tree(command: Command, path: string[] = []): Node {
  return {
    path,
    summary: command.summary() || command.description().split('\n')[0] || '',
    subcommands: command.commands.filter((c) => c.name() !== 'help').map((c) => tree(c, [...path, c.name()])),
    options: command.options
      .filter((o: Option) => !o.hidden)
      .map((o: Option) => ({
        flags: [o.long, o.short].filter((f): f is string => Boolean(f)),
        description: o.description,
        takesValue: o.required || o.optional,
        choices: o.argChoices ?? [],
        file: PATH_VALUE.test(o.flags),
      }))
      .concat([{ flags: ['--help', '-h'], description: 'show help', takesValue: false, choices: [], file: false }]),
  };
}

function walk(node: Node): Node[] {
  return [node, ...node.subcommands.flatMap(walk)];
}

const shQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function bash(root: Node): string {
  const nodes = walk(root);
  const key = (n: Node) => n.path.join(' ') || '-';
  const cases = nodes.map((n) => {
    const words = [...n.subcommands.map((s) => s.path.at(-1)), ...n.options.flatMap((o) => o.flags)].join(' ');
    return `    ${shQuote(key(n))}) words=${shQuote(words)} ;;`;
  });
  const values = nodes.flatMap((n) =>
    n.options
      .filter((o) => o.takesValue)
      .flatMap((o) =>
        o.flags.map((f) => {
          const then = o.choices.length
            ? `COMPREPLY=($(compgen -W ${shQuote(o.choices.join(' '))} -- "$cur"))`
            : o.file
              ? 'COMPREPLY=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null'
              : 'COMPREPLY=()';
          return `    ${shQuote(`${key(n)} ${f}`)}) ${then}; return ;;`;
        }),
      ),
  );
  const subs = nodes
    .filter((n) => n.subcommands.length)
    .map((n) => `    ${shQuote(key(n))}) subs=${shQuote(n.subcommands.map((s) => s.path.at(-1)).join(' '))} ;;`);
  return `# bash completion for cairn: eval "$(cairn completion bash)", or save it as
# /etc/bash_completion.d/cairn
_cairn() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} path=- i w subs words
  # The command path: the words that name subcommands, in order.
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    subs=
    case "$path" in
${subs.join('\n')}
    esac
    if [[ " $subs " == *" $w "* ]]; then
      if [[ $path == - ]]; then path=$w; else path="$path $w"; fi
    fi
  done
  case "$path $prev" in
${values.join('\n')}
  esac
  case "$path" in
${cases.join('\n')}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _cairn cairn
`;
}

function zsh(root: Node): string {
  const nodes = walk(root);
  // Inside zsh's single quotes: a backslash guards _arguments' own [ ] :, and a quote ends the string.
  const zq = (s: string) => s.replace(/[[\]:\\]/g, (c) => `\\${c}`).replace(/'/g, `'\\''`);
  const fn = (n: Node) => `_cairn_${['cmd', ...n.path].join('_').replace(/[^A-Za-z0-9_]/g, '_')}`;
  const bodies = nodes.map((n) => {
    const specs = n.options.map((o) => {
      const names = o.flags.length > 1 ? `(${o.flags.join(' ')})'{${o.flags.join(',')}}'` : o.flags[0];
      const action = !o.takesValue ? '' : o.choices.length ? `:value:(${o.choices.join(' ')})` : o.file ? ':path:_files' : ':value: ';
      return `    '${names}[${zq(o.description)}]${action}'`;
    });
    if (n.subcommands.length === 0) return `${fn(n)}() {\n  _arguments -s \\\n${[...specs, "    '*:file:_files'"].join(' \\\n')}\n}`;
    const list = n.subcommands.map((s) => `      '${zq(s.path.at(-1) ?? '')}:${zq(s.summary)}'`).join('\n');
    const dispatch = n.subcommands.map((s) => `        ${s.path.at(-1)}) ${fn(s)} ;;`).join('\n');
    return `${fn(n)}() {
  local line state
  _arguments -C \\
${specs.join(' \\\n')} \\
    '1: :->command' \\
    '*:: :->args'
  case $state in
    command)
      local -a commands
      commands=(
${list}
      )
      _describe command commands ;;
    args)
      case $line[1] in
${dispatch}
      esac ;;
  esac
}`;
  });
  return `#compdef cairn
# zsh completion for cairn: cairn completion zsh > "\${fpath[1]}/_cairn"
${bodies.join('\n\n')}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  ${fn(root)} "$@"
else
  compdef ${fn(root)} cairn
fi
`;
}

function fish(root: Node): string {
  const lines = ['# fish completion for cairn: cairn completion fish > ~/.config/fish/completions/cairn.fish', 'complete -c cairn -f'];
  const fq = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  for (const n of walk(root)) {
    // On this command's path, and past none of its subcommands.
    const at =
      n.path.length === 0
        ? '__fish_use_subcommand'
        : [
            `__fish_seen_subcommand_from ${n.path.at(-1)}`,
            ...n.path.slice(0, -1).map((p) => `__fish_seen_subcommand_from ${p}`),
            ...(n.subcommands.length ? [`not __fish_seen_subcommand_from ${n.subcommands.map((s) => s.path.at(-1)).join(' ')}`] : []),
          ].join('; and ');
    for (const s of n.subcommands) lines.push(`complete -c cairn -n ${fq(at)} -a ${s.path.at(-1)} -d ${fq(s.summary)}`);
    for (const o of n.options) {
      const names = o.flags.map((f) => (f.startsWith('--') ? `-l ${f.slice(2)}` : `-s ${f.slice(1)}`)).join(' ');
      const value = !o.takesValue ? '' : o.choices.length ? ` -x -a ${fq(o.choices.join(' '))}` : o.file ? ' -r -F' : ' -x';
      lines.push(`complete -c cairn -n ${fq(at)} ${names}${value} -d ${fq(o.description)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

const SHELLS = { bash, zsh, fish } as const;

export function registerCompletion(program: Command, io: Io): void {
  program
    .command('completion')
    .summary('print a shell completion script (bash, zsh or fish)')
    .description("Prints a script that teaches your shell to complete cairn's commands, options and their values. Load it in your shell's start-up file.")
    .addArgument(new Argument('<shell>', 'the shell').choices(Object.keys(SHELLS)))
    .addHelpText(
      'after',
      `
Examples:
  echo 'eval "$(cairn completion bash)"' >> ~/.bashrc
  cairn completion zsh > "\${fpath[1]}/_cairn"
  cairn completion fish > ~/.config/fish/completions/cairn.fish`,
    )
    .action((shell: keyof typeof SHELLS) => {
      io.out(SHELLS[shell](tree(program)));
    });
}
