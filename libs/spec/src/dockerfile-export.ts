import { isRoot, ROOT_UNIX, ROOT_WINDOWS, type Mount, type Op, type RunOp, type Spec, type User } from './ast.js';
import { isPosixShell, shellCommand } from './dockerfile-import/run-command.js';
import { locationOf } from './spec-reader.js';
import { SpecError } from './spec-error.js';

export interface DockerfileOptions {
  /** Emit `RUN --mount=type=cache|secret` for caches and secrets (BuildKit syntax). */
  readonly buildkit?: boolean;
  /** `windows` starts with the `#escape=\`` directive and escapes with a backtick. */
  readonly os?: 'unix' | 'windows';
}

/** The Dockerfile `obuilder dockerfile` prints for the same spec, byte for byte. */
export function dockerfileOfSpec(spec: Spec, options: DockerfileOptions = {}): string {
  const os = options.os ?? 'unix';
  const escape = os === 'windows' ? '`' : '\\';
  const initialUser = os === 'windows' ? ROOT_WINDOWS : ROOT_UNIX;
  const header = os === 'windows' ? '#escape=`\n' : '';
  return header + convert(spec, undefined, { buildkit: options.buildkit ?? false, os, escape, initialUser });
}

interface Settings {
  buildkit: boolean;
  os: 'unix' | 'windows';
  escape: string;
  initialUser: User;
}

function convert(spec: Spec, name: string | undefined, s: Settings): string {
  let out = '';
  for (const child of spec.childBuilds) out += `${convert(child.spec, child.name, s)}\n`;
  out += `FROM ${spec.from}${name === undefined ? '' : ` as ${name}`}\n`;
  let user = s.initialUser;
  // Whether RUN's shell reads sh, which decides how the import reads continued lines back.
  let posix = true;
  for (const op of spec.ops) {
    out += `${instruction(op, user, posix, s)}\n`;
    if (op.op === 'user') user = op.user;
    if (op.op === 'shell') posix = isPosixShell(op.args);
  }
  return out;
}

/** Escapes `"` and the escape character itself with the escape character. */
function quote(value: string, escape: string): string {
  let out = '';
  for (const c of value) out += c === '"' || c === escape ? escape + c : c;
  return out;
}

// OCaml's String.trim: the characters it treats as blank.
const trim = (line: string) => line.replace(/^[ \t\n\r\f]+|[ \t\n\r\f]+$/g, '');

function instruction(op: Op, user: User, posix: boolean, s: Settings): string {
  switch (op.op) {
    case 'comment':
      return `# ${op.text}`;
    case 'workdir':
      return `WORKDIR ${op.path}`;
    case 'shell':
      return `SHELL [ ${op.args.map((a) => `"${a}"`).join(', ')} ]`;
    case 'env':
      return `ENV ${op.name}="${quote(op.value, s.escape)}"`;
    case 'user':
      return op.user.kind === 'unix' ? `USER ${op.user.uid}:${op.user.gid}` : `USER ${op.user.name}`;
    case 'run':
      return run(op, user, posix, s);
    case 'copy': {
      let chown = '';
      if (!isRoot(user)) {
        if (user.kind === 'unix') chown = `--chown=${user.uid}:${user.gid} `;
        else if (s.os === 'unix') chown = `--chown=${user.name} `;
      }
      const from = op.from.kind === 'build' ? `--from=${op.from.name} ` : '';
      // A blank would split a path into two: the JSON form keeps it whole (OBuilder's output otherwise).
      const paths = [...op.src, op.dst];
      const args = paths.some((p) => /\s/.test(p)) ? `[${paths.map((p) => JSON.stringify(p)).join(', ')}]` : paths.join(' ');
      return `COPY ${chown}${from}${args}`;
    }
  }
}

function run(op: RunOp, user: User, posix: boolean, s: Settings): string {
  const mounts = s.buildkit ? [...op.secrets.map((m) => mount('secret', m, op, user)), ...op.cache.map((m) => mount('cache', m, op, user))] : [];
  return `RUN ${mounts.map((m) => `${m} `).join('')}${command(op.shell, posix, s)}`;
}

/**
 * OBuilder's continued lines, unless Docker would read them back as another command (a
 * newline sh does not take as a blank, a quoted newline, a heredoc): then, on Unix, a heredoc
 * that BuildKit runs as the shell's script, exactly the text of the spec.
 */
function command(shell: string, posix: boolean, s: Settings): string {
  const lines = shell.split('\n').map(trim);
  const continued = lines.join(` ${s.escape}\n    `);
  if (s.os !== 'unix' || !shell.includes('\n')) return continued;
  // The pieces the import reads from the continued lines: blank and comment lines are dropped.
  const segments = lines
    .map((l, i) => `${i === 0 ? '' : '    '}${l}${i < lines.length - 1 ? ' ' : ''}`)
    .filter((seg, i) => i === 0 || (seg.trim() !== '' && !seg.trim().startsWith('#')));
  // Blanks at the ends of lines are OBuilder's to trim (sh reads them as nothing outside
  // quotes, and inside quotes the lines read back differently anyway).
  if (shellCommand(segments, posix && !shell.includes('<<')) === lines.join('\n')) return continued;
  let end = 'EOF';
  for (let n = 1; shell.split('\n').includes(end); n++) end = `EOF${n}`;
  return `<<${end}\n${shell}\n${end}`;
}

function mount(type: 'cache' | 'secret', m: Mount, op: RunOp, user: User): string {
  if (user.kind !== 'unix') {
    throw new SpecError(
      `a BuildKit ${type} mount needs a numeric user, but the current user is "${user.name}" (mount "${m.id}")`,
      locationOf(op) ?? { line: 1, column: 1 },
    );
  }
  const options = [['id', m.id], ['target', m.target], ['uid', String(user.uid)], ...m.buildkitOptions];
  return `--mount=type=${type},${options.map(([k, v]) => `${k}=${v}`).join(',')}`;
}
