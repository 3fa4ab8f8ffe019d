import { homedir } from 'node:os';
import { join } from 'node:path';
import { ContextHashCache } from '@cairn/hashing';

/**
 * The digest cache of a build context, shared by `cairn plan`, `build` and `submit`: in
 * CAIRN_CONTEXT_CACHE, or the user's cache directory beside Node's compile cache.
 */
export function openContextCache(contextDir: string): Promise<ContextHashCache> {
  const cacheHome = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return ContextHashCache.open(contextDir, process.env.CAIRN_CONTEXT_CACHE || join(cacheHome, 'cairn', 'context-hashes'));
}
