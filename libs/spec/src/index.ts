export * from './ast.js';
export * from './sexp.js';
export { SpecError } from './spec-error.js';
export { MAX_NESTING, readSexp, readSexps } from './sexp-reader.js';
export { mustQuote, quoteAtom, toMachine } from './sexp-printer.js';
export { parseSpec, specOfSexp, locationOf } from './spec-reader.js';
export { printSpec, printOp, sexpOfSpec, sexpOfOp, sexpOfUser, oneLine } from './spec-printer.js';
export { dockerfileOfSpec, type DockerfileOptions } from './dockerfile-export.js';
export { closest, didYouMean } from './did-you-mean.js';
export {
  baseImagesOfDockerfile,
  importDockerfile,
  specOfDockerfile,
  type BaseImage,
  type ContextReader,
  type DockerfileImport,
  type DockerfileImportOptions,
  type DockerfileWarning,
  type ImportedImageConfig,
} from './dockerfile-import/index.js';
