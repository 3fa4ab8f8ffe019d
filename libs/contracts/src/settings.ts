/**
 * A setting given either in the environment or in a file the environment names
 * (`NAME` or `NAME_FILE`): secrets come from files in containers (Kubernetes Secrets
 * and compose secrets are mounted as files), and a value in the environment shows in
 * `ps e` and `docker inspect`.
 */
import { readFileSync } from 'node:fs';

export class SettingError extends Error {
  override readonly name = 'SettingError';
}

/** `env[name]`, or the contents of the file `env[name + '_FILE']` without its final newline; undefined when neither is set. */
export function settingFromEnv(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  const file = env[`${name}_FILE`];
  if (value && file) throw new SettingError(`${name} and ${name}_FILE are both set: give one of them`);
  if (!file) return value || undefined;
  const text = readSettingFile(file, `${name}_FILE`);
  if (text.trim() === '') throw new SettingError(`${name}_FILE=${file}: the file is empty`);
  return text.replace(/\r?\n$/, '');
}

/** A file's text; the error names the setting that pointed at it, never its contents. */
export function readSettingFile(file: string, setting: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SettingError(`${setting}=${file}: cannot read it (${code ?? (e as Error).message})`);
  }
}
