/**
 * What the CLI may print to a terminal: colours when the stream is a terminal and the
 * user has not said no (NO_COLOR, --no-color), and build output with every escape
 * sequence but colours taken out, so that a step cannot move the cursor, retitle the
 * window, write the clipboard or hide text in the user's terminal.
 */
export interface Paint {
  readonly enabled: boolean;
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

export interface ColorChoice {
  /** --no-color on the command line. */
  readonly noColor?: boolean;
  readonly isTTY: boolean;
  readonly env?: NodeJS.ProcessEnv;
}

/** NO_COLOR (https://no-color.org) and --no-color win; FORCE_COLOR=1+ forces; else a terminal gets colours. */
export function colorsWanted({ noColor, isTTY, env = process.env }: ColorChoice): boolean {
  if (noColor || (env.NO_COLOR ?? '') !== '') return false;
  const force = env.FORCE_COLOR;
  if (force !== undefined && force !== '') return force !== '0' && force !== 'false';
  return isTTY && env.TERM !== 'dumb';
}

const sgr = (open: number, close: number) => (s: string) => `\x1b[${open}m${s}\x1b[${close}m`;

export function paint(enabled: boolean): Paint {
  const same = (s: string) => s;
  return enabled
    ? { enabled, bold: sgr(1, 22), dim: sgr(2, 22), red: sgr(31, 39), green: sgr(32, 39), yellow: sgr(33, 39), cyan: sgr(36, 39) }
    : { enabled, bold: same, dim: same, red: same, green: same, yellow: same, cyan: same };
}

// ESC [ params intermediates final: CSI. SGR (final "m") is colour and is kept.
const CSI = /^\x1b\[[0-?]*[ -/]*[@-~]/;
// ESC ] ... BEL or ESC \: OSC (titles, hyperlinks, clipboard). ESC P/X/^/_ ... ESC \: DCS, SOS, PM, APC.
const STRING_SEQUENCE = /^\x1b[\]PX^_][\s\S]*?(\x07|\x1b\\)/;
const INCOMPLETE = /^\x1b(\[[0-?]*[ -/]*|[\]PX^_][\s\S]*)?$/;
// C0 controls a terminal acts on, less tab, newline and carriage return; C1 CSI/OSC.
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f\x9b\x9d]/g;

/**
 * A streaming filter over text (output arrives in chunks, and an escape sequence may be
 * split between two): keeps colour (SGR) sequences, drops every other escape sequence
 * and control character. A sequence left open at the end of a chunk is held back for the
 * next one, up to 4 KiB, past which it is dropped as garbage.
 */
export class EscapeFilter {
  private held = '';

  push(text: string): string {
    let input = this.held + text;
    this.held = '';
    let out = '';
    for (;;) {
      const esc = input.indexOf('\x1b');
      if (esc < 0) return out + input.replace(CONTROL, '');
      out += input.slice(0, esc).replace(CONTROL, '');
      input = input.slice(esc);
      const csi = CSI.exec(input);
      if (csi) {
        if (csi[0].endsWith('m')) out += csi[0];
        input = input.slice(csi[0].length);
        continue;
      }
      const str = STRING_SEQUENCE.exec(input);
      if (str) {
        input = input.slice(str[0].length);
        continue;
      }
      if (INCOMPLETE.test(input) && input.length < 4096) {
        this.held = input;
        return out;
      }
      // A lone ESC or a two-byte sequence (ESC c resets the terminal): drop ESC and its letter.
      input = input.slice(2);
    }
  }
}
