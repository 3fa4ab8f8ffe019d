/** The import itself: instruction by instruction, stages of ops in the one spec AST, with Docker's meaning kept. */
import { ROOT_UNIX, type CopyOp, type Mount, type Op, type RunOp, type Spec, type User } from '../ast.js';
import { closest } from '../did-you-mean.js';
import type { Position } from '../sexp.js';
import { SpecError } from '../spec-error.js';
import { jsonStrings, parseWords, readJsonArray } from './arguments.js';
import { isTokenSpace, splitTokens, trimStart } from './characters.js';
import {
  absolutePath,
  checkSource,
  isArchive,
  isHttpUrl,
  contextGlob,
  copyExcludes,
  copySource,
  copyTargets,
  directoryDestination,
  isWildcard,
  writtenAsDirectory,
  type ContextReader,
} from './copy-sources.js';
import { INSTRUCTIONS, parseFlags, parseInstruction, type FlagValue, type Instruction } from './instructions.js';
import type { Entry } from './lines.js';
import { cacheMount, csvFields, MOUNT_KEYS, secretMount, type MountOptions } from './mounts.js';
import { accountsOf, namesAccount, parseOwner, sameUser, type Accounts } from './owners.js';
import {
  chmodCommand,
  chownCommand,
  downloadCommand,
  unpackCommand,
  execCommand,
  heredocCommand,
  isPosixShell,
  shellCommand,
  writeFileCommand,
} from './run-command.js';
import { isSpecialParameter, WordExpander, type Lookup } from './word-expansion.js';

/** Image metadata: it changes no file, so a spec has no word for it. */
const METADATA: Readonly<Record<string, string>> = {
  CMD: 'sets the default command of the image',
  ENTRYPOINT: 'sets the entrypoint of the image',
  LABEL: 'sets image labels',
  MAINTAINER: 'sets the image author',
  EXPOSE: 'declares the ports of the image',
  VOLUME: 'declares a volume of the image',
  STOPSIGNAL: 'sets the stop signal of the image',
  HEALTHCHECK: 'sets the health check of the image',
  ONBUILD: 'registers instructions for images built from this one',
};

/** The metadata an image config (libs/oci-image's ImageConfig) holds, so `cairn build --image` can carry it. */
const CARRIED = new Set(['CMD', 'ENTRYPOINT', 'LABEL', 'EXPOSE', 'STOPSIGNAL']);
const EXPOSED_PORT = /^(\d{1,5})(?:-(\d{1,5}))?(?:\/(tcp|udp|sctp))?$/i;

/**
 * The image settings of the final stage, in the terms of libs/oci-image's ImageConfig:
 * what `cairn import --image-config FILE` writes for `cairn build --image`.
 */
export interface ImportedImageConfig {
  entrypoint?: string[];
  cmd?: string[];
  labels?: Record<string, string>;
  exposedPorts?: string[];
  stopSignal?: string;
}

interface StageMetadata {
  entrypoint?: string[];
  cmd?: string[];
  /** CMD was set in this stage, so a later ENTRYPOINT keeps it (Docker's cmdSet). */
  cmdSet: boolean;
  readonly labels: Map<string, string>;
  readonly ports: Set<string>;
  stopSignal?: string;
}

/** Set by BuildKit from the platforms it builds on and for, which a spec cannot know. */
const PLATFORM_ARGS = new Set(['TARGETPLATFORM', 'TARGETOS', 'TARGETARCH', 'TARGETVARIANT', 'BUILDPLATFORM', 'BUILDOS', 'BUILDARCH', 'BUILDVARIANT']);
/** BuildKit reads these ARGs itself and keeps them out of the environment. */
const NON_ENV_ARGS = new Set(['BUILDKIT_SBOM_SCAN_CONTEXT', 'BUILDKIT_SBOM_SCAN_STAGE']);
/** Cairn builds for the platform it runs on, which is what these select. */
const NATIVE_PLATFORMS = new Set(['$BUILDPLATFORM', '${BUILDPLATFORM}', '$TARGETPLATFORM', '${TARGETPLATFORM}']);
const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;
const DOCKER_SHELL = ['/bin/sh', '-c'];
/** A spec's default shell (SPEC-LANGUAGE.md): RUN needs Docker's, so it is set when they differ. */
const SPEC_SHELL = ['/usr/bin/env', 'bash', '-c'];
/** Docker's RUN reaches the network unless told otherwise; a spec's only with (network host). */
const DOCKER_DEFAULT_NETWORK = ['host'];

const sameArgs = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

export interface Stage {
  readonly name: string;
  readonly image: string;
  readonly ops: Op[];
  /** Values a later instruction may expand: this stage's ARGs with a value, and ENVs. */
  readonly vars: Map<string, string>;
  /** ARGs declared without any value: unset, unless a later ARG or ENV sets them. */
  readonly valueless: Set<string>;
  dockerShell: readonly string[];
  specShell: readonly string[];
  user: User;
  /** The absolute workdir the Dockerfile set, if it did: the image's own is unknown here. */
  workdir: string | undefined;
  /** The base image's env and accounts, when the caller read them. */
  readonly base: ResolvedImage | undefined;
  readonly metadata: StageMetadata;
}

/** What the caller read of a base image (`cairn import --resolve`). */
export interface BaseImage {
  /** The image config's Env, in image order. */
  readonly env?: readonly (readonly [string, string])[];
  /** The contents of the image's /etc/passwd and /etc/group. */
  readonly passwd?: string;
  readonly group?: string;
  /** The image config's WorkingDir and User: where and as whom Docker runs the stage's first RUN. */
  readonly workingDir?: string;
  readonly user?: string;
}

interface ResolvedImage {
  readonly env: ReadonlyMap<string, string> | undefined;
  readonly accounts: Accounts | undefined;
}

function resolved(image: BaseImage | undefined): ResolvedImage | undefined {
  if (image === undefined) return undefined;
  return {
    env: image.env === undefined ? undefined : new Map(image.env),
    accounts: image.passwd === undefined ? undefined : accountsOf(image.passwd, image.group ?? ''),
  };
}

/** The paths a copy writes: DST, or DST/NAME for each source when DST ends in "/". */
function copiedPaths(targets: readonly { src: string[]; dst: string }[]): string[] {
  return targets.flatMap((t) => (t.dst.endsWith('/') ? t.src.map((s) => `${t.dst}${s.split('/').filter(Boolean).at(-1) ?? '.'}`) : [t.dst]));
}

export class Importer {
  private readonly stages: Stage[] = [];
  private readonly globalArgs = new Map<string, string>();
  private comments: string[] = [];
  /** The `(user ...)` ops that only give the stage's user back after a copy, with the copy's owner. */
  private readonly restores = new WeakMap<Op, User>();
  /** What the spec leaves out, in the order of the Dockerfile. */
  readonly warnings: { reason: string; pos: Position }[] = [];
  /** The warnings of metadata an image config holds: whether it is carried is known once the final stage is. */
  private readonly carried: { warning: { reason: string; pos: Position }; keyword: string; stage: Stage }[] = [];

  constructor(
    private readonly escape: string,
    private readonly ignored: readonly string[],
    private readonly buildArgs: Readonly<Record<string, string>>,
    private readonly strict: boolean,
    private readonly images: Readonly<Record<string, BaseImage>>,
    private readonly readContext: ContextReader | undefined,
    /** Where the caller writes `imageConfig()`, for the warnings; undefined: metadata is dropped. */
    private readonly imageConfigFile: string | undefined,
  ) {}

  add(entry: Entry): void {
    if (entry.kind === 'comment') {
      if (entry.text !== '') this.comments.push(entry.text);
      return;
    }
    const ins = parseInstruction(entry.logical);
    if (ins !== undefined) this.instruction(ins);
  }

  finish(): Spec {
    const main = this.stages.at(-1);
    if (main === undefined) throw new SpecError('the Dockerfile has no FROM instruction, so there is no base image', { line: 1, column: 1 });
    this.flushComments(main);
    this.settleCarried(main);
    const childBuilds = this.stages.slice(0, -1).map((s) => ({ name: s.name, spec: { childBuilds: [], from: s.image, ops: s.ops } }));
    return { childBuilds, from: main.image, ops: main.ops };
  }

  /** The image settings the final stage's metadata gives: the final stage is the last one, so call this after `finish`. */
  imageConfig(): ImportedImageConfig {
    const m = this.stages.at(-1)?.metadata;
    if (m === undefined) return {};
    const labels = [...m.labels].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return {
      ...(m.entrypoint === undefined ? {} : { entrypoint: m.entrypoint }),
      ...(m.cmd === undefined ? {} : { cmd: m.cmd }),
      ...(labels.length === 0 ? {} : { labels: Object.fromEntries(labels) }),
      ...(m.ports.size === 0 ? {} : { exposedPorts: [...m.ports] }),
      ...(m.stopSignal === undefined ? {} : { stopSignal: m.stopSignal }),
    };
  }

  private instruction(ins: Instruction): void {
    const kw = ins.keyword;
    if (!INSTRUCTIONS.includes(kw)) {
      const hint = closest(kw, INSTRUCTIONS);
      throw new SpecError(`unknown instruction "${kw}"${hint ? `; did you mean "${hint}"?` : ''}`, ins.pos);
    }
    const metadata = METADATA[kw];
    const carriable = CARRIED.has(kw) && this.imageConfigFile !== undefined;
    if (metadata !== undefined && this.strict && !(carriable && this.stages.length > 0)) {
      throw new SpecError(
        `${kw} ${metadata}: image metadata, which a Cairn spec does not record; remove it, or keep it only in a Dockerfile that is not imported`,
        ins.pos,
      );
    }
    if (kw === 'FROM') return this.from(ins);
    const stage = this.stages.at(-1);
    if (metadata !== undefined && stage !== undefined) {
      const warning = { reason: `${kw} dropped: it ${metadata}, image metadata that changes no file, which a Cairn spec does not record`, pos: ins.pos };
      this.warnings.push(warning);
      if (CARRIED.has(kw)) {
        this.metadata(ins, stage);
        this.carried.push({ warning, keyword: kw, stage });
      }
      return;
    }
    if (kw === 'ARG' && stage === undefined) return this.globalArg(ins);
    if (stage === undefined) throw new SpecError(`${kw} comes before the first FROM; only ARG may`, ins.pos);
    this.flushComments(stage);
    this.dispatch(ins, stage);
  }

  /**
   * Metadata of the final stage goes to the image config file; an earlier stage's never
   * reaches the image (Docker's final image starts from the final stage's FROM), so it
   * stays dropped, and `strict` refuses it.
   */
  private settleCarried(main: Stage): void {
    if (this.imageConfigFile === undefined) return;
    for (const { warning, keyword, stage } of this.carried) {
      if (stage === main) {
        warning.reason = `${keyword} carried to ${this.imageConfigFile}: it ${METADATA[keyword]}, which \`cairn build --image REF --image-config ${this.imageConfigFile}\` writes into the image config`;
        continue;
      }
      const where = `in stage "${stage.name}", which the final image does not start from, so Docker leaves it out too`;
      if (this.strict) throw new SpecError(`${keyword} ${METADATA[keyword]} ${where}; remove it`, warning.pos);
      warning.reason = `${keyword} dropped: it ${METADATA[keyword]} ${where}`;
    }
  }

  // ----- image metadata, as BuildKit's dispatchers set the image config

  private metadata(ins: Instruction, stage: Stage): void {
    const m = stage.metadata;
    switch (ins.keyword) {
      case 'CMD':
        m.cmd = this.commandLine(ins, stage);
        m.cmdSet = true;
        return;
      case 'ENTRYPOINT':
        m.entrypoint = this.commandLine(ins, stage);
        // The base image's CMD was written for its own entrypoint; one set in this stage stays.
        if (!m.cmdSet) delete m.cmd;
        return;
      case 'LABEL':
        parseFlags(ins, []);
        for (const [k, v] of this.envPairs(ins)) {
          const name = this.expand(k, stage, ins);
          if (name === '') this.fail(ins, 'a label name is empty');
          m.labels.set(name, this.expand(v, stage, ins));
        }
        return;
      case 'EXPOSE':
        parseFlags(ins, []);
        this.needArgs(ins, 'the port is missing');
        for (const word of splitTokens(ins.args)) for (const port of this.exposedPorts(this.expand(word, stage, ins), ins)) m.ports.add(port);
        return;
      case 'STOPSIGNAL': {
        parseFlags(ins, []);
        this.needArgs(ins, 'the signal is missing');
        const signal = this.expand(ins.args, stage, ins);
        if (!/^(?:SIG)?[A-Z0-9+-]+$/i.test(signal)) this.fail(ins, `"${signal}" is not a signal name or number, like SIGTERM or 15`);
        m.stopSignal = signal;
      }
    }
  }

  /** JSON form as written; shell form runs in the stage's SHELL, as Docker writes it. */
  private commandLine(ins: Instruction, stage: Stage): string[] {
    parseFlags(ins, []);
    const json = readJsonArray(ins.args);
    if (json !== undefined) return [...jsonStrings(json, ins)];
    this.needArgs(ins, 'the command is missing');
    return [...stage.dockerShell, ins.args];
  }

  /** `80`, `80/udp`, `8000-8010/tcp` (each port of the range), as `PORT/PROTOCOL`. */
  private exposedPorts(word: string, ins: Instruction): string[] {
    const match = EXPOSED_PORT.exec(word);
    const first = Number(match?.[1]);
    const last = match?.[2] === undefined ? first : Number(match[2]);
    if (match === null || first < 1 || last > 65535 || last < first)
      this.fail(ins, `"${word}" is not PORT, PORT/PROTOCOL or FIRST-LAST/PROTOCOL with ports 1 to 65535 and protocol tcp, udp or sctp`);
    const protocol = (match[3] ?? 'tcp').toLowerCase();
    return Array.from({ length: last - first + 1 }, (_, i) => `${first + i}/${protocol}`);
  }

  private dispatch(ins: Instruction, stage: Stage): void {
    switch (ins.keyword) {
      case 'RUN':
        return this.run(ins, stage);
      case 'COPY':
      case 'ADD':
        return this.copy(ins, stage);
      case 'ENV':
        return this.env(ins, stage);
      case 'ARG':
        return this.stageArg(ins, stage);
      case 'WORKDIR':
        return this.workdir(ins, stage);
      case 'USER':
        return this.user(ins, stage);
      case 'SHELL':
        return this.shell(ins, stage);
    }
  }

  private flushComments(stage: Stage): void {
    for (const text of this.comments) stage.ops.push({ op: 'comment', text });
    this.comments = [];
  }

  private fail(ins: Instruction, reason: string): never {
    throw new SpecError(`${ins.keyword}: ${reason}`, ins.pos);
  }

  private needArgs(ins: Instruction, missing: string): void {
    if (ins.args === '') this.fail(ins, missing);
  }

  // ----- variables

  private expand(word: string, stage: Stage | undefined, ins: Instruction): string {
    const lookup: Lookup = stage === undefined ? (n) => this.globalValue(n, ins) : (n) => this.stageValue(stage, n, ins);
    return new WordExpander(word, this.escape, lookup, (reason) => this.fail(ins, `cannot expand "${word}": ${reason}`)).expand();
  }

  /** Before the first FROM there is no image, so an undeclared variable is simply unset. */
  private globalValue(name: string, ins: Instruction): string | undefined {
    if (this.globalArgs.has(name)) return this.globalArgs.get(name);
    if (Object.hasOwn(this.buildArgs, name) && PLATFORM_ARGS.has(name)) return this.buildArgs[name];
    if (PLATFORM_ARGS.has(name)) this.platformArg(name, ins);
    return undefined;
  }

  private stageValue(stage: Stage, name: string, ins: Instruction): string | undefined {
    if (stage.vars.has(name)) return stage.vars.get(name);
    // A declared ARG names a build argument, not an image variable: without a value it is unset.
    if (isSpecialParameter(name) || stage.valueless.has(name)) return undefined;
    // The image's whole Env is known: a name it does not set is unset, as in Docker.
    if (stage.base?.env !== undefined) return stage.base.env.get(name);
    this.fail(
      ins,
      `$${name} is set by no ARG or ENV before it in this stage; Docker would take it from the base image's environment, which the import cannot see, so set it in the Dockerfile`,
    );
  }

  private platformArg(name: string, ins: Instruction): never {
    this.fail(ins, `${name} is set by BuildKit from the build platform, which a spec cannot know; pass it in buildArgs or give it a default`);
  }

  // ----- FROM and ARG

  private from(ins: Instruction): void {
    const flags = parseFlags(ins, ['platform']);
    const platform = flags.get('platform')?.[0];
    if (platform !== undefined && !NATIVE_PLATFORMS.has(platform.value)) {
      throw new SpecError(
        `FROM --platform=${platform.value} selects an image platform, which a spec cannot record; Cairn builds for its own platform`,
        platform.pos,
      );
    }
    const args = splitTokens(ins.args);
    if (args.length !== 1 && !(args.length === 3 && args[1]!.toLowerCase() === 'as')) {
      this.fail(ins, 'expected FROM IMAGE or FROM IMAGE AS NAME');
    }
    const image = this.expand(args[0]!, undefined, ins);
    if (image === '') this.fail(ins, `the image "${args[0]}" expands to nothing`);
    if (this.stages.some((s) => s.name === image.toLowerCase())) {
      this.fail(
        ins,
        `"${image}" is an earlier stage, and a spec cannot build on a stage: a (build ...) always starts from an image. Start this stage from that stage's image and COPY --from it`,
      );
    }
    // Comments go before the instruction they precede, so into the new stage, except
    // where the current one holds nothing else: there they were written inside it.
    const current = this.stages.at(-1);
    if (current?.ops.every((o) => o.op === 'comment')) this.flushComments(current);
    const stage = this.newStage(this.stageName(args[2], ins), image);
    this.stages.push(stage);
    this.flushComments(stage);
    this.imageDefaults(stage, ins);
  }

  /**
   * A spec starts every stage at `/` as root, Docker at the image's WorkingDir as its
   * User: when the caller read them, they become the stage's first ops.
   */
  private imageDefaults(stage: Stage, ins: Instruction): void {
    const image = Object.hasOwn(this.images, stage.image) ? this.images[stage.image] : undefined;
    if (image?.workingDir !== undefined && image.workingDir !== '/') {
      stage.ops.push({ op: 'workdir', path: image.workingDir });
      stage.workdir = absolutePath(image.workingDir, undefined);
    }
    if (image?.user !== undefined) {
      const user = parseOwner(image.user, "the base image's User", ins.pos, stage.base?.accounts);
      if (!sameUser(user, stage.user)) this.switchUser(stage, user);
      stage.user = user;
    }
  }

  /** The images the stages start from, as FROM names them once ARGs are expanded (what `--resolve` reads). */
  baseImages(): string[] {
    return [...new Set(this.stages.map((s) => s.image))];
  }

  private stageName(written: string | undefined, ins: Instruction): string {
    const index = String(this.stages.length);
    if (written === undefined) return index;
    const name = written.toLowerCase();
    // The exporter names unnamed stages by their index, so accept that back.
    if (!STAGE_NAME.test(name) && name !== index)
      this.fail(ins, `"${written}" is not a stage name: it must start with a letter and hold only letters, digits, "-", "_" and "."`);
    if (this.stages.some((s) => s.name === name)) this.fail(ins, `a stage named "${name}" is already defined`);
    return name;
  }

  private newStage(name: string, image: string): Stage {
    const base = resolved(Object.hasOwn(this.images, image) ? this.images[image] : undefined);
    return {
      name,
      image,
      base,
      ops: [],
      vars: new Map(),
      valueless: new Set(),
      dockerShell: DOCKER_SHELL,
      specShell: SPEC_SHELL,
      user: ROOT_UNIX,
      workdir: undefined,
      metadata: { cmdSet: false, labels: new Map(), ports: new Set() },
    };
  }

  private argPairs(ins: Instruction): [string, string | undefined][] {
    parseFlags(ins, []);
    const words = parseWords(ins.args, this.escape);
    if (words.length === 0) this.fail(ins, 'a NAME[=DEFAULT] is missing');
    return words.map((w) => {
      const eq = w.indexOf('=');
      const pair: [string, string | undefined] = eq < 0 ? [w, undefined] : [w.slice(0, eq), w.slice(eq + 1)];
      if (pair[0] === '') this.fail(ins, `"${w}" has no name`);
      return pair;
    });
  }

  private globalArg(ins: Instruction): void {
    for (const [name, fallback] of this.argPairs(ins)) {
      if (Object.hasOwn(this.buildArgs, name)) this.globalArgs.set(name, this.buildArgs[name]!);
      else if (fallback !== undefined) this.globalArgs.set(name, this.expand(fallback, undefined, ins));
      // BuildKit leaves a platform ARG without a default to the platform; others are empty.
      else if (!PLATFORM_ARGS.has(name)) this.globalArgs.set(name, '');
    }
  }

  /** BuildKit adds an ARG's value to the environment of the stage, as `(env NAME VALUE)` does. */
  private stageArg(ins: Instruction, stage: Stage): void {
    for (const [name, fallback] of this.argPairs(ins)) {
      const value = this.argValue(name, fallback, stage, ins);
      if (value === undefined) {
        stage.valueless.add(name);
        continue;
      }
      if (!NON_ENV_ARGS.has(name)) stage.ops.push({ op: 'env', name, value });
      stage.vars.set(name, value);
    }
  }

  private argValue(name: string, fallback: string | undefined, stage: Stage, ins: Instruction): string | undefined {
    if (Object.hasOwn(this.buildArgs, name)) return this.buildArgs[name];
    if (fallback !== undefined) return this.expand(fallback, stage, ins);
    if (this.globalArgs.has(name)) return this.globalArgs.get(name);
    if (PLATFORM_ARGS.has(name)) this.platformArg(name, ins);
    return undefined;
  }

  // ----- ENV, WORKDIR, USER, SHELL

  private env(ins: Instruction, stage: Stage): void {
    parseFlags(ins, []);
    // Every pair expands with the variables as they were before this ENV, as in Docker.
    const pairs = this.envPairs(ins).map(([k, v]) => [this.expand(k, stage, ins), this.expand(v, stage, ins)] as const);
    for (const [name, value] of pairs) {
      if (name === '') this.fail(ins, 'a variable name is empty');
      stage.ops.push({ op: 'env', name, value });
      stage.vars.set(name, value);
    }
  }

  /** `ENV NAME VALUE...` (the rest of the line) or `ENV NAME=VALUE ...`. */
  private envPairs(ins: Instruction): [string, string][] {
    const words = parseWords(ins.args, this.escape);
    if (words.length === 0) this.fail(ins, 'a NAME=VALUE is missing');
    if (!words[0]!.includes('=')) {
      let k = 0;
      while (k < ins.args.length && !isTokenSpace(ins.args[k])) k++;
      if (k === ins.args.length) this.fail(ins, `"${ins.args}" has no value; write ${ins.keyword} NAME=VALUE`);
      return [[ins.args.slice(0, k), trimStart(ins.args.slice(k), isTokenSpace)]];
    }
    return words.map((w) => {
      const eq = w.indexOf('=');
      if (eq < 0) this.fail(ins, `"${w}" has no "="; write NAME=VALUE`);
      return [w.slice(0, eq), w.slice(eq + 1)];
    });
  }

  private workdir(ins: Instruction, stage: Stage): void {
    parseFlags(ins, []);
    this.needArgs(ins, 'the directory is missing');
    const path = this.expand(ins.args, stage, ins);
    if (path === '') this.fail(ins, `"${ins.args}" expands to nothing`);
    stage.ops.push({ op: 'workdir', path });
    stage.workdir = absolutePath(path, stage.workdir);
  }

  private user(ins: Instruction, stage: Stage): void {
    parseFlags(ins, []);
    this.needArgs(ins, 'the user is missing');
    stage.user = parseOwner(this.expand(ins.args, stage, ins), 'USER', ins.pos, stage.base?.accounts);
    this.switchUser(stage, stage.user);
  }

  /**
   * Ops from here run as `user`. A copy's restore of the stage's user just before is
   * dropped instead of followed by another switch, so consecutive copies with one owner
   * (or a copy then USER of its owner) switch once.
   */
  private switchUser(stage: Stage, user: User): void {
    const last = stage.ops.at(-1);
    const restoredFrom = last === undefined ? undefined : this.restores.get(last);
    if (restoredFrom !== undefined) {
      stage.ops.pop();
      if (sameUser(restoredFrom, user)) return;
    }
    stage.ops.push({ op: 'user', user });
  }

  private shell(ins: Instruction, stage: Stage): void {
    parseFlags(ins, []);
    const json = readJsonArray(ins.args);
    if (json === undefined) this.fail(ins, 'the shell must be a JSON array, like SHELL ["/bin/bash", "-c"]');
    const args = jsonStrings(json, ins);
    if (args.length === 0) this.fail(ins, 'the JSON array names no shell');
    stage.dockerShell = args;
    stage.specShell = args;
    stage.ops.push({ op: 'shell', args });
  }

  // ----- COPY and ADD

  private copy(ins: Instruction, stage: Stage): void {
    // --link only changes how BuildKit stores the layer, not the files the step writes.
    const heredoc = ins.logical.heredocs.length > 0;
    const alone =
      ins.keyword === 'ADD' && !heredoc && readJsonArray(ins.args) === undefined && splitTokens(ins.args).length === 2 ? splitTokens(ins.args)[0]! : undefined;
    const download = alone !== undefined && isHttpUrl(alone);
    const archive = alone !== undefined && isArchive(alone);
    const flags = parseFlags(
      ins,
      heredoc
        ? ['chown', 'chmod', 'link']
        : download
          ? ['chown', 'chmod', 'checksum', 'link']
          : archive
            ? ['chown', 'chmod', 'link', 'exclude']
            : ['from', 'chown', 'chmod', 'exclude', 'link'],
    );
    this.needArgs(ins, 'the sources and destination are missing');
    if (heredoc) return this.copyHeredocs(ins, stage, flags);
    if (download) return this.addUrl(ins, stage, flags);
    if (archive) return this.addArchive(ins, stage, flags);
    const json = readJsonArray(ins.args);
    const words = (json === undefined ? splitTokens(ins.args) : jsonStrings(json, ins)).map((w) => this.expand(w, stage, ins));
    if (words.length < 2) this.fail(ins, 'at least one source and a destination are needed');
    const src = words.slice(0, -1);
    const dst = directoryDestination(words.at(-1)!, ins);
    const from = copySource(flags.get('from')?.[0], this.stages, stage, ins);
    src.forEach((s) => checkSource(s, ins, from.kind !== 'context' ? 'stage' : this.readContext === undefined ? 'no context' : 'listed'));
    const excludes = [...new Set([...(from.kind === 'context' ? this.ignored : []), ...copyExcludes(flags.get('exclude') ?? [], ins)])];
    const sources = src.flatMap((s) => (isWildcard(s) ? this.listed(s, excludes, ins) : [s]));
    const targets = copyTargets(sources, dst, stage.workdir, ins);
    const copies: CopyOp[] = targets.map((t) => ({ op: 'copy', from, src: t.src, dst: t.dst, exclude: excludes }));
    const chmod = flags.get('chmod')?.[0];
    const mode = this.octalMode(chmod, ins);
    if (chmod !== undefined) this.checkChmod(ins, stage, chmod, sources);
    const chown = flags.get('chown')?.[0];
    const byName = this.namedOwner(chown, stage, ins);
    const owner = byName === undefined ? this.copyOwner(chown, stage, ins) : ROOT_UNIX;
    if (sameUser(owner, stage.user)) stage.ops.push(...copies);
    else {
      this.switchUser(stage, owner);
      const restore: Op = { op: 'user', user: stage.user };
      stage.ops.push(...copies, restore);
      this.restores.set(restore, owner);
    }
    // chown clears set-id bits, so the mode comes last.
    if (byName !== undefined) this.chownCopied(ins, stage, targets, byName);
    if (mode !== undefined) this.chmodCopied(ins, stage, targets, mode);
  }

  /**
   * --chown's owner when it holds a name the import cannot turn into ids: without the base
   * image's accounts (`--resolve`), or one they lack, which a RUN may have added. Docker
   * looks names up in the stage's own /etc/passwd and /etc/group when it copies.
   */
  private namedOwner(chown: FlagValue | undefined, stage: Stage, ins: Instruction): string | undefined {
    if (chown === undefined) return undefined;
    const text = this.expand(chown.value, stage, ins);
    try {
      this.copyOwner(chown, stage, ins);
      return undefined;
    } catch (e) {
      if (e instanceof SpecError && namesAccount(text) && isPosixShell(stage.dockerShell) && this.escape === '\\') return text;
      throw e;
    }
  }

  /**
   * `--chown=NAME` that only the stage's accounts can resolve: the copy is root's, then a
   * step as root gives what it wrote (each file, each directory with what it holds) to the
   * name, looked up by the image's id and chown as Docker looks it up, with a warning. A
   * directory's contents copied into the workdir leave the workdir itself as it was, as in
   * Docker; copied into another directory that already held files, they give those to the
   * name too, which Docker would not.
   */
  private chownCopied(ins: Instruction, stage: Stage, targets: readonly { src: string[]; dst: string }[], owner: string): void {
    const written = copiedPaths(targets);
    // The contents of / or of an unknown workdir: a step after the copy cannot tell the copied files from the image's.
    const unknown = written.find(
      (p) => absolutePath(p, stage.workdir) === '/' || (absolutePath(p, stage.workdir) === undefined && absolutePath(p, '/w') === '/w'),
    );
    if (unknown !== undefined) {
      this.fail(
        ins,
        `--chown=${owner} copies into ${absolutePath(unknown, stage.workdir) ?? "the base image's workdir, which the import cannot see"}, where a step giving the copy to the name after it would take the image's files too; write numeric ids, or use cairn import --resolve if the base image has the name`,
      );
    }
    const isWorkdir = (p: string) => stage.workdir !== undefined && absolutePath(p, stage.workdir) === stage.workdir;
    const into = written.filter(isWorkdir);
    const paths = written.filter((p) => !isWorkdir(p));
    this.warnings.push({
      reason: `${ins.keyword} --chown=${owner}: the import turns a name into ids only from the base image's accounts (cairn import --resolve), and a RUN may add one, so the copy is root's and a run step as root gives ${written.join(' ')} to ${owner} with the image's chown`,
      pos: ins.pos,
    });
    this.asRoot(stage, () => this.pushOwnRun(stage, chownCommand(paths, into, owner)));
  }

  /**
   * `--chmod` is imported for sources that name files: BuildKit gives a directory's mode to
   * every file and directory it copies into the destination, among files that may have been
   * there before, which a step after the copy cannot tell apart.
   */
  private checkChmod(ins: Instruction, stage: Stage, chmod: FlagValue, sources: readonly string[]): void {
    const directory = sources.find(writtenAsDirectory);
    if (directory !== undefined) {
      throw new SpecError(
        `${ins.keyword} --chmod=${chmod.value} ${directory}: BuildKit gives the mode to every file and directory copied out of ${directory}, which a step after the copy cannot tell from what the destination already held; copy its files by name`,
        chmod.pos,
      );
    }
    if (!isPosixShell(stage.dockerShell) || this.escape !== '\\') {
      throw new SpecError(
        `${ins.keyword} --chmod=${chmod.value}: the mode is given by a step that runs chmod with a POSIX shell after the copy, and this stage has none`,
        chmod.pos,
      );
    }
  }

  /**
   * `COPY --chmod=MODE` as BuildKit applies it to a copied file (its mode is MODE, whatever
   * the source's): a spec copy keeps each file's own mode (0755 or 0644), so a step as root
   * gives each copied file the mode, with a warning, as for a heredoc copy. The paths are
   * the copy's, relative ones in the workdir the step runs in.
   */
  private chmodCopied(ins: Instruction, stage: Stage, targets: readonly { src: string[]; dst: string }[], mode: string): void {
    const paths = copiedPaths(targets);
    this.warnings.push({
      reason: `${ins.keyword} --chmod=${mode}: a spec copy keeps each file's own mode (0755 or 0644), so a run step as root gives ${paths.join(' ')} the mode with the image's chmod`,
      pos: ins.pos,
    });
    this.asRoot(stage, () => this.pushOwnRun(stage, chmodCommand(paths, mode)));
  }

  /**
   * Writes each heredoc of `COPY <<EOF DST` as BuildKit does (a file of the body, mode 0644
   * or --chmod's, owned by root or --chown's, DST itself or DST/EOF when DST ends in "/"):
   * a spec copy takes files only, so a run step writes it with the stage's shell and
   * printf, with a warning saying so. It has RUN's (network host), which it does not use,
   * so that the spec exports to a Dockerfile that imports back to it.
   */
  private copyHeredocs(ins: Instruction, stage: Stage, flags: Map<string, FlagValue[]>): void {
    const words = splitTokens(ins.args);
    const dst = this.expand(words.at(-1)!, stage, ins);
    const sources = words.slice(0, -1);
    const heredocs = ins.logical.heredocs;
    if (words.length < 2 || sources.length !== heredocs.length)
      this.fail(ins, 'a heredoc copy is imported only when every source is a heredoc (<<EOF) and a destination follows them');
    if (heredocs.length > 1 && !dst.endsWith('/')) this.fail(ins, `several heredocs go into a directory, written with a trailing "/" (${dst}/)`);
    if (!isPosixShell(stage.dockerShell) || this.escape !== '\\')
      this.fail(ins, 'a heredoc copy becomes a step that writes the file with a POSIX shell, and this stage has none');
    const mode = this.octalMode(flags.get('chmod')?.[0], ins) ?? '0644';
    const files = heredocs.map((h) => {
      if (!h.quoted && /[$\\]/.test(h.body)) {
        this.fail(
          ins,
          `the heredoc <<${h.name} is unquoted, so BuildKit would expand the variables and escapes of its body, which the import does not do; quote it (<<'${h.name}') to copy the text as it is`,
        );
      }
      return { path: dst.endsWith('/') ? `${dst}${h.name}` : dst, body: h.body };
    });
    this.warnings.push({
      reason: `${ins.keyword} <<${heredocs.map((h) => h.name).join(' <<')}: a spec copies files only, so a run step writes ${files.map((f) => f.path).join(' ')} with the image's shell and printf`,
      pos: ins.pos,
    });
    // The step writes as root, then gives the files their owner, as BuildKit creates them.
    this.asRoot(stage, () => this.pushOwnRun(stage, writeFileCommand(files, mode, this.nonRootOwner(flags, stage, ins))));
  }

  /**
   * `ADD --checksum=sha256:HEX URL DST` as BuildKit does it (the file, mode 0600 or
   * --chmod's, owned by root or --chown's, at DST or DST/NAME-IN-URL): a run step that
   * downloads it with the image's wget or curl and keeps it only if the digest matches,
   * so the step's cached result is what any later download must be. Without --checksum
   * the server could change the file under a cached step: refused.
   */
  private addUrl(ins: Instruction, stage: Stage, flags: Map<string, FlagValue[]>): void {
    const [url, written] = splitTokens(ins.args).map((w) => this.expand(w, stage, ins)) as [string, string];
    const checksum = flags.get('checksum')?.[0];
    if (checksum === undefined) {
      this.fail(
        ins,
        `the URL ${url} without --checksum would be downloaded once and cached as if it never changed; add --checksum=sha256:<digest> (the import then writes a step that downloads and verifies it), or download it in a RUN`,
      );
    }
    const sha256 = /^sha256:([0-9a-f]{64})$/.exec(checksum.value)?.[1];
    if (sha256 === undefined) throw new SpecError(`ADD --checksum=${checksum.value}: a sha256:<64 hex digits> digest is imported`, checksum.pos);
    const name = new URL(url).pathname.split('/').at(-1) ?? '';
    if (written.endsWith('/') && name === '') this.fail(ins, `${url} names no file to write into ${written}; give the destination a file name`);
    const path = written.endsWith('/') ? `${written}${decodeURIComponent(name)}` : written;
    const mode = this.octalMode(flags.get('chmod')?.[0], ins) ?? '0600';
    this.warnings.push({
      reason: `ADD ${url}: a spec has no download, so a run step fetches it with the image's wget or curl and checks its sha256`,
      pos: ins.pos,
    });
    this.asRoot(stage, () => this.pushOwnRun(stage, downloadCommand(url, path, sha256, mode, this.nonRootOwner(flags, stage, ins))));
  }

  /**
   * `ADD app.tar.gz DST` unpacks the archive into DST, its owners and modes kept, as
   * BuildKit does for a file it recognises as an archive: the archive is copied to a
   * scratch path and a run step unpacks it with the image's tar (which detects the
   * compression) and removes it, with a warning. A file named like an archive that is
   * none (BuildKit would copy it as it is) fails that step. `--chown` gives what is
   * unpacked to its owner, as BuildKit does since 0.23 (moby/buildkit#5987); the classic
   * builder and older BuildKit ignore it for an archive, which the warning says.
   * `--chmod` is ignored by BuildKit's unpacking, so it is refused rather than dropped.
   */
  private addArchive(ins: Instruction, stage: Stage, flags: Map<string, FlagValue[]>): void {
    const [src, written] = splitTokens(ins.args).map((w) => this.expand(w, stage, ins)) as [string, string];
    if (isWildcard(src) || src.split('/').includes('..')) this.fail(ins, `${src}: an archive is imported from one named path inside the build context`);
    const chmod = flags.get('chmod')?.[0];
    if (chmod !== undefined) {
      throw new SpecError(
        `ADD --chmod=${chmod.value} ${src}: BuildKit unpacks an archive with the modes it holds and ignores --chmod (the classic builder refuses --chmod); remove it, or chmod in a RUN`,
        chmod.pos,
      );
    }
    const chown = flags.get('chown')?.[0];
    const owner = chown === undefined ? undefined : this.copyOwner(chown, stage, ins);
    const scratch = `/.cairn-add/${src.split('/').filter(Boolean).at(-1)}`;
    const excludes = [...new Set([...this.ignored, ...copyExcludes(flags.get('exclude') ?? [], ins)])];
    const owned =
      owner?.kind === 'unix'
        ? `, then gives ${owner.uid}:${owner.gid} what it unpacked, as BuildKit 0.23 and later do (the classic builder and older BuildKit keep the archive's owners)`
        : '';
    this.warnings.push({
      reason: `ADD ${src}: a spec copy does not unpack, so a run step unpacks it into ${written} with the image's tar${owned}`,
      pos: ins.pos,
    });
    const target = written === '' ? '.' : written;
    this.asRoot(stage, () => {
      stage.ops.push({ op: 'copy', from: { kind: 'context' }, src: [src], dst: scratch, exclude: excludes });
      this.pushOwnRun(stage, unpackCommand(scratch, target, owner));
    });
  }

  /** --chmod's octal mode, if given; another form (u+x) is refused. */
  private octalMode(flag: FlagValue | undefined, ins: Instruction): string | undefined {
    if (flag !== undefined && !/^[0-7]{3,4}$/.test(flag.value))
      throw new SpecError(`${ins.keyword} --chmod=${flag.value}: an octal mode is imported (e.g. 0755)`, flag.pos);
    return flag?.value;
  }

  /** The owner a step running as root must give what it writes: --chown's, unless root. */
  private nonRootOwner(flags: Map<string, FlagValue[]>, stage: Stage, ins: Instruction): User | undefined {
    const owner = this.copyOwner(flags.get('chown')?.[0], stage, ins);
    return sameUser(owner, ROOT_UNIX) ? undefined : owner;
  }

  /** Ops added by `add` run as root, then the stage's user is back (undone by a next switch, as after a copy). */
  private asRoot(stage: Stage, add: () => void): void {
    if (!sameUser(ROOT_UNIX, stage.user)) this.switchUser(stage, ROOT_UNIX);
    add();
    if (!sameUser(ROOT_UNIX, stage.user)) {
      const restore: Op = { op: 'user', user: stage.user };
      stage.ops.push(restore);
      this.restores.set(restore, ROOT_UNIX);
    }
  }

  /**
   * The context's matches of a wildcard, as Docker would copy them (a directory's contents,
   * so written `dir/`), in the context's order (Go sorts it), excluded names left out. The spec names them,
   * so a file added to the context later is not copied: a warning says which were taken.
   */
  private listed(pattern: string, excludes: readonly string[], ins: Instruction): string[] {
    const matches = contextGlob(pattern, this.readContext!)
      .filter((m) => !m.path.split('/').some((part) => excludes.includes(part)))
      .map((m) => (m.directory ? `${m.path}/` : m.path));
    if (matches.length === 0) this.fail(ins, `${pattern} matches nothing in the build context`);
    this.warnings.push({
      reason: `${ins.keyword} ${pattern}: the wildcard matches ${matches.join(' ')} in the build context now, which the spec names; a file added later is copied only once the Dockerfile is imported again`,
      pos: ins.pos,
    });
    return matches;
  }

  /** Docker's COPY writes files as root unless --chown says otherwise, whatever USER says. */
  private copyOwner(chown: FlagValue | undefined, stage: Stage, ins: Instruction): User {
    if (chown === undefined) return ROOT_UNIX;
    return parseOwner(this.expand(chown.value, stage, ins), ins.keyword === 'ADD' ? 'ADD --chown' : 'COPY --chown', chown.pos, stage.base?.accounts);
  }

  // ----- RUN

  private run(ins: Instruction, stage: Stage): void {
    const flags = parseFlags(ins, ['mount', 'network']);
    this.needArgs(ins, 'the command is missing');
    const json = readJsonArray(ins.args);
    const shell = json === undefined ? heredocCommand(this.shellForm(ins, stage), ins) : execCommand(jsonStrings(json, ins), stage.dockerShell, ins);
    const cache: Mount[] = [];
    const secrets: Mount[] = [];
    for (const flag of flags.get('mount') ?? []) {
      const { kind, mount } = this.mount(flag, ins, stage);
      (kind === 'cache' ? cache : secrets).push(mount);
    }
    this.pushRun(stage, { cache, network: this.network(flags.get('network')?.[0]), secrets, shell });
  }

  /** A run step of the import's own (a chown, a chmod, a heredoc's files, a download, an unpack): no cache or secret, Docker's default network. */
  private pushOwnRun(stage: Stage, shell: RunOp['shell']): void {
    this.pushRun(stage, { cache: [], network: [...DOCKER_DEFAULT_NETWORK], secrets: [], shell });
  }

  /** A run op, after a (shell ...) giving the stage Docker's shell where the spec's differs. */
  private pushRun(stage: Stage, run: Omit<RunOp, 'op'>): void {
    if (!sameArgs(stage.specShell, stage.dockerShell)) {
      stage.ops.push({ op: 'shell', args: [...stage.dockerShell] });
      stage.specShell = stage.dockerShell;
    }
    stage.ops.push({ op: 'run', ...run });
  }

  private shellForm(ins: Instruction, stage: Stage): string {
    const segments = ins.logical.segments(ins.argsStart, ins.argsStart + ins.args.length);
    // A newline can split a word like `&<<x`, which BuildKit would then read as a heredoc.
    const posix = this.escape === '\\' && isPosixShell(stage.dockerShell) && !ins.args.includes('<<');
    return shellCommand(segments, posix);
  }

  private network(flag: FlagValue | undefined): string[] {
    if (flag === undefined || flag.value === 'default' || flag.value === 'host') return [...DOCKER_DEFAULT_NETWORK];
    if (flag.value === 'none') return [];
    throw new SpecError(`RUN --network=${flag.value}: the network must be default, host or none`, flag.pos);
  }

  private mount(flag: FlagValue, ins: Instruction, stage: Stage): { kind: 'cache' | 'secret'; mount: Mount } {
    const fail = (reason: string): never => {
      throw new SpecError(`RUN --mount=${flag.value} ${reason}`, flag.pos);
    };
    const options = this.mountOptions(flag, ins, stage, fail);
    const type = (options.get('type') ?? 'bind').toLowerCase();
    options.delete('type');
    if (type === 'cache') return { kind: 'cache', mount: cacheMount(options, stage.user, fail) };
    if (type === 'secret') return { kind: 'secret', mount: secretMount(options, stage.user, fail) };
    if (type === 'bind' || type === 'tmpfs' || type === 'ssh') {
      return fail(
        `cannot be imported: a spec step mounts only caches and secrets, not ${type === 'bind' ? 'bind mounts (the default type)' : `${type} mounts`}`,
      );
    }
    const hint = closest(type, ['cache', 'secret', 'bind', 'tmpfs', 'ssh']);
    return fail(`has an unknown mount type "${type}"${hint ? `; did you mean "${hint}"?` : ''}`);
  }

  private mountOptions(flag: FlagValue, ins: Instruction, stage: Stage, fail: (reason: string) => never): MountOptions {
    const options: MountOptions = new Map();
    for (const field of csvFields(flag.value, fail)) {
      const eq = field.indexOf('=');
      const written = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
      const key = Object.hasOwn(MOUNT_KEYS, written) ? MOUNT_KEYS[written]! : undefined;
      if (key === undefined) {
        const hint = closest(written, Object.keys(MOUNT_KEYS));
        return fail(`has an unknown option "${written}"${hint ? `; did you mean "${hint}"?` : ''}`);
      }
      if (eq < 0 && !['readonly', 'readwrite', 'required'].includes(key)) fail(`needs a value for "${written}" (${written}=VALUE)`);
      options.set(key, eq < 0 ? 'true' : this.expand(field.slice(eq + 1), stage, ins));
    }
    return options;
  }
}
