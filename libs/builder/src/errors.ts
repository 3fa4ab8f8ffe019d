import { pidOf } from './store-claims.js';

/** A step failed: the message names the op and why. */
export class BuildError extends Error {
  override readonly name = 'BuildError';
}

/** A snapshot that a running build (in this process or another) stands on cannot be deleted. */
export class SnapshotInUseError extends BuildError {
  constructor(id: string, owner: string) {
    super(`snapshot ${id} is in use by a running build (process ${pidOf(owner)})`);
  }
}
