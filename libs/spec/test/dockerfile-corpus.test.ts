import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dockerfileOfSpec } from '../src/dockerfile-export.js';
import { importDockerfile } from '../src/dockerfile-import/index.js';
import { parseSpec } from '../src/spec-reader.js';
import { printSpec } from '../src/spec-printer.js';

/**
 * Dockerfiles written here in the shapes of common projects' (Go, Rust, Node, Python, Java,
 * C, Ruby, PHP, .NET; Alpine, Debian, distroless and scratch final stages; Windows with the
 * backtick escape). Each imports to the spec beside it, which `cairn fmt` leaves as it is,
 * and exports back to a Dockerfile that imports to the same spec with no warning.
 */
const CORPUS = join(import.meta.dirname, 'fixtures', 'dockerfiles', 'corpus');
const read = (name: string) => readFileSync(join(CORPUS, name), 'utf8');

/** The exact reason given for each metadata instruction dropped. */
const DROPPED: Readonly<Record<string, string>> = {
  CMD: 'CMD dropped: it sets the default command of the image, image metadata that changes no file, which a Cairn spec does not record',
  ENTRYPOINT: 'ENTRYPOINT dropped: it sets the entrypoint of the image, image metadata that changes no file, which a Cairn spec does not record',
  EXPOSE: 'EXPOSE dropped: it declares the ports of the image, image metadata that changes no file, which a Cairn spec does not record',
  LABEL: 'LABEL dropped: it sets image labels, image metadata that changes no file, which a Cairn spec does not record',
  VOLUME: 'VOLUME dropped: it declares a volume of the image, image metadata that changes no file, which a Cairn spec does not record',
  HEALTHCHECK: 'HEALTHCHECK dropped: it sets the health check of the image, image metadata that changes no file, which a Cairn spec does not record',
  STOPSIGNAL: 'STOPSIGNAL dropped: it sets the stop signal of the image, image metadata that changes no file, which a Cairn spec does not record',
  ONBUILD: 'ONBUILD dropped: it registers instructions for images built from this one, image metadata that changes no file, which a Cairn spec does not record',
};

/** A --chown name given to the copy by a run step (the paths and owner follow). */
const BY_NAME =
  "the import turns a name into ids only from the base image's accounts (cairn import --resolve), and a RUN may add one, so the copy is root's and a run step as root gives";

/** Each Dockerfile and the warnings its import gives, as `line:column INSTRUCTION` for a dropped one, else `line:column REASON`. */
const CASES: [string, string[]][] = [
  ['add-local-files', ['6:1 HEALTHCHECK']],
  ['alpine-env-path', ['10:1 LABEL', '11:1 ENTRYPOINT']],
  ['alpine-nginx-static', ['7:1 EXPOSE', '8:1 STOPSIGNAL', '9:1 CMD']],
  ['alpine-user-link', ['9:1 ENTRYPOINT']],
  ['args-global-stage', []],
  ['busybox-args-stages', []],
  ['busybox-config-bundle', ['7:1 LABEL']],
  ['busybox-cron-jobs', [`8:1 COPY --chown=jobs:jobs: ${BY_NAME} /home/jobs/jobs to jobs:jobs with the image's chown`, '13:1 HEALTHCHECK', '14:1 ENTRYPOINT']],
  ['busybox-dockerignore', ['6:1 CMD']],
  ['busybox-env-path', []],
  ['busybox-multistage-compile', ['16:1 ENTRYPOINT']],
  ['busybox-rootfs-overlay', ["3:1 ADD overlay.tar: a spec copy does not unpack, so a run step unpacks it into / with the image's tar"]],
  ['busybox-shell-forms', ['11:1 CMD']],
  ['busybox-shell-tool', ['12:1 ENTRYPOINT', '13:1 CMD']],
  ['busybox-static-site', [`7:1 COPY --chown=www: ${BY_NAME} /var/www to www with the image's chown`, '9:1 EXPOSE', '11:1 CMD']],
  ['c-autotools', ['17:1 EXPOSE', '18:1 CMD']],
  ['c-cmake-ccache', ['21:1 ENTRYPOINT']],
  ['c-static-busybox', ['9:1 CMD']],
  ['debian-apt-cache', []],
  ['debian-network-none', []],
  ['debian-postgres-ext', ['7:1 ONBUILD', '8:1 HEALTHCHECK', '9:1 EXPOSE']],
  ['dotnet-linux', ['15:1 ENTRYPOINT']],
  ['exec-and-shell-forms', []],
  ['go-alpine-certs', ['11:1 EXPOSE', '12:1 VOLUME', '13:1 ENTRYPOINT', '14:1 CMD']],
  ['go-scratch', ['15:1 EXPOSE', '16:1 ENTRYPOINT']],
  ['go-static-distroless', ['16:1 ENTRYPOINT']],
  ['java-distroless', ['10:1 ENTRYPOINT']],
  ['java-gradle-layers', ['16:1 ENTRYPOINT']],
  ['java-maven', ['11:1 EXPOSE', '12:1 ENTRYPOINT']],
  ['node-multistage-next', ['22:1 EXPOSE', '24:1 CMD']],
  ['node-npm-ci', ['8:1 EXPOSE', '9:1 CMD']],
  ['node-pnpm', ['17:1 EXPOSE', '18:1 CMD']],
  ['node-yarn-secret', ['14:1 EXPOSE', '15:1 STOPSIGNAL', '16:1 HEALTHCHECK']],
  ['php-composer', ['12:1 EXPOSE']],
  ['python-conda', ['8:1 ENTRYPOINT']],
  ['python-heredoc', ['15:1 CMD']],
  ['python-pip-slim', ['9:1 EXPOSE', '10:1 CMD']],
  ['python-poetry-venv', ['16:1 ENTRYPOINT']],
  ['python-secret-index', ['10:1 CMD']],
  ['ruby-bundler', ['19:1 ENTRYPOINT', '20:1 EXPOSE', '21:1 CMD']],
  ['rust-cargo-chef', ['21:1 ENTRYPOINT']],
  ['rust-musl', ['13:1 LABEL', '15:1 ENTRYPOINT']],
  ['rust-path', []],
  ['windows-nanoserver', ['13:1 ENTRYPOINT']],
  ['windows-servercore', ['11:1 EXPOSE', '12:1 ENTRYPOINT']],
];

describe('the Dockerfile corpus', () => {
  it('holds every Dockerfile of the fixtures folder, at least 30', () => {
    const files = readdirSync(CORPUS)
      .filter((f) => f.endsWith('.Dockerfile'))
      .map((f) => f.replace(/\.Dockerfile$/, ''));
    expect(CASES.map(([name]) => name)).toEqual(files.sort());
    expect(files.length).toBeGreaterThanOrEqual(30);
  });

  it.each(CASES)('%s imports to its spec, fmt-stable, and round-trips', (name, dropped) => {
    const file = `${name}.Dockerfile`;
    // A .dockerignore beside the Dockerfile is the one of its build context.
    const dockerignore = existsSync(join(CORPUS, `${name}.dockerignore`)) ? read(`${name}.dockerignore`) : undefined;
    const { spec, warnings } = importDockerfile(read(file), { file, ...(dockerignore === undefined ? {} : { dockerignore }) });
    expect(warnings.map((w) => w.message)).toEqual(
      dropped.map((d) => {
        const [at, ...words] = d.split(' ');
        const said = words.join(' ');
        return `${file}:${at}: ${Object.hasOwn(DROPPED, said) ? DROPPED[said] : said}`;
      }),
    );
    const text = printSpec(spec);
    expect(text).toBe(read(`${name}.spec`));
    expect(parseSpec(text)).toEqual(spec);
    expect(printSpec(parseSpec(text))).toBe(text);
    const exported = dockerfileOfSpec(spec, name.startsWith('windows') ? { os: 'windows' } : { buildkit: true });
    const again = importDockerfile(exported, dockerignore === undefined ? {} : { dockerignore });
    expect(again.warnings).toEqual([]);
    expect(again.spec).toEqual(spec);
  });
});
