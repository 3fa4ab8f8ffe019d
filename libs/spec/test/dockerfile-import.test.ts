import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CopyOp, Op, RunOp, Spec } from '../src/ast.js';
import { dockerfileOfSpec } from '../src/dockerfile-export.js';
import { importDockerfile, specOfDockerfile, type DockerfileImportOptions } from '../src/dockerfile-import/index.js';
import { SpecError } from '../src/spec-error.js';
import { parseSpec } from '../src/spec-reader.js';
import { printSpec } from '../src/spec-printer.js';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, 'fixtures', 'dockerfiles', name), 'utf8');

function rejection(text: string, options?: DockerfileImportOptions): SpecError {
  try {
    specOfDockerfile(text, options);
  } catch (e) {
    if (e instanceof SpecError) return e;
    throw e;
  }
  throw new Error(`expected the Dockerfile to be rejected:\n${text}`);
}

/** Import, export with BuildKit mounts, import again: the same spec and a stable text. */
function expectFixedPoint(spec: Spec, options?: DockerfileImportOptions): void {
  const exported = dockerfileOfSpec(spec, { buildkit: true });
  const again = specOfDockerfile(exported, options);
  expect(again).toEqual(spec);
  expect(dockerfileOfSpec(again, { buildkit: true })).toBe(exported);
  // The spec must also survive the S-expression printer and reader unchanged.
  expect(parseSpec(printSpec(spec))).toEqual(spec);
}

const ops = (spec: Spec, kind: Op['op']) => spec.ops.filter((o) => o.op === kind);
const runs = (spec: Spec) => ops(spec, 'run') as RunOp[];
const copies = (spec: Spec) => ops(spec, 'copy') as CopyOp[];
const run = (text: string) => runs(specOfDockerfile(`FROM img\n${text}`))[0]!;
const ROOT = { kind: 'unix', uid: 0, gid: 0 } as const;
const SH = { op: 'shell', args: ['/bin/sh', '-c'] } as const;

describe('Dockerfile import of real-world Dockerfiles', () => {
  it('turns a multi-stage Go and C build into child builds copied from by name and by index', () => {
    const spec = specOfDockerfile(fixture('multistage-go-c.Dockerfile'));
    expect(spec.childBuilds.map((c) => [c.name, c.spec.from])).toEqual([
      ['builder', 'golang:1.22-bookworm'],
      ['1', 'gcc:13'],
    ]);
    expect(spec.from).toBe('debian:bookworm-slim');
    const builder = spec.childBuilds[0]!.spec;
    expect(builder.ops[0]).toEqual({ op: 'comment', text: 'Build the Go server with the official toolchain image.' });
    expect(spec.childBuilds[1]!.spec.ops[0]).toEqual({ op: 'comment', text: 'The C helper library, built with gcc.' });
    expect(copies(builder).map((c) => [c.src, c.dst])).toEqual([
      [['go.mod', 'go.sum'], './'],
      [['.'], './'],
    ]);
    expect(runs(builder)[1]!.shell).toBe('CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/server ./cmd/server');
    expect(copies(spec)).toEqual([
      { op: 'copy', from: { kind: 'build', name: 'builder' }, src: ['/out/server'], dst: '/usr/local/bin/server', exclude: [] },
      { op: 'copy', from: { kind: 'build', name: '1' }, src: ['/build/libfast.so'], dst: '/usr/local/lib/', exclude: [] },
    ]);
    expect(spec.ops.at(-1)).toEqual({ op: 'user', user: { kind: 'unix', uid: 65532, gid: 65532 } });
    expectFixedPoint(spec);
  });

  it('keeps apt and pip cache mounts with their BuildKit options', () => {
    const spec = specOfDockerfile(fixture('apt-cache-mounts.Dockerfile'));
    const [clean, apt, pip] = runs(spec);
    expect(clean!.cache).toEqual([]);
    expect(apt!.cache).toEqual([
      { id: '/var/cache/apt', target: '/var/cache/apt', buildkitOptions: [['sharing', 'locked']] },
      { id: '/var/lib/apt', target: '/var/lib/apt', buildkitOptions: [['sharing', 'locked']] },
    ]);
    expect(apt!.shell).toBe('apt-get update && apt-get install -y --no-install-recommends build-essential python3-pip');
    expect(pip!.cache).toEqual([{ id: 'pip', target: '/root/.cache/pip', buildkitOptions: [['mode', '0755']] }]);
    expect(copies(spec)[0]!.dst).toBe('./');
    expectFixedPoint(spec);
  });

  it('maps secret mounts, with the default target and the owner of the step', () => {
    const dockerignore = fixture('node.dockerignore');
    const spec = specOfDockerfile(fixture('npm-secrets.Dockerfile'), { dockerignore });
    const [ci, build, prune] = runs(spec);
    expect(ci!.secrets).toEqual([{ id: 'npmrc', target: '/root/.npmrc', buildkitOptions: [] }]);
    expect(build!.secrets).toEqual([{ id: 'sentry_token', target: '/run/secrets/sentry_token', buildkitOptions: [['required', 'true']] }]);
    expect(build!.shell).toBe('SENTRY_AUTH_TOKEN="$(cat /run/secrets/sentry_token)" npm run build');
    expect(prune!.secrets).toEqual([{ id: 'npmrc', target: '/home/node/.npmrc', buildkitOptions: [] }]);
    expect(copies(spec).map((c) => c.exclude)).toEqual([
      ['node_modules', '.git', 'dist', 'coverage'],
      ['node_modules', '.git', 'dist', 'coverage'],
    ]);
    expectFixedPoint(spec, { dockerignore });
  });

  it('joins continued lines so that sh reads what Docker runs, and prints them back', () => {
    const spec = specOfDockerfile(fixture('continuations.Dockerfile'));
    const [apt, tool, link] = runs(spec);
    expect(apt!.shell).toBe(
      ['set -eux;', 'apt-get update;', 'apt-get install -y --no-install-recommends ca-certificates curl git xz-utils ;', 'rm -rf /var/lib/apt/lists/*'].join(
        '\n',
      ),
    );
    // A newline before && would be a syntax error, so these lines join as Docker joins them.
    expect(tool!.shell).toBe(
      'curl -fsSL https://example.com/tool.tar.xz -o /tmp/tool.tar.xz && echo "checking the download"' +
        ' && tar -xJf /tmp/tool.tar.xz -C /usr/local && rm /tmp/tool.tar.xz',
    );
    expect(link!.shell).toBe('if [ -d /usr/local/tool ]; then ln -s /usr/local/tool/bin/tool /usr/local/bin/tool;\nfi');
    expect(dockerfileOfSpec(spec)).toContain('RUN set -eux; \\\n    apt-get update; \\\n');
    expectFixedPoint(spec);
  });

  it('expands ARGs with defaults in FROM and COPY, and build args override them', () => {
    const text = fixture('args.Dockerfile');
    const spec = specOfDockerfile(text);
    expect(spec.from).toBe('docker.io/library/alpine:3.20');
    expect(ops(spec, 'env')).toEqual([
      { op: 'env', name: 'ALPINE_VERSION', value: '3.20' },
      { op: 'env', name: 'APP_DIR', value: '/opt/app' },
      { op: 'env', name: 'CONFIG', value: 'config/default.yml' },
    ]);
    expect(copies(spec).map((c) => [c.src, c.dst])).toEqual([
      [['config/default.yml'], '/opt/app/config.yml'],
      [['scripts/entrypoint.sh'], '/opt/app/bin/'],
    ]);
    // RUN is left to the shell, which sees the ARG through the environment.
    expect(runs(spec)[0]!.shell).toBe('echo "built on alpine $ALPINE_VERSION"');
    expectFixedPoint(spec);

    const prod = specOfDockerfile(text, { buildArgs: { ALPINE_VERSION: '3.19', ENVIRONMENT: 'prod', APP_DIR: '/app' } });
    expect(prod.from).toBe('docker.io/library/alpine:3.19');
    expect(copies(prod)[0]!.src).toEqual(['config/prod.yml']);
    expect(ops(prod, 'workdir')).toEqual([{ op: 'workdir', path: '/app' }]);
    expect(ops(prod, 'env')).toContainEqual({ op: 'env', name: 'ENVIRONMENT', value: 'prod' });
  });

  it('reads both ENV syntaxes, USER, WORKDIR and SHELL, and keeps COPY ownership as Docker has it', () => {
    const spec = specOfDockerfile(fixture('env-user-workdir-shell.Dockerfile'));
    expect(ops(spec, 'env')).toEqual([
      { op: 'env', name: 'DEBIAN_FRONTEND', value: 'noninteractive' },
      { op: 'env', name: 'LANG', value: 'C.UTF-8' },
      { op: 'env', name: 'APP_HOME', value: '/srv/app' },
      { op: 'env', name: 'GREETING', value: 'hello world' },
      { op: 'env', name: 'LITERAL', value: 'single quotes keep this' },
      { op: 'env', name: 'ESCAPED', value: 'two words' },
      { op: 'env', name: 'DATA_DIR', value: '/srv/app/data' },
    ]);
    expect(ops(spec, 'workdir')).toEqual([
      { op: 'workdir', path: '/srv/app' },
      { op: 'workdir', path: 'data' },
    ]);
    expect(ops(spec, 'shell')).toEqual([{ op: 'shell', args: ['/bin/bash', '-o', 'pipefail', '-c'] }]);
    const tail = spec.ops.slice(spec.ops.findIndex((o) => o.op === 'copy'));
    expect(tail).toEqual([
      { op: 'copy', from: { kind: 'context' }, src: ['app.conf'], dst: '/srv/app/', exclude: [] },
      // COPY without --chown writes root-owned files even after USER 1000:1000.
      { op: 'user', user: ROOT },
      { op: 'copy', from: { kind: 'context' }, src: ['defaults.conf'], dst: '/etc/app/', exclude: [] },
      // USER root right after: the restore of 1000:1000 would be undone at once, so it is not written.
      { op: 'run', cache: [], network: ['host'], secrets: [], shell: 'exec /usr/bin/id -u' },
    ]);
    expectFixedPoint(spec);
  });
});

describe('RUN', () => {
  it("runs with Docker's /bin/sh, set once before the first RUN of each stage", () => {
    const spec = specOfDockerfile('FROM a AS one\nRUN x\nFROM b\nWORKDIR /w\nRUN y\nRUN z');
    expect(spec.childBuilds[0]!.spec.ops).toEqual([SH, { op: 'run', cache: [], network: ['host'], secrets: [], shell: 'x' }]);
    expect(spec.ops.map((o) => o.op)).toEqual(['workdir', 'shell', 'run', 'run']);
    expect(ops(specOfDockerfile('FROM a\nSHELL ["/bin/bash", "-c"]\nRUN x'), 'shell')).toEqual([{ op: 'shell', args: ['/bin/bash', '-c'] }]);
  });

  it('gives RUN the network Docker gives it, and none for --network=none', () => {
    expect(run('RUN x').network).toEqual(['host']);
    expect(run('RUN --network=default x').network).toEqual(['host']);
    expect(run('RUN --network=host x').network).toEqual(['host']);
    expect(run('RUN --network=none x').network).toEqual([]);
    const e = rejection('FROM a\nRUN --network=bridge x');
    expect(e.pos).toEqual({ line: 2, column: 5 });
    expect(e.reason).toContain('--network=bridge');
  });

  it('keeps a newline only where sh reads it as blanks', () => {
    expect(run('RUN a && \\\n  b || \\\n  c | \\\n  d ; \\\n  e & \\\n  f').shell).toBe('a &&\nb ||\nc |\nd ;\ne &\nf');
    expect(run('RUN apt-get install \\\n    curl \\\n\tgit').shell).toBe('apt-get install curl git');
    expect(run('RUN echo foo\\\nbar').shell).toBe('echo foobar');
    expect(run('RUN find . -exec rm {} \\; \\\n  && true').shell).toBe('find . -exec rm {} \\; && true');
    expect(run('RUN make 2>& \\\n 1').shell).toBe('make 2>& 1');
    expect(run("RUN echo 'a && \\\n  b'").shell).toBe("echo 'a &&   b'");
    expect(run('RUN echo "${X:-a && \\\n  b}"').shell).toBe('echo "${X:-a &&   b}"');
    expect(run('RUN echo a # note && \\\n  b').shell).toBe('echo a # note &&   b');
    expect(run('RUN case $x in a| \\\n  b) true;; esac').shell).toBe('case $x in a|   b) true;; esac');
    expect(run('RUN echo $(case $x in a| \\\n  b) true;; esac)').shell).toBe('echo $(case $x in a|   b) true;; esac)');
  });

  it('drops comment and blank lines inside a continuation, as Docker does', () => {
    const spec = specOfDockerfile('FROM a\nRUN one && \\\n# not a comment op\n\n   \n    two\n# but this is one\nRUN three');
    expect(spec.ops.map((o) => (o.op === 'run' ? o.shell : o.op === 'comment' ? `#${o.text}` : o.op))).toEqual([
      'shell',
      'one &&\ntwo',
      '#but this is one',
      'three',
    ]);
  });

  it('joins lines exactly as Docker does under a shell it cannot read', () => {
    const spec = specOfDockerfile('FROM a\nSHELL ["powershell", "-Command"]\nRUN Get-Item a; \\\n    Get-Item b');
    expect(runs(spec)[0]!.shell).toBe('Get-Item a;     Get-Item b');
    expect(run('RUN a; \\\n  b').shell).toBe('a;\nb');
  });

  it('honours the escape parser directive', () => {
    const spec = specOfDockerfile('# escape=`\nFROM a\nRUN echo a `\n  b\nENV P=C:\\dir');
    expect(runs(spec)[0]!.shell).toBe('echo a   b');
    expect(ops(spec, 'env')).toEqual([{ op: 'env', name: 'P', value: 'C:\\dir' }]);
    expect(rejection('# escape=x\nFROM a').pos.line).toBe(1);
    expect(rejection('# escape=`\n# escape=\\\nFROM a').pos.line).toBe(2);
  });

  it('runs the exec form through the current POSIX shell with exec and sh quoting', () => {
    expect(run('RUN ["echo", "a b", "it\'s", "$HOME"]').shell).toBe("exec echo 'a b' 'it'\\''s' '$HOME'");
    expect(run('RUN [ "/bin/sh", "-c", "make && make install" ]').shell).toBe("exec /bin/sh -c 'make && make install'");
    // Not JSON, so a shell command that starts with [.
    expect(run('RUN [ -f /etc/os-release ] && cat /etc/os-release').shell).toBe('[ -f /etc/os-release ] && cat /etc/os-release');
    expect(rejection('FROM a\nSHELL ["cmd", "/S", "/C"]\nRUN ["dir"]').pos.line).toBe(3);
    expect(rejection('FROM a\nRUN ["echo", 1]').reason).toContain('strings');
    expect(rejection('FROM a\nRUN ["echo"] && true').reason).toContain('after its JSON array');
    expect(rejection('FROM a\nRUN []').reason).toContain('no command');
  });

  it('maps cache mounts, with the id BuildKit defaults to and the options it knows', () => {
    expect(run('RUN --mount=type=cache,target=/c,id=shared-c,sharing=Private,gid=10,mode=0770 x').cache).toEqual([
      {
        id: 'shared-c',
        target: '/c',
        buildkitOptions: [
          ['sharing', 'private'],
          ['gid', '10'],
          ['mode', '0770'],
        ],
      },
    ]);
    expect(run('RUN --mount="type=cache,dst=/c" --mount=type=cache,destination=/d,rw x').cache.map((m) => m.id)).toEqual(['/c', '/d']);
    const spec = specOfDockerfile('FROM a\nUSER 7:8\nRUN --mount=type=cache,target=/c,uid=7 x');
    expect(runs(spec)[0]!.cache).toEqual([{ id: '/c', target: '/c', buildkitOptions: [] }]);
    expectFixedPoint(spec);
  });

  it('rejects cache mounts whose meaning a spec cannot keep', () => {
    const e = rejection('FROM a\nUSER 7:8\nRUN --mount=type=cache,target=/c x');
    expect(e.pos).toEqual({ line: 3, column: 5 });
    expect(e.reason).toContain('add uid=7');
    expect(rejection('FROM a\nRUN --mount=type=cache,target=/c,ro x').reason).toContain('writable');
    expect(rejection('FROM a\nRUN --mount=type=cache,target=/c,from=builder x').reason).toContain('"from"');
    expect(rejection('FROM a\nRUN --mount=type=cache,target=relative x').reason).toContain('absolute');
    expect(rejection('FROM a\nRUN --mount=type=cache,target=/c,sharing=sometimes x').reason).toContain('sharing');
    expect(rejection('FROM a\nRUN --mount=type=cache,target=/c,mode=999 x').reason).toContain('octal');
  });

  it('maps secret mounts, taking the id from the target when it has none', () => {
    expect(run('RUN --mount=type=secret,target=/root/.aws/credentials x').secrets).toEqual([
      { id: 'credentials', target: '/root/.aws/credentials', buildkitOptions: [] },
    ]);
    expect(run('RUN --mount=type=secret,source=tok,mode=0440 x').secrets).toEqual([
      { id: 'tok', target: '/run/secrets/tok', buildkitOptions: [['mode', '0440']] },
    ]);
    expect(rejection('FROM a\nRUN --mount=type=secret,id=t,env=TOKEN x').reason).toContain('"env"');
    expect(rejection('FROM a\nRUN --mount=type=secret x').reason).toContain('id=ID');
    expect(rejection('FROM a\nRUN --mount=type=secret,id=a,source=b x').reason).toContain('both');
  });

  it('rejects other mount types and unknown mount options, naming the flag', () => {
    for (const type of ['bind', 'tmpfs', 'ssh']) {
      const e = rejection(`FROM a\nRUN   --mount=type=${type},target=/m x`);
      expect(e.pos).toEqual({ line: 2, column: 7 });
      expect(e.reason).toContain(type);
    }
    expect(rejection('FROM a\nRUN --mount=target=/src make').reason).toContain('bind mounts');
    expect(rejection('FROM a\nRUN --mount=type=cahce,target=/c x').reason).toContain('did you mean "cache"');
    expect(rejection('FROM a\nRUN --mount=type=cache,taget=/c x').reason).toContain('did you mean "target"');
    expect(rejection("FROM a\nRUN --mount='type=cache,\"target=/c' x").reason).toContain('closing quote');
    expect(rejection('FROM a\nRUN --mount= x').reason).toContain('empty');
  });

  it('finds flags on continuation lines and reports their own line and column', () => {
    const e = rejection('FROM a\nRUN --mount=type=cache,target=/c \\\n    --security=insecure x');
    expect(e.pos).toEqual({ line: 3, column: 5 });
    expect(e.reason).toContain('--security');
    const u = rejection('FROM a\nRUN --mout=type=cache,target=/c x');
    expect(u.reason).toBe('unknown flag --mout for RUN; did you mean --mount?');
    expect(rejection('FROM a\nRUN --network x').reason).toContain('needs a value');
    expect(rejection('FROM a\nRUN --network=host --network=none x').reason).toContain('twice');
  });

  it("runs a heredoc that is the whole command as the shell's script, as BuildKit does", () => {
    const spec = specOfDockerfile('FROM a\nRUN --mount=type=cache,target=/var/cache/apt <<EOF\nset -e\n  apt-get update\n\nEOF\nRUN true');
    expect(runs(spec).map((r) => r.shell)).toEqual(['set -e\n  apt-get update\n', 'true']);
    expect(dockerfileOfSpec(spec, { buildkit: true })).toContain(
      'RUN --mount=type=cache,id=/var/cache/apt,target=/var/cache/apt,uid=0 <<EOF\nset -e\n  apt-get update\n\nEOF\n',
    );
    expectFixedPoint(spec);
  });

  it('hands other heredocs to the shell with their terminators, tabs cut for <<-', () => {
    const spec = specOfDockerfile('FROM a\nRUN python3 <<PY && cat <<-"T" > /etc/motd\nprint("$HOME")\nPY\n\thello\n\tT\nRUN x');
    expect(runs(spec).map((r) => r.shell)).toEqual(['python3 <<PY && cat <<-"T" > /etc/motd\nprint("$HOME")\nPY\nhello\nT', 'x']);
    expectFixedPoint(spec);
    // A terminator inside the script gets another name when exported.
    const tricky = specOfDockerfile('FROM a\nRUN cat <<EOF\nx\nEOF');
    expect(dockerfileOfSpec(tricky)).toContain('RUN <<EOF1\ncat <<EOF\nx\nEOF\nEOF1\n');
    expectFixedPoint(tricky);
  });

  it('refuses a heredoc script with #! and an unended heredoc', () => {
    expect(rejection('FROM a\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF').reason).toContain('#!');
    const open = rejection('FROM a\n\nRUN <<EOF\necho hi');
    expect([open.pos.line, open.reason]).toEqual([3, 'the heredoc <<EOF opened here has no line "EOF" to end it']);
    expect(run('RUN echo "<<EOF"').shell).toBe('echo "<<EOF"');
    expect(run('RUN cat <<< hello').shell).toBe('cat <<< hello');
    // One word to BuildKit; a newline after & would make <<x a heredoc of its own.
    expect(run('RUN true &\\\n<<x').shell).toBe('true &<<x');
  });

  it('writes the heredocs of COPY with a run step, as root, with their mode and owner, and says so', () => {
    const text =
      "FROM a\nUSER 1000:1000\nCOPY --chmod=0755 --chown=1000:1000 <<'EOF' /usr/local/bin/hello\n#!/bin/sh\necho \"it's $1\"\nEOF\nCOPY <<A <<-B conf/\na\nA\n\tb\n\tB\nRUN true";
    const { spec, warnings } = importDockerfile(text);
    expect(spec.ops).toEqual([
      { op: 'user', user: { kind: 'unix', uid: 1000, gid: 1000 } },
      { op: 'user', user: ROOT },
      SH,
      {
        op: 'run',
        cache: [],
        network: ['host'],
        secrets: [],
        shell: `mkdir -p "$(dirname /usr/local/bin/hello)" && printf '%s' '#!/bin/sh\necho "it'\\''s $1"\n' > /usr/local/bin/hello && chmod 0755 /usr/local/bin/hello && chown 1000:1000 /usr/local/bin/hello`,
      },
      {
        op: 'run',
        cache: [],
        network: ['host'],
        secrets: [],
        shell: `mkdir -p "$(dirname conf/A)" && printf '%s' 'a\n' > conf/A && chmod 0644 conf/A && mkdir -p "$(dirname conf/B)" && printf '%s' 'b\n' > conf/B && chmod 0644 conf/B`,
      },
      { op: 'user', user: { kind: 'unix', uid: 1000, gid: 1000 } },
      { op: 'run', cache: [], network: ['host'], secrets: [], shell: 'true' },
    ]);
    expect(warnings.map((w) => `${w.pos.line} ${w.reason}`)).toEqual([
      "3 COPY <<EOF: a spec copies files only, so a run step writes /usr/local/bin/hello with the image's shell and printf",
      "7 COPY <<A <<B: a spec copies files only, so a run step writes conf/A conf/B with the image's shell and printf",
    ]);
    expectFixedPoint(spec);
  });

  it('downloads ADD of a URL with --checksum in a run step that verifies it, and refuses one without', () => {
    const hex = 'a'.repeat(64);
    const { spec, warnings } = importDockerfile(
      `FROM a\nUSER 1000:1000\nADD --checksum=sha256:${hex} --chown=1000:1000 https://example.com/dl/tool%201.tar.gz /opt/\nRUN true`,
    );
    expect(spec.ops.slice(1, 4)).toEqual([
      { op: 'user', user: ROOT },
      SH,
      {
        op: 'run',
        cache: [],
        network: ['host'],
        secrets: [],
        shell: `mkdir -p "$(dirname '/opt/tool 1.tar.gz')" && { wget -q -O '/opt/tool 1.tar.gz.download' https://example.com/dl/tool%201.tar.gz || curl -fsSL -o '/opt/tool 1.tar.gz.download' https://example.com/dl/tool%201.tar.gz; } && echo '${hex}  /opt/tool 1.tar.gz.download' | sha256sum -c >/dev/null && mv '/opt/tool 1.tar.gz.download' '/opt/tool 1.tar.gz' && chmod 0600 '/opt/tool 1.tar.gz' && chown 1000:1000 '/opt/tool 1.tar.gz'`,
      },
    ]);
    expect(warnings.map((w) => w.reason)).toEqual([
      "ADD https://example.com/dl/tool%201.tar.gz: a spec has no download, so a run step fetches it with the image's wget or curl and checks its sha256",
    ]);
    expectFixedPoint(spec);
    expect(rejection('FROM a\nADD https://example.com/x /x').reason).toBe(
      'ADD: the URL https://example.com/x without --checksum would be downloaded once and cached as if it never changed; add --checksum=sha256:<digest> (the import then writes a step that downloads and verifies it), or download it in a RUN',
    );
    expect(rejection('FROM a\nADD --checksum=md5:00 https://example.com/x /x').reason).toBe(
      'ADD --checksum=md5:00: a sha256:<64 hex digits> digest is imported',
    );
    expect(rejection(`FROM a\nADD --checksum=sha256:${hex} https://example.com/ /d/`).reason).toContain('names no file');
  });

  it('unpacks ADD of a local archive with a run step after copying it to a scratch path, as root', () => {
    const { spec, warnings } = importDockerfile('FROM a\nUSER 1000:1000\nWORKDIR /srv\nADD dist/app.tar.gz web/\nRUN true', { dockerignore: 'node_modules\n' });
    expect(spec.ops.slice(2, 7)).toEqual([
      { op: 'user', user: ROOT },
      { op: 'copy', from: { kind: 'context' }, src: ['dist/app.tar.gz'], dst: '/.cairn-add/app.tar.gz', exclude: ['node_modules'] },
      SH,
      { op: 'run', cache: [], network: ['host'], secrets: [], shell: 'mkdir -p web/ && tar -xzf /.cairn-add/app.tar.gz -C web/ && rm -rf /.cairn-add' },
      { op: 'user', user: { kind: 'unix', uid: 1000, gid: 1000 } },
    ]);
    expect(warnings.map((w) => w.reason)).toEqual([
      "ADD dist/app.tar.gz: a spec copy does not unpack, so a run step unpacks it into web/ with the image's tar",
    ]);
    expectFixedPoint(spec, { dockerignore: 'node_modules\n' });
    expect(rejection('FROM a\nADD ../app.tgz /srv/').reason).toContain('inside the build context');
    expect(rejection('FROM a\nADD a.tgz b.tgz /srv/').reason).toContain('imported alone');
  });

  it('gives what ADD --chown unpacks from an archive to the owner, as BuildKit 0.23 does, and refuses --chmod, which BuildKit ignores there', () => {
    const { spec, warnings } = importDockerfile('FROM a\nADD --chown=1000:1001 app.tar /opt/app/\nRUN true');
    const ids = '1000:1001';
    expect(runs(spec)[0]!.shell).toBe(
      `set -- && d=/opt/app/ && while [ ! -e "$d" ]; do set -- "$d" "$@" && d="$(dirname "$d")"; done` +
        ` && mkdir -p /opt/app/ && tar -xf /.cairn-add/app.tar -C /opt/app/ && for d in "$@"; do chown ${ids} "$d"; done` +
        ` && tar -tf /.cairn-add/app.tar | while IFS= read -r p; do case "$p" in .|./) ;; *) chown -h ${ids} /opt/app/"$p" ;; esac; done && rm -rf /.cairn-add`,
    );
    expect(warnings.map((w) => w.reason)).toEqual([
      "ADD app.tar: a spec copy does not unpack, so a run step unpacks it into /opt/app/ with the image's tar, then gives 1000:1001 what it unpacked, as BuildKit 0.23 and later do (the classic builder and older BuildKit keep the archive's owners)",
    ]);
    expectFixedPoint(spec);
    const chmod = rejection('FROM a\nADD --chmod=0644 app.tgz /srv/');
    expect(chmod.reason).toBe(
      'ADD --chmod=0644 app.tgz: BuildKit unpacks an archive with the modes it holds and ignores --chmod (the classic builder refuses --chmod); remove it, or chmod in a RUN',
    );
    expect(chmod.pos).toEqual({ line: 2, column: 5 });
  });

  it('gives the files COPY --chmod copied their mode with a run step as root after the copy, and says so', () => {
    const text =
      'FROM a AS build\nRUN make\nFROM b\nUSER 1000:1000\nWORKDIR /srv\nCOPY --chmod=0640 --chown=1000:1000 app.conf log.conf conf/\nCOPY --from=build --chmod=755 /out/tool /usr/local/bin/tool\nRUN true';
    const { spec, warnings } = importDockerfile(text);
    expect(spec.ops).toEqual([
      { op: 'user', user: { kind: 'unix', uid: 1000, gid: 1000 } },
      { op: 'workdir', path: '/srv' },
      { op: 'copy', from: { kind: 'context' }, src: ['app.conf', 'log.conf'], dst: 'conf/', exclude: [] },
      { op: 'user', user: ROOT },
      SH,
      { op: 'run', cache: [], network: ['host'], secrets: [], shell: 'chmod 0640 conf/app.conf conf/log.conf' },
      { op: 'copy', from: { kind: 'build', name: 'build' }, src: ['/out/tool'], dst: '/usr/local/bin/tool', exclude: [] },
      { op: 'run', cache: [], network: ['host'], secrets: [], shell: 'chmod 755 /usr/local/bin/tool' },
      { op: 'user', user: { kind: 'unix', uid: 1000, gid: 1000 } },
      { op: 'run', cache: [], network: ['host'], secrets: [], shell: 'true' },
    ]);
    expect(warnings.map((w) => `${w.pos.line} ${w.reason}`)).toEqual([
      "6 COPY --chmod=0640: a spec copy keeps each file's own mode (0755 or 0644), so a run step as root gives conf/app.conf conf/log.conf the mode with the image's chmod",
      "7 COPY --chmod=755: a spec copy keeps each file's own mode (0755 or 0644), so a run step as root gives /usr/local/bin/tool the mode with the image's chmod",
    ]);
    expectFixedPoint(spec);
    const directory = rejection('FROM a\nCOPY --chmod=0755 bin/ /usr/local/bin/');
    expect(directory.reason).toBe(
      'COPY --chmod=0755 bin/: BuildKit gives the mode to every file and directory copied out of bin/, which a step after the copy cannot tell from what the destination already held; copy its files by name',
    );
    expect(directory.pos).toEqual({ line: 2, column: 6 });
    const noShell = rejection('FROM a\nSHELL ["cmd", "/S", "/C"]\nCOPY --chmod=0755 run.sh /run.sh');
    expect(noShell.reason).toBe('COPY --chmod=0755: the mode is given by a step that runs chmod with a POSIX shell after the copy, and this stage has none');
    expect(noShell.pos).toEqual({ line: 3, column: 6 });
    expect(rejection('FROM a\nCOPY --chmod=u+x run.sh /run.sh').reason).toBe('COPY --chmod=u+x: an octal mode is imported (e.g. 0755)');
  });

  it('refuses a COPY heredoc it cannot write as BuildKit would, saying why', () => {
    expect(rejection('FROM a\nCOPY <<EOF /f\nhome is $HOME\nEOF').reason).toBe(
      `COPY: the heredoc <<EOF is unquoted, so BuildKit would expand the variables and escapes of its body, which the import does not do; quote it (<<'EOF') to copy the text as it is`,
    );
    expect(rejection('FROM a\nCOPY <<A <<B /etc\na\nA\nb\nB').reason).toBe('COPY: several heredocs go into a directory, written with a trailing "/" (/etc/)');
    expect(rejection('FROM a\nCOPY <<A file /etc/\na\nA').reason).toContain('every source is a heredoc');
    expect(rejection('FROM a\nCOPY --chmod=u+x <<A /f\na\nA').reason).toBe('COPY --chmod=u+x: an octal mode is imported (e.g. 0755)');
    expect(rejection('FROM a\nSHELL ["cmd", "/S", "/C"]\nCOPY <<A /f\na\nA').reason).toContain('POSIX shell');
  });

  it('exports a command that continued lines would change as a heredoc', () => {
    const spec = parseSpec('((from a) (shell /bin/sh -c) (run (network host) (shell "if true; then\n  echo \\"two\n  lines\\"\nfi")))');
    const text = dockerfileOfSpec(spec);
    expect(text).toContain('RUN <<EOF\nif true; then\n  echo "two\n  lines"\nfi\nEOF\n');
    expect(specOfDockerfile(text)).toEqual(spec);
  });
});

describe('COPY and ADD', () => {
  it('reads the JSON form, expands variables in it and keeps the destination as written', () => {
    const spec = specOfDockerfile('FROM a\nARG D=/dst\nCOPY ["a b", "c", "${D}/"]\nADD x y\nCOPY . .');
    expect(copies(spec).map((c) => [c.src, c.dst])).toEqual([
      [['a b', 'c'], '/dst/'],
      [['x'], 'y'],
      [['.'], './'],
    ]);
    expect(dockerfileOfSpec(spec)).toContain('COPY ["a b", "c", "/dst/"]\n');
    expectFixedPoint(spec);
  });

  it('switches to the --chown owner (a lone uid is also the gid) and back', () => {
    const spec = specOfDockerfile('FROM a\nCOPY --chown=10 a /a\nADD --chown=root:0 b /b\nUSER 5:6\nCOPY --chown=5:6 c /c');
    expect(spec.ops).toEqual([
      { op: 'user', user: { kind: 'unix', uid: 10, gid: 10 } },
      { op: 'copy', from: { kind: 'context' }, src: ['a'], dst: '/a', exclude: [] },
      { op: 'user', user: ROOT },
      { op: 'copy', from: { kind: 'context' }, src: ['b'], dst: '/b', exclude: [] },
      { op: 'user', user: { kind: 'unix', uid: 5, gid: 6 } },
      { op: 'copy', from: { kind: 'context' }, src: ['c'], dst: '/c', exclude: [] },
    ]);
    expectFixedPoint(spec);
    expect(rejection('FROM a\nCOPY --chown=app:app:x a /a').reason).toContain('numeric');
  });

  it('copies as root, then gives the copy to a --chown name it cannot resolve with a run step, as Docker looks the name up when it copies', () => {
    const text =
      'FROM a\nRUN adduser -D app\nWORKDIR /srv\nCOPY --chown=app:staff a.txt lib/ ./\nCOPY --chown=app . .\nCOPY --chown=app --chmod=0600 b /b/\nRUN true';
    const { spec, warnings } = importDockerfile(text);
    const run = (shell: string) => ({ op: 'run', cache: [], network: ['host'], secrets: [], shell });
    const copy = (src: string[], dst: string) => ({ op: 'copy', from: { kind: 'context' }, src, dst, exclude: [] });
    expect(spec.ops).toEqual([
      SH,
      run('adduser -D app'),
      { op: 'workdir', path: '/srv' },
      copy(['a.txt'], './'),
      copy(['lib/'], '/srv'),
      run('chown -hR app:staff ./a.txt && find /srv -mindepth 1 -exec chown -h app:staff {} +'),
      copy(['.'], './'),
      run('u="$(id -u app)" && g="$(id -g app)" && find ./. -mindepth 1 -exec chown -h "$u:$g" {} +'),
      copy(['b'], '/b/'),
      run('u="$(id -u app)" && g="$(id -g app)" && chown -hR "$u:$g" /b/b'),
      run('chmod 0600 /b/b'),
      run('true'),
    ]);
    expect(warnings.map((w) => `${w.pos.line} ${w.reason}`).slice(0, 2)).toEqual([
      "4 COPY --chown=app:staff: the import turns a name into ids only from the base image's accounts (cairn import --resolve), and a RUN may add one, so the copy is root's and a run step as root gives ./a.txt /srv to app:staff with the image's chown",
      "5 COPY --chown=app: the import turns a name into ids only from the base image's accounts (cairn import --resolve), and a RUN may add one, so the copy is root's and a run step as root gives ./. to app with the image's chown",
    ]);
    expectFixedPoint(spec);
    expect(rejection('FROM a\nCOPY --chown=app . .').reason).toBe(
      "COPY: --chown=app copies into the base image's workdir, which the import cannot see, where a step giving the copy to the name after it would take the image's files too; write numeric ids, or use cairn import --resolve if the base image has the name",
    );
    expect(rejection('FROM a\nCOPY --chown=app etc/ /').reason).toContain('no name to copy it onto');
    expect(rejection('FROM a\nCOPY --chown=app . /').reason).toContain('copies into /, where');
  });

  it('copies from earlier stages by name or index, never from images or later stages', () => {
    const spec = specOfDockerfile('FROM a AS Build\nFROM b\nCOPY --from=BUILD /x /x\nCOPY --from=0 /y /y');
    expect(copies(spec).map((c) => c.from)).toEqual([
      { kind: 'build', name: 'build' },
      { kind: 'build', name: 'build' },
    ]);
    const image = rejection('FROM a\nCOPY --from=nginx:1.27 /etc/nginx /etc/nginx');
    expect(image.pos).toEqual({ line: 2, column: 6 });
    expect(image.reason).toContain('FROM nginx:1.27 AS');
    expect(rejection('FROM a AS x\nCOPY --from=x /a /a').reason).toContain('stage it is in');
    expect(rejection('FROM a\nCOPY --from=1 /a /a\nFROM b AS later').reason).toContain('no earlier stage');
    expect(rejection('FROM a AS x\nFROM b\nARG S=x\nCOPY --from=$S /a /a').reason).toContain('variable');
  });

  it('rejects what a spec copy cannot do, naming the line', () => {
    const cases: [string, string][] = [
      ['ADD https://example.com/a.tgz /a', 'URL'],
      ['ADD git@github.com:moby/buildkit.git /src', 'URL'],
      ['ADD rootfs.tar.gz extra.tgz /', 'imported alone'],
      ['COPY --parents a/b /x/', '--parents'],
      ['COPY *.go /src/', 'a wildcard needs the build context to list what it matches (cairn import --context DIR)'],
      ['COPY ../secret /s', '".."'],
      ['COPY a b /dst', 'ending in "/"'],
      ['COPY src/ /', 'no name to copy it onto'],
      ['COPY src/ .', "in the base image's workdir, which the import cannot see; copy the files of src/ by name, or set WORKDIR"],
      ['COPY onlyone', 'destination'],
      ['COPY --chown=1000 a', 'destination'],
    ];
    for (const [line, expected] of cases) {
      const e = rejection(`FROM a\n\n${line}`);
      expect(e.pos.line, line).toBe(3);
      expect(e.reason, line).toContain(expected);
    }
  });

  it('copies a directory named with a trailing "/" onto the destination, as Docker copies its contents', () => {
    const spec = specOfDockerfile('FROM b\nFROM a\nCOPY app/ ./app/\nCOPY a b/ c d/. /srv/\nCOPY --from=0 /out/ /usr/share/html/');
    expect(copies(spec).map((c) => [c.src, c.dst])).toEqual([
      [['app/'], './app'],
      [['a'], '/srv/'],
      [['b/'], '/srv'],
      [['c'], '/srv/'],
      [['d/.'], '/srv'],
      [['/out/'], '/usr/share/html'],
    ]);
    expectFixedPoint(spec);
  });

  it('copies a directory onto the workdir by its path, when a WORKDIR set it', () => {
    const spec = specOfDockerfile('FROM a\nWORKDIR /srv\nWORKDIR app/.\nCOPY dist/ ./\nCOPY x/ ..\nWORKDIR /opt\nCOPY y/ ./z/../');
    expect(copies(spec).map((c) => [c.src, c.dst])).toEqual([
      [['dist/'], '/srv/app'],
      [['x/'], '/srv'],
      [['y/'], '/opt'],
    ]);
    expectFixedPoint(spec);
    expect(rejection('FROM a\nWORKDIR /\nCOPY y/ ./').reason).toContain('./ has no name to copy it onto');
    expect(rejection('FROM a\nWORKDIR rel\nCOPY y/ ./').reason).toContain("base image's workdir");
  });

  it('switches once for consecutive copies with one owner, and not back before a USER', () => {
    const spec = specOfDockerfile('FROM a\nCOPY --chown=1:1 a /a\nCOPY --chown=1:1 b /b\nCOPY --chown=2:2 c /c\nUSER 2:2\nCOPY d /d\n# note\nCOPY e /e');
    const copy = (src: string) => ({ op: 'copy', from: { kind: 'context' }, src: [src], dst: `/${src}`, exclude: [] });
    const user = (id: number) => ({ op: 'user', user: { kind: 'unix', uid: id, gid: id } });
    expect(spec.ops).toEqual([
      user(1),
      copy('a'),
      copy('b'),
      user(2),
      copy('c'),
      user(0),
      copy('d'),
      user(2),
      { op: 'comment', text: 'note' },
      user(0),
      copy('e'),
      user(2),
    ]);
    expectFixedPoint(spec);
  });

  it('lists what a context wildcard matches, with a warning, when the caller can look', () => {
    const tree: Record<string, { name: string; directory: boolean }[]> = {
      '': [
        { name: '.env', directory: false },
        { name: 'node_modules', directory: true },
        { name: 'package-lock.json', directory: false },
        { name: 'package.json', directory: false },
        { name: 'src', directory: true },
      ],
      node_modules: [{ name: 'x', directory: true }],
      'node_modules/x': [{ name: 'package.json', directory: false }],
      src: [
        { name: 'a.c', directory: false },
        { name: 'b.h', directory: false },
      ],
    };
    const readContext = (dir: string) => tree[dir];
    const text = 'FROM a AS b\nFROM a\nWORKDIR /app\nCOPY package*.json ./\nCOPY sr* ./src/';
    const { spec, warnings } = importDockerfile(text, { readContext, dockerignore: 'node_modules\n' });
    expect(copies(spec).map((c) => [c.src, c.dst])).toEqual([
      [['package-lock.json', 'package.json'], './'],
      [['src/'], './src'],
    ]);
    expect(warnings.map((w) => [w.pos.line, w.reason])).toEqual([
      [
        4,
        'COPY package*.json: the wildcard matches package-lock.json package.json in the build context now, which the spec names; a file added later is copied only once the Dockerfile is imported again',
      ],
      [
        5,
        'COPY sr*: the wildcard matches src/ in the build context now, which the spec names; a file added later is copied only once the Dockerfile is imported again',
      ],
    ]);
    expect(() => importDockerfile(`${text}\nCOPY *.md /doc/`, { readContext })).toThrow('6:1: COPY: *.md matches nothing in the build context');
    // Go's Match: * takes dotfiles too, classes and ? one character, never a "/".
    const listed = (pattern: string) => copies(importDockerfile(`FROM a\nCOPY ${pattern} /d/`, { readContext }).spec)[0]!.src;
    expect(listed('*env')).toEqual(['.env']);
    expect(listed('src/[a-b].?')).toEqual(['src/a.c', 'src/b.h']);
    expect(listed('src/[^a].h')).toEqual(['src/b.h']);
    expect(listed('*/*/package.json')).toEqual(['node_modules/x/package.json']);
    // What .dockerignore leaves out is not there to match.
    expect(() => importDockerfile('FROM a\nCOPY node_modules/*/package.json /n/', { readContext, dockerignore: 'node_modules' })).toThrow('matches nothing');
    expect(() => importDockerfile('FROM a AS b\nFROM a\nCOPY --from=b /out/* /', { readContext })).toThrow('a wildcard in another stage cannot be listed');
  });

  it('takes --link as a plain copy, since the files it writes are the same', () => {
    const spec = specOfDockerfile('FROM a\nCOPY --link --chown=1:1 a /a\nADD --link b /b');
    expect(spec).toEqual(specOfDockerfile('FROM a\nCOPY --chown=1:1 a /a\nADD b /b'));
  });

  it('applies .dockerignore to context copies only, and --exclude to any', () => {
    const dockerignore = '# deps\nnode_modules\n\n  .git/  \n**/*.log\n';
    expect(rejection('FROM a', { dockerignore })).toMatchObject({ file: '.dockerignore', pos: { line: 5, column: 1 } });
    const spec = specOfDockerfile('FROM a AS b\nFROM c\nCOPY . /app\nCOPY --from=b /x /x\nCOPY --exclude=tmp --from=b /y /y', {
      dockerignore: 'node_modules\n/.git\n**/build/\n./dist',
    });
    expect(copies(spec).map((c) => c.exclude)).toEqual([['node_modules', '.git', 'build', 'dist'], [], ['tmp']]);
    for (const bad of ['!keep', 'docs/*.md', 'a/b', '[ab]', '.']) {
      expect(rejection('FROM a', { dockerignore: bad }).reason).toContain(`"${bad}"`);
    }
  });
});

describe('variables, ENV and ARG', () => {
  it('expands ENV values and ARG defaults as BuildKit does', () => {
    const spec = specOfDockerfile(
      ['FROM a', 'ENV A=1 B=""', 'ENV A=2 C=$A', 'ENV D=${B:-empty} E=${B-unset} F=${A:+set} G=\'$A\' H=\\$A I="x\\"y"', 'WORKDIR /${A}'].join('\n'),
    );
    expect(ops(spec, 'env').slice(3)).toEqual([
      { op: 'env', name: 'C', value: '1' },
      { op: 'env', name: 'D', value: 'empty' },
      { op: 'env', name: 'E', value: '' },
      { op: 'env', name: 'F', value: 'set' },
      { op: 'env', name: 'G', value: '$A' },
      { op: 'env', name: 'H', value: '$A' },
      { op: 'env', name: 'I', value: 'x"y' },
    ]);
    expect(ops(spec, 'workdir')).toEqual([{ op: 'workdir', path: '/2' }]);
  });

  it('rejects a variable the Dockerfile never sets, since only the base image could', () => {
    const e = rejection('FROM a\nENV PATH=/opt/bin:$PATH');
    expect(e.pos).toEqual({ line: 2, column: 1 });
    expect(e.reason).toContain('$PATH');
    expect(rejection('FROM a\nWORKDIR ${HOME:-/root}').reason).toContain('$HOME');
    expect(rejection('FROM a\nARG V\nWORKDIR ${V:?is required}').reason).toContain('V: is required');
    expect(rejection('FROM a\nENV A=x\nWORKDIR ${A%x}').reason).toContain('pattern substitution');
    expect(rejection('FROM a\nWORKDIR "unclosed').reason).toContain('double quote');
    expect(specOfDockerfile('FROM a\nARG V\nWORKDIR /${V:-dflt}$1').ops).toEqual([{ op: 'workdir', path: '/dflt' }]);
  });

  it('scopes ARGs like Docker: global ones serve FROM, a stage sees them only when it declares them', () => {
    const text = 'ARG V=1\nARG EMPTY\nFROM img:$V$EMPTY\nRUN echo $V\nARG V\nARG W=${V}0';
    const spec = specOfDockerfile(text);
    expect(spec.from).toBe('img:1');
    expect(spec.ops).toEqual([
      SH,
      { op: 'run', cache: [], network: ['host'], secrets: [], shell: 'echo $V' },
      { op: 'env', name: 'V', value: '1' },
      { op: 'env', name: 'W', value: '10' },
    ]);
    const overridden = specOfDockerfile(text, { buildArgs: { V: '2', W: 'w', UNDECLARED: 'x' } });
    expect(overridden.from).toBe('img:2');
    expect(ops(overridden, 'env')).toEqual([
      { op: 'env', name: 'V', value: '2' },
      { op: 'env', name: 'W', value: 'w' },
    ]);
    expect(specOfDockerfile('FROM a\nARG constructor\nARG toString=x').ops).toEqual([{ op: 'env', name: 'toString', value: 'x' }]);
    // A global ARG without a value is empty, not unset, once a stage declares it.
    expect(specOfDockerfile('ARG E\nFROM a\nARG E').ops).toEqual([{ op: 'env', name: 'E', value: '' }]);
  });

  it('accepts the native platform only, and needs platform ARGs given', () => {
    expect(specOfDockerfile('FROM --platform=$BUILDPLATFORM golang AS b\nFROM scratch').childBuilds[0]!.spec.from).toBe('golang');
    const e = rejection('FROM --platform=linux/arm64 alpine');
    expect(e.pos).toEqual({ line: 1, column: 6 });
    expect(rejection('FROM alpine\nARG TARGETARCH\nRUN echo $TARGETARCH').reason).toContain('TARGETARCH');
    expect(rejection('FROM alpine:$TARGETARCH').reason).toContain('TARGETARCH');
    expect(specOfDockerfile('FROM alpine\nARG TARGETARCH', { buildArgs: { TARGETARCH: 'amd64' } }).ops).toEqual([
      { op: 'env', name: 'TARGETARCH', value: 'amd64' },
    ]);
  });

  it('reads ENV and USER forms and rejects the ones it cannot know', () => {
    expect(ops(specOfDockerfile('FROM a\nENV MSG hello   "big"  world'), 'env')).toEqual([{ op: 'env', name: 'MSG', value: 'hello   big  world' }]);
    expect(rejection('FROM a\nENV A=1 B').reason).toContain('"B" has no "="');
    expect(rejection('FROM a\nENV ONLY').reason).toContain('no value');
    expect(ops(specOfDockerfile('FROM a\nUSER root\nUSER 0'), 'user')).toEqual([
      { op: 'user', user: ROOT },
      { op: 'user', user: ROOT },
    ]);
    expect(rejection('FROM a\nUSER node').reason).toContain('/etc/passwd');
    expect(rejection('FROM a\nUSER 1000').reason).toContain('group of uid 1000');
    expect(rejection('FROM a\nSHELL /bin/bash -c').reason).toContain('JSON array');
  });
});

describe('stages and comments', () => {
  it('names a stage without AS by its index and rejects building on an earlier stage', () => {
    const spec = specOfDockerfile('FROM a\nFROM b AS B\nFROM c');
    expect(spec.childBuilds.map((c) => c.name)).toEqual(['0', 'b']);
    expectFixedPoint(spec);
    const e = rejection('FROM golang AS build\nRUN make\nFROM build AS test');
    expect(e.pos).toEqual({ line: 3, column: 1 });
    expect(e.reason).toContain('earlier stage');
    expect(rejection('FROM a AS x\nFROM b AS X').reason).toContain('already defined');
    expect(rejection('FROM a AS 1x').reason).toContain('not a stage name');
    expect(rejection('FROM a AS').reason).toContain('FROM IMAGE AS NAME');
  });

  it("puts each comment before the instruction it precedes, in that instruction's stage", () => {
    const text = '# syntax=docker/dockerfile:1\n# header\nARG V=1\nFROM a AS x\n# in x\nRUN make\n\n# for the final stage\nFROM b\n  # indented\n#\n# last';
    const spec = specOfDockerfile(text);
    expect(spec.childBuilds[0]!.spec.ops.map((o) => o.op === 'comment' && o.text)).toEqual(['header', 'in x', false, false]);
    expect(spec.ops).toEqual([
      { op: 'comment', text: 'for the final stage' },
      { op: 'comment', text: 'indented' },
      { op: 'comment', text: 'last' },
    ]);
    expectFixedPoint(spec);
    // A stage holding only comments keeps them, or the exported text would move them on.
    const only = specOfDockerfile('FROM a AS x\n# only this\nFROM b\n# then b\nRUN y');
    expect(only.childBuilds[0]!.spec.ops).toEqual([{ op: 'comment', text: 'only this' }]);
    expect(only.ops[0]).toEqual({ op: 'comment', text: 'then b' });
    expectFixedPoint(only);
  });

  it('reads CRLF line ends and a byte-order mark', () => {
    const spec = specOfDockerfile('\uFEFFFROM a\r\nRUN a && \\\r\n    b\r\n');
    expect(runs(spec)[0]!.shell).toBe('a &&\nb');
  });
});

describe('base images the caller read', () => {
  const images = {
    'alpine:3.20': {
      env: [['PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']] as const,
      passwd: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\nnode:x:1000:1000::/home/node:/bin/sh\nbroken line\n',
      group: 'root:x:0:root\nnode:x:1000:\nwww-data:x:82:\n',
    },
  };

  it("expands the image's Env, and a name it does not set to nothing", () => {
    const spec = specOfDockerfile('FROM alpine:3.20\nENV PATH=/opt/bin:$PATH X=${UNSET:-none}', { images });
    expect(ops(spec, 'env')).toEqual([
      { op: 'env', name: 'PATH', value: '/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
      { op: 'env', name: 'X', value: 'none' },
    ]);
    expect(rejection('FROM alpine:3.21\nENV PATH=/opt/bin:$PATH', { images }).reason).toContain('$PATH is set by no ARG or ENV');
  });

  it("turns user and group names into the ids of the image's /etc/passwd and /etc/group", () => {
    const spec = specOfDockerfile('FROM alpine:3.20\nCOPY --chown=node:www-data a /a\nCOPY --chown=nobody b /b\nUSER node\nUSER 65534\nUSER node:0', {
      images,
    });
    // No restore to root between the copies, nor before USER node: each would be undone at once.
    expect(ops(spec, 'user').map((o) => o.op === 'user' && o.user)).toEqual([
      { kind: 'unix', uid: 1000, gid: 82 },
      { kind: 'unix', uid: 65534, gid: 65534 },
      { kind: 'unix', uid: 1000, gid: 1000 },
      { kind: 'unix', uid: 65534, gid: 65534 },
      { kind: 'unix', uid: 1000, gid: 0 },
    ]);
    expectFixedPoint(spec, { images });
    expect(rejection('FROM alpine:3.20\nUSER app', { images }).reason).toBe(
      'USER app: "app" is not in the base image\'s /etc/passwd (a RUN may add it, which the import cannot see); write numeric ids as UID:GID',
    );
    // A name the image lacks may come from a RUN: the stage's accounts resolve it when the step runs.
    expect(runs(specOfDockerfile('FROM alpine:3.20\nCOPY --chown=node:staff a /a', { images }))[0]!.shell).toBe('chown -hR node:staff /a');
    expect(rejection('FROM alpine:3.20\nUSER 4242', { images }).reason).toContain('the base image has no such uid');
    expect(rejection('FROM debian\nUSER node', { images }).reason).toContain("needs the image's /etc/passwd, which the import cannot read");
  });
});

describe('image metadata', () => {
  const dockerfile = [
    'FROM node:20 AS build',
    'LABEL stage=build',
    'RUN npm ci',
    'FROM gcr.io/distroless/nodejs20',
    'COPY --from=build /app /app',
    'EXPOSE 3000',
    '  CMD ["server.js"]',
  ].join('\n');

  it('drops each metadata instruction with a warning naming file, line, column and why', () => {
    const { spec, warnings } = importDockerfile(dockerfile, { file: 'Dockerfile' });
    expect(spec).toEqual(
      specOfDockerfile(
        dockerfile
          .split('\n')
          .filter((l) => !/LABEL|EXPOSE|CMD/.test(l))
          .join('\n'),
      ),
    );
    expect(warnings.map((w) => w.message)).toEqual([
      'Dockerfile:2:1: LABEL dropped: it sets image labels, image metadata that changes no file, which a Cairn spec does not record',
      'Dockerfile:6:1: EXPOSE dropped: it declares the ports of the image, image metadata that changes no file, which a Cairn spec does not record',
      'Dockerfile:7:3: CMD dropped: it sets the default command of the image, image metadata that changes no file, which a Cairn spec does not record',
    ]);
    expect(warnings[2]).toMatchObject({ pos: { line: 7, column: 3 }, file: 'Dockerfile' });
    expect(importDockerfile('FROM a\nRUN x').warnings).toEqual([]);
  });

  it('still refuses metadata before the first FROM, as Docker does', () => {
    expect(() => importDockerfile('CMD x\nFROM a')).toThrow('CMD comes before the first FROM');
  });

  it('refuses it when strict, and specOfDockerfile is strict', () => {
    expect(() => importDockerfile(dockerfile, { strict: true, file: 'Dockerfile' })).toThrow('Dockerfile:2:1: LABEL sets image labels: image metadata');
  });

  it("returns the final stage's image settings, and with imageConfigFile says they went there", () => {
    const { imageConfig, warnings } = importDockerfile(dockerfile, { file: 'Dockerfile', imageConfigFile: 'image.json' });
    expect(imageConfig).toEqual({ cmd: ['server.js'], exposedPorts: ['3000/tcp'] });
    expect(warnings.map((w) => w.message)).toEqual([
      'Dockerfile:2:1: LABEL dropped: it sets image labels in stage "build", which the final image does not start from, so Docker leaves it out too',
      'Dockerfile:6:1: EXPOSE carried to image.json: it declares the ports of the image, which `cairn build --image REF --image-config image.json` writes into the image config',
      'Dockerfile:7:3: CMD carried to image.json: it sets the default command of the image, which `cairn build --image REF --image-config image.json` writes into the image config',
    ]);
    // Without a file the settings are still data, and the warnings say dropped.
    expect(importDockerfile(dockerfile).imageConfig).toEqual(imageConfig);
  });

  it('sets them as BuildKit does: shell form in the stage SHELL, labels and ports expanded, last one wins', () => {
    const text = [
      'FROM a',
      'ARG PORT=8080',
      'ENV NAME=app',
      'CMD serve --port $PORT',
      'LABEL org.opencontainers.image.title=$NAME "b c"="d e"',
      'LABEL legacy value with spaces',
      'EXPOSE $PORT 53/UDP 9000-9002',
      'EXPOSE 8080/tcp',
      'STOPSIGNAL SIGQUIT',
      'SHELL ["/bin/bash", "-eu", "-c"]',
      'ENTRYPOINT exec app \\',
      '  --verbose',
      'LABEL org.opencontainers.image.title=last',
    ].join('\n');
    const { imageConfig, warnings } = importDockerfile(text, { imageConfigFile: 'i.json' });
    expect(imageConfig).toEqual({
      entrypoint: ['/bin/bash', '-eu', '-c', 'exec app   --verbose'],
      // CMD was set in this stage, so ENTRYPOINT keeps it (only a base image's CMD is reset).
      cmd: ['/bin/sh', '-c', 'serve --port $PORT'],
      labels: { 'b c': 'd e', legacy: 'value with spaces', 'org.opencontainers.image.title': 'last' },
      exposedPorts: ['8080/tcp', '53/udp', '9000/tcp', '9001/tcp', '9002/tcp'],
      stopSignal: 'SIGQUIT',
    });
    expect(Object.keys(imageConfig)).toEqual(['entrypoint', 'cmd', 'labels', 'exposedPorts', 'stopSignal']);
    expect(warnings.every((w) => w.reason.includes(' carried to i.json: '))).toBe(true);
    expect(importDockerfile('FROM a\nENTRYPOINT ["/app"]\nCMD ["--help"]').imageConfig).toEqual({ entrypoint: ['/app'], cmd: ['--help'] });
  });

  it("keeps only the final stage's settings, and drops what an image config cannot hold", () => {
    const text = 'FROM a AS build\nCMD ["build"]\nEXPOSE 1\nFROM b\nVOLUME /data\nHEALTHCHECK CMD true\nONBUILD RUN make\nMAINTAINER me';
    const { imageConfig, warnings } = importDockerfile(text, { imageConfigFile: 'i.json' });
    expect(imageConfig).toEqual({});
    expect(warnings.map((w) => w.reason.slice(0, w.reason.indexOf(':')))).toEqual([
      'CMD dropped',
      'EXPOSE dropped',
      'VOLUME dropped',
      'HEALTHCHECK dropped',
      'ONBUILD dropped',
      'MAINTAINER dropped',
    ]);
  });

  it('with imageConfigFile, strict accepts what is carried and refuses the rest', () => {
    expect(importDockerfile('FROM a\nCMD ["x"]\nEXPOSE 80', { strict: true, imageConfigFile: 'i.json' }).imageConfig).toEqual({
      cmd: ['x'],
      exposedPorts: ['80/tcp'],
    });
    expect(() => importDockerfile('FROM a\nVOLUME /data', { strict: true, imageConfigFile: 'i.json' })).toThrow(
      'VOLUME declares a volume of the image: image metadata',
    );
    expect(() => importDockerfile('FROM a AS b\nCMD ["x"]\nFROM c', { strict: true, imageConfigFile: 'i.json', file: 'D' })).toThrow(
      'D:2:1: CMD sets the default command of the image in stage "b", which the final image does not start from, so Docker leaves it out too; remove it',
    );
  });

  it('names a malformed port or signal and where it is', () => {
    expect(() => importDockerfile('FROM a\nEXPOSE 80/http', { file: 'D' })).toThrow(
      'D:2:1: EXPOSE: "80/http" is not PORT, PORT/PROTOCOL or FIRST-LAST/PROTOCOL',
    );
    expect(() => importDockerfile('FROM a\nEXPOSE 70000')).toThrow('"70000" is not PORT');
    expect(() => importDockerfile('FROM a\nSTOPSIGNAL "kill me"')).toThrow('is not a signal name or number');
    expect(() => importDockerfile('FROM a\nLABEL =x')).toThrow('LABEL: a label name is empty');
  });
});

describe('errors', () => {
  it('rejects each instruction that only sets image metadata, naming line and instruction', () => {
    const lines = [
      'CMD ["nginx", "-g", "daemon off;"]',
      'ENTRYPOINT ["/docker-entrypoint.sh"]',
      'LABEL org.opencontainers.image.source=https://example.com',
      'MAINTAINER someone@example.com',
      'EXPOSE 80/tcp',
      'VOLUME /data',
      'STOPSIGNAL SIGQUIT',
      'HEALTHCHECK CMD curl -f http://localhost/',
      'ONBUILD RUN make',
    ];
    for (const line of lines) {
      const e = rejection(`FROM a\nRUN true\n  ${line}`);
      const keyword = line.split(' ')[0]!;
      expect(e.pos, line).toEqual({ line: 3, column: 3 });
      expect(e.reason, line).toMatch(new RegExp(`^${keyword} .*image metadata, which a Cairn spec does not record; remove it`));
    }
  });

  it('names unknown instructions with a suggestion, and instructions before FROM', () => {
    expect(rejection('FROM a\nCOPPY a b').reason).toBe('unknown instruction "COPPY"; did you mean "COPY"?');
    expect(rejection('FROM a\nFROBNICATE').reason).toBe('unknown instruction "FROBNICATE"');
    expect(rejection('FROM a\nſhell ["sh", "-c"]').reason).toContain('unknown instruction "ſhell"');
    expect(specOfDockerfile('from a\nrun x').ops.at(-1)).toMatchObject({ op: 'run', shell: 'x' });
    expect(rejection('RUN x\nFROM a')).toMatchObject({ pos: { line: 1, column: 1 }, reason: expect.stringContaining('before the first FROM') });
    expect(rejection('# just a comment\nARG A=1').reason).toContain('no FROM');
    expect(rejection('# syntax=example/frontend\nFROM a').reason).toContain('another Dockerfile frontend');
  });

  it('names the file when given one', () => {
    const e = rejection('FROM a\nEXPOSE 80', { file: 'app/Dockerfile' });
    expect(e.message).toMatch(/^app\/Dockerfile:2:1: EXPOSE /);
  });
});

describe('fuzzing', () => {
  const onlySpecErrors = (text: string) => {
    for (const run of [() => specOfDockerfile(text, { buildArgs: { A: text } }), () => specOfDockerfile('FROM a\nCOPY . /', { dockerignore: text })]) {
      try {
        run();
      } catch (e) {
        if (!(e instanceof SpecError)) throw e;
      }
    }
  };

  it('throws nothing but SpecError for arbitrary text', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), onlySpecErrors), { numRuns: 20_000 });
  });

  const fragment = fc.constantFrom(
    'FROM ',
    'RUN ',
    'COPY ',
    'ADD ',
    'ENV ',
    'ARG ',
    'USER ',
    'WORKDIR ',
    'SHELL ',
    'CMD ',
    'run ',
    'AS ',
    'as x ',
    'img',
    'a',
    'b=c',
    '0',
    '1000:1000',
    '/d/',
    '.',
    ' ',
    '\t',
    '\n',
    '\r\n',
    '\\\n',
    '\\',
    '`',
    '"',
    "'",
    '$',
    '${',
    '}',
    ':-',
    ':+',
    '?',
    '#',
    '# escape=`\n',
    '# syntax=x\n',
    '[',
    ']',
    '["a", "b"]',
    ',',
    '=',
    '--',
    '--mount=',
    'type=cache',
    'type=secret',
    'target=/t',
    'id=i',
    'uid=0',
    '--from=',
    '--chown=',
    '--network=',
    '&&',
    ';',
    '|',
    '<<EOF',
    '\u00a0',
    '\uFEFF',
  );
  const keyword = fc.constantFrom('RUN ', 'COPY ', 'ADD ', 'ENV ', 'ARG ', 'USER ', 'WORKDIR ', 'SHELL ', 'FROM ', '# ', '');
  const line = fc.tuple(keyword, fc.array(fragment, { maxLength: 8 })).map(([k, parts]) => k + parts.join(''));
  const dockerfileish = fc.oneof(
    fc.array(fragment, { maxLength: 40 }).map((parts) => parts.join('')),
    fc.array(line, { maxLength: 8 }).map((lines) => ['FROM img AS s', ...lines].join('\n')),
  );

  it('throws nothing but SpecError for Dockerfile-like text', () => {
    fc.assert(fc.property(dockerfileish, onlySpecErrors), { numRuns: 20_000 });
  });

  const word = fc.constantFrom(
    'a',
    'b1',
    '"q q"',
    "'s s'",
    '$X',
    '${X:-d}',
    '\\;',
    '&&',
    '||',
    '|',
    ';',
    '&',
    '#c',
    'x\\ y',
    '2>&1',
    '(',
    ')',
    'case',
    '$(',
    '"',
    "'",
    '>|',
    ';;',
    '`',
    '{',
    '}',
    '$',
    '<<',
    '((',
    'if',
    'then',
    'fi',
    '\u00a0',
    '\f',
    '\r',
  );
  const blanks = fc.constantFrom('', ' ', '  ', '\t', ' \t ');
  const runLine = fc
    .array(fc.tuple(word, blanks, fc.boolean(), fc.boolean()), { minLength: 1, maxLength: 10 })
    .map((parts) => `RUN ${parts.map(([w, b, cont, comment]) => (cont ? `${w}${b}\\\n${comment ? '  # dropped\n' : ''}${b}` : `${w}${b}`)).join('')}`);
  const otherLine = fc.constantFrom(
    'ENV X=v',
    'ENV Y "a b"',
    'WORKDIR /w',
    'WORKDIR rel',
    'USER 1:2',
    'USER root',
    'COPY a b',
    'COPY --chown=3:4 a /d/',
    '# note',
    'SHELL ["/bin/bash", "-c"]',
    'SHELL ["pwsh", "-c"]',
    'ARG Z=z',
    'RUN ["a", "b c"]',
    'FROM img2 AS s2',
    'COPY --from=0 /x /y',
    'RUN --mount=type=cache,target=/c,uid=0 make',
  );
  const validish = fc.array(fc.oneof(runLine, otherLine), { maxLength: 12 }).map((lines) => ['FROM img AS s', 'ENV X=x', ...lines].join('\n'));

  it('reaches a fixed point after one export for any Dockerfile it imports', () => {
    fc.assert(
      fc.property(validish, (text) => {
        let spec: Spec;
        try {
          spec = specOfDockerfile(text);
        } catch (e) {
          if (e instanceof SpecError) return;
          throw e;
        }
        const exported = dockerfileOfSpec(spec, { buildkit: true });
        const again = specOfDockerfile(exported);
        expect(again).toEqual(spec);
        expect(dockerfileOfSpec(again, { buildkit: true })).toBe(exported);
      }),
      { numRuns: 5_000 },
    );
  });
});
