/** RUN commands: the shell form's continuations, kept where sh reads a newline as blanks; the exec form, quoted for sh. */
import { SpecError } from '../spec-error.js';
import { isBlank, isBlankOrNewline, trimEnd, trimStart } from './characters.js';
import type { User } from '../ast.js';
import type { Instruction } from './instructions.js';

/**
 * Follows just enough of sh's lexing to know whether the text so far ends outside any
 * quote, escape, comment or `${...}`, and after a list operator (`&&`, `||`, `|`, `;`,
 * `&`) after which a newline means the same as blanks. Anything it does not follow
 * (backquotes, `$'...'`, `((`, `<<`, `case`) makes it answer no from then on.
 */
class ShellScan {
  private quote = '';
  private escaped = false;
  private params = 0;
  private opaque = false;
  private prev = '';
  private operator = '';
  private beforeOperator = '';
  private token = '';

  feed(text: string): void {
    for (const c of text) this.step(c);
  }

  /** Outside quotes, escapes, comments and `${...}`: blanks here are only separators. */
  plain(): boolean {
    return !this.opaque && !this.quote && !this.escaped && this.params === 0;
  }

  /** At a point where sh takes a newline the same as blanks. */
  afterListOperator(): boolean {
    if (!this.plain() || this.operator === '') return false;
    if (this.operator === '&' && (this.beforeOperator === '>' || this.beforeOperator === '<')) return false;
    return !(this.operator === '|' && this.beforeOperator === '>');
  }

  private step(c: string): void {
    if (this.opaque) return;
    const prev = this.prev;
    this.prev = c;
    if (!this.quote && !this.escaped && isBlank(c)) {
      this.endToken();
      return;
    }
    this.operator = '';
    const separates = !this.quote && !this.escaped && '();&|<>'.includes(c);
    if (this.escaped) this.escaped = false;
    else if (this.quote === "'") this.quote = c === "'" ? '' : "'";
    else if (c === '\\') this.escaped = true;
    else if (this.quote === '"') this.doubleQuoted(c, prev);
    else this.unquoted(c, prev);
    this.token = separates ? '' : this.token + c;
  }

  private doubleQuoted(c: string, prev: string): void {
    if (c === '"') this.quote = '';
    else if (c === '`') this.opaque = true;
    else this.brace(c, prev);
  }

  private unquoted(c: string, prev: string): void {
    if (c === "'" || c === '"') {
      this.quote = c;
      if (c === "'" && prev === '$') this.opaque = true;
    } else if (c === '`' || (c === '(' && prev === '(') || (c === '<' && prev === '<')) this.opaque = true;
    else if (c === '#' && (prev === '' || isBlank(prev) || ';&|()<>'.includes(prev))) this.opaque = true;
    else if (c === ';' || c === '&' || c === '|') {
      this.endToken();
      this.operator = c;
      this.beforeOperator = prev;
    } else this.brace(c, prev);
  }

  private brace(c: string, prev: string): void {
    if (c === '{' && prev === '$') this.params++;
    else if (c === '}' && this.params > 0) this.params--;
  }

  /** A `case` pattern list may not break at `|`, so stop following at the keyword. */
  private endToken(): void {
    if (this.token === 'case') this.opaque = true;
    this.token = '';
  }
}

/**
 * The command of a shell-form RUN. Docker joins continued lines as they are; a spec keeps
 * a newline where sh reads it the same as blanks (after `&&`, `;`, `|`...), so that
 * `dockerfileOfSpec` prints the lines back, and collapses blanks at other joins outside
 * quotes. Inside quotes, or with a shell this does not know, the lines join as in Docker.
 */
export function shellCommand(segments: readonly string[], posix: boolean): string {
  if (!posix) return segments.join('');
  const scan = new ShellScan();
  const out = new Pieces();
  for (const [k, seg] of segments.entries()) {
    const body = trimStart(seg, isBlank);
    if (k === 0 || !scan.plain()) out.add(seg);
    else if (scan.afterListOperator() && body !== '' && !isBlankOrNewline(body[0])) out.trimEnd().add('\n', body);
    else if (isBlank(out.last()) || isBlank(seg[0])) out.trimEnd().add(' ', body);
    else out.add(seg);
    scan.feed(seg);
  }
  return out.join();
}

/** A string built by appending, whose end can be trimmed without copying the whole. */
class Pieces {
  private readonly parts: string[] = [];

  add(...texts: string[]): this {
    for (const t of texts) if (t !== '') this.parts.push(t);
    return this;
  }

  last(): string | undefined {
    return this.parts.at(-1)?.at(-1);
  }

  trimEnd(): this {
    while (this.parts.length > 0) {
      const trimmed = trimEnd(this.parts.at(-1)!, isBlank);
      if (trimmed !== '') {
        this.parts[this.parts.length - 1] = trimmed;
        break;
      }
      this.parts.pop();
    }
    return this;
  }

  join(): string {
    return this.parts.join('');
  }
}

const POSIX_SHELLS = new Set(['sh', 'bash', 'dash', 'ash', 'ksh', 'mksh', 'zsh', 'yash', 'posh']);

/** `sh -c`, `/bin/bash -o pipefail -c`, `/usr/bin/env bash -ec`...: a shell that reads sh syntax. */
export function isPosixShell(args: readonly string[]): boolean {
  const base = (p: string | undefined) => p?.slice(p.lastIndexOf('/') + 1);
  const program = base(args[0]) === 'env' ? base(args.slice(1).find((a) => !a.startsWith('-') && !a.includes('='))) : base(args[0]);
  return program !== undefined && POSIX_SHELLS.has(program) && /^-[a-z]*c$/.test(args.at(-1) ?? '');
}

function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * Exec form runs its program without a shell. A spec only runs commands through its
 * shell, so the import quotes each argument for sh and lets the shell `exec` the
 * program: the same program gets the same arguments and nothing is expanded.
 */
export function execCommand(args: readonly string[], shell: readonly string[], ins: Instruction): string {
  if (args.length === 0) throw new SpecError('RUN [] has no command to run', ins.pos);
  if (!isPosixShell(shell)) {
    throw new SpecError(
      `RUN in exec form is imported as "exec ARGS..." for a POSIX shell, but the current SHELL is ${JSON.stringify(shell)}; use the shell form`,
      ins.pos,
    );
  }
  if (args.some((a) => a.includes('\n'))) throw new SpecError('RUN in exec form has an argument with a newline, which cannot be imported', ins.pos);
  if (args[0]!.startsWith('-')) throw new SpecError(`RUN in exec form names the program "${args[0]}", which starts with "-"`, ins.pos);
  return ['exec', ...args.map(shellQuote)].join(' ');
}

/** A line that is nothing but one heredoc marker, as BuildKit's ParseHeredoc matches a whole command. */
const ONLY_HEREDOC = /^\d*<<-?[^<\s]+$/;

/**
 * A RUN with heredocs, as BuildKit runs it: a command that is one heredoc alone runs the
 * body as the shell's script; otherwise the shell gets the line and the bodies, each
 * followed by its terminator, and reads the heredocs itself. A body starting with `#!` is
 * written to a file and run by its interpreter, which a spec cannot say.
 */
export function heredocCommand(line: string, ins: Instruction): string {
  const heredocs = ins.logical.heredocs;
  if (heredocs.length === 0) return line;
  if (heredocs.length === 1 && ONLY_HEREDOC.test(line.trim())) {
    const body = heredocs[0]!.body;
    if (body.startsWith('#!')) {
      throw new SpecError(
        `RUN <<${heredocs[0]!.name} starts with "#!", so BuildKit runs it as a script file by its interpreter, which a spec cannot do; call the interpreter with a heredoc instead (RUN python3 <<${heredocs[0]!.name})`,
        ins.pos,
      );
    }
    return body.endsWith('\n') ? body.slice(0, -1) : body;
  }
  return line + heredocs.map((h) => `\n${h.body}${h.name}`).join('');
}

/**
 * A shell command writing each file's body exactly (printf '%s', the body single-quoted),
 * its missing parent directories made 0755 as BuildKit makes them, then its mode, and its
 * owner when `owner` is given.
 */
export function writeFileCommand(files: readonly { path: string; body: string }[], mode: string, owner: User | undefined): string {
  return files
    .map(({ path, body }) => {
      const target = shellQuote(path);
      return `mkdir -p "$(dirname ${target})" && printf '%s' ${shellQuote(body)} > ${target}${modeAndOwner(target, mode, owner)}`;
    })
    .join(' && ');
}

/**
 * A shell command downloading `url` to `path` with wget, or curl where the image has no
 * wget, keeping it only if its SHA-256 is `sha256`, then giving it its mode and owner.
 */
export function downloadCommand(url: string, path: string, sha256: string, mode: string, owner: User | undefined): string {
  const target = shellQuote(path);
  const partial = shellQuote(`${path}.download`);
  const source = shellQuote(url);
  return (
    `mkdir -p "$(dirname ${target})" && { wget -q -O ${partial} ${source} || curl -fsSL -o ${partial} ${source}; }` +
    ` && echo ${shellQuote(`${sha256}  ${path}.download`)} | sha256sum -c >/dev/null && mv ${partial} ${target}${modeAndOwner(target, mode, owner)}`
  );
}

/**
 * Unpacks `archive` into `dir` (made if missing), owners and modes kept (tar does as root),
 * then removes its scratch directory. The compression is told by name: busybox's tar does
 * not detect it, GNU tar takes the flag as well. With `owner`, as BuildKit 0.23 and later
 * unpack for `ADD --chown`: the directories of `dir` that the step makes, and every entry
 * the archive lists (but its `.`), belong to it; directories only implied by an entry's
 * path stay root's.
 */
export function unpackCommand(archive: string, dir: string, owner?: User): string {
  const target = shellQuote(dir);
  const source = shellQuote(archive);
  const compression = /\.(tgz|taz|tar\.gz)$/i.test(archive) ? 'z' : /\.(tbz2?|tar\.bz2)$/i.test(archive) ? 'j' : /\.(txz|tar\.xz)$/i.test(archive) ? 'J' : '';
  const cleanUp = `rm -rf ${shellQuote(archive.slice(0, archive.lastIndexOf('/')))}`;
  const unpack = `mkdir -p ${target} && tar -x${compression}f ${source} -C ${target}`;
  if (owner?.kind !== 'unix') return `${unpack} && ${cleanUp}`;
  const ids = `${owner.uid}:${owner.gid}`;
  const made = `set -- && d=${target} && while [ ! -e "$d" ]; do set -- "$d" "$@" && d="$(dirname "$d")"; done`;
  const chownMade = `for d in "$@"; do chown ${ids} "$d"; done`;
  const chownListed = `tar -t${compression}f ${source} | while IFS= read -r p; do case "$p" in .|./) ;; *) chown -h ${ids} ${shellQuote(dir.endsWith('/') ? dir : `${dir}/`)}"$p" ;; esac; done`;
  return `${made} && ${unpack} && ${chownMade} && ${chownListed} && ${cleanUp}`;
}

/**
 * Gives what a copy wrote to `owner`, `U[:G]` holding names, looked up in the image's
 * accounts when the step runs (a lone user name brings its primary group, as --chown's
 * does; an unknown name fails the step): each of `paths` with all it holds, and all that
 * `into` holds but not `into` itself, a directory that was there before the copy.
 */
export function chownCommand(paths: readonly string[], into: readonly string[], owner: string): string {
  const [user, group] = owner.split(':') as [string, string | undefined];
  const ids = group === undefined ? '"$u:$g"' : shellQuote(owner);
  const steps = group === undefined ? [`u="$(id -u ${shellQuote(user)})"`, `g="$(id -g ${shellQuote(user)})"`] : [];
  if (paths.length > 0) steps.push(`chown -hR ${ids} ${paths.map(shellQuote).join(' ')}`);
  if (into.length > 0) steps.push(`find ${into.map(shellQuote).join(' ')} -mindepth 1 -exec chown -h ${ids} {} +`);
  return steps.join(' && ');
}

/** `--chmod`'s mode for the files a copy wrote. */
export function chmodCommand(paths: readonly string[], mode: string): string {
  return `chmod ${mode} ${paths.map(shellQuote).join(' ')}`;
}

function modeAndOwner(target: string, mode: string, owner: User | undefined): string {
  return ` && chmod ${mode} ${target}${owner?.kind === 'unix' ? ` && chown ${owner.uid}:${owner.gid} ${target}` : ''}`;
}
