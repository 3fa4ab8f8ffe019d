/** S-expressions as sexplib has them: atoms (byte strings, here UTF-8 text) and lists. */

export interface Position {
  /** 1-based line. */
  readonly line: number;
  /** 1-based column, in characters. */
  readonly column: number;
}

export type Sexp = Atom | List;

export interface Atom {
  readonly kind: 'atom';
  readonly value: string;
  readonly pos?: Position;
}

export interface List {
  readonly kind: 'list';
  readonly items: readonly Sexp[];
  readonly pos?: Position;
}

export const atom = (value: string): Atom => ({ kind: 'atom', value });
export const list = (...items: Sexp[]): List => ({ kind: 'list', items });
