/** What a build reports as it goes: headings for ops, notes from the engine, step output. */
export type LogEvent =
  | { readonly tag: 'heading' | 'note'; readonly text: string }
  | { readonly tag: 'output'; readonly data: Uint8Array };

export type Logger = (event: LogEvent) => void;

export const heading = (text: string): LogEvent => ({ tag: 'heading', text });
export const note = (text: string): LogEvent => ({ tag: 'note', text });
