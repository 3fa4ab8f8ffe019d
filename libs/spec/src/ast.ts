/**
 * The spec AST: the one form every front end (S-expression reader, Dockerfile import)
 * produces and everything downstream (printers, hashing, the engine) consumes.
 * Nothing here records which text a spec came from; source positions live in a side
 * table (see `locationOf` in spec-reader.ts) so that two equal specs compare equal.
 */

export interface Spec {
  /** Named child builds, in order; each may be the source of a `copy (from (build NAME))`. */
  readonly childBuilds: readonly ChildBuild[];
  /** The base image, e.g. `debian:12` or `ocaml/opam@sha256:...`. */
  readonly from: string;
  readonly ops: readonly Op[];
}

export interface ChildBuild {
  readonly name: string;
  readonly spec: Spec;
}

/** A cache or secret mount: `(ID (target PATH) [(buildkit_options ((K V)...))])`. */
export interface Mount {
  readonly id: string;
  readonly target: string;
  readonly buildkitOptions: readonly (readonly [string, string])[];
}

export type CopySource = { readonly kind: 'context' } | { readonly kind: 'build'; readonly name: string };

export type User = { readonly kind: 'unix'; readonly uid: number; readonly gid: number } | { readonly kind: 'windows'; readonly name: string };

export interface CommentOp {
  readonly op: 'comment';
  readonly text: string;
}
export interface WorkdirOp {
  readonly op: 'workdir';
  readonly path: string;
}
export interface ShellOp {
  readonly op: 'shell';
  readonly args: readonly string[];
}
export interface RunOp {
  readonly op: 'run';
  readonly cache: readonly Mount[];
  readonly network: readonly string[];
  readonly secrets: readonly Mount[];
  readonly shell: string;
}
export interface CopyOp {
  readonly op: 'copy';
  readonly from: CopySource;
  readonly src: readonly string[];
  readonly dst: string;
  readonly exclude: readonly string[];
}
export interface UserOp {
  readonly op: 'user';
  readonly user: User;
}
export interface EnvOp {
  readonly op: 'env';
  readonly name: string;
  readonly value: string;
}

export type Op = CommentOp | WorkdirOp | ShellOp | RunOp | CopyOp | UserOp | EnvOp;

export const ROOT_UNIX: User = { kind: 'unix', uid: 0, gid: 0 };
export const ROOT_WINDOWS: User = { kind: 'windows', name: 'ContainerAdministrator' };

export function isRoot(user: User): boolean {
  return user.kind === 'unix' ? user.uid === 0 && user.gid === 0 : user.name === 'ContainerAdministrator';
}
