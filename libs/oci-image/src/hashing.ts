import type { Hash } from 'node:crypto';
import { Transform } from 'node:stream';

/** A pass-through that feeds every chunk to `hash` and tells `count` its size: digests are taken while a blob streams. */
export function hashing(hash: Hash, count: (bytes: number) => void = () => {}): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      count(chunk.length);
      done(null, chunk);
    },
  });
}
