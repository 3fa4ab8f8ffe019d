/**
 * The dashboard's stylesheet and script (browser/app.ts), served with long cache
 * lifetimes under a content hash. Both are small on purpose: a page is readable without
 * the script, which only adds the live parts (queue and running builds, the tailing log).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The page's colours, and the 16 terminal colours of logs (foreground, background) for each scheme. */
const LIGHT = [
  '--bg:#fff;--fg:#1b1b1b;--muted:#555;--line:#d0d0d0;--link:#0b57d0;--ok:#1b6e2a;--bad:#b3261e;--warn:#8a5300;--code:#f5f5f5;--hit:#e6f0ff;--hl:#fff3b0',
  terminal(
    [
      '#555',
      '#c62828',
      '#2e7d32',
      '#8d6e00',
      '#1565c0',
      '#8e24aa',
      '#00838f',
      '#777',
      '#777',
      '#e53935',
      '#43a047',
      '#a68b00',
      '#1e88e5',
      '#ab47bc',
      '#00acc1',
      '#888',
    ],
    [
      '#cfcfcf',
      '#ffcdd2',
      '#c8e6c9',
      '#fff9c4',
      '#bbdefb',
      '#e1bee7',
      '#b2ebf2',
      '#eee',
      '#bdbdbd',
      '#ef9a9a',
      '#a5d6a7',
      '#fff59d',
      '#90caf9',
      '#ce93d8',
      '#80deea',
      '#fafafa',
    ],
  ),
].join(';');
const DARK = [
  '--bg:#121212;--fg:#e8e8e8;--muted:#b0b0b0;--line:#3a3a3a;--link:#8ab4f8;--ok:#7bd88f;--bad:#ff8a80;--warn:#ffcc80;--code:#1e1e1e;--hit:#1d2b40;--hl:#4a3f00',
  terminal(
    [
      '#9e9e9e',
      '#ff7b72',
      '#7ee787',
      '#e3b341',
      '#79c0ff',
      '#d2a8ff',
      '#56d4dd',
      '#c9d1d9',
      '#8b949e',
      '#ffa198',
      '#a6f0b0',
      '#f2cc60',
      '#a5d6ff',
      '#e2c5ff',
      '#b3f0ff',
      '#f0f6fc',
    ],
    [
      '#000',
      '#5c1a1a',
      '#1a4321',
      '#4d3d00',
      '#102c54',
      '#3d1a52',
      '#0b3d40',
      '#3a3a3a',
      '#484f58',
      '#8e2b2b',
      '#2b6a36',
      '#6b5600',
      '#1f4f8f',
      '#5e2a7e',
      '#136a70',
      '#6e7681',
    ],
  ),
].join(';');

function terminal(fg: readonly string[], bg: readonly string[]): string {
  return [...fg.map((c, i) => `--fg${i}:${c}`), ...bg.map((c, i) => `--bg${i}:${c}`)].join(';');
}

const CSS = `
:root{color-scheme:light;${LIGHT}}
@media (prefers-color-scheme:dark){:root:not([data-theme=light]){color-scheme:dark;${DARK}}}
:root[data-theme=dark]{color-scheme:dark;${DARK}}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--fg)}
a{color:var(--link)}
a:focus,button:focus,input:focus,select:focus,summary:focus{outline:3px solid var(--link);outline-offset:1px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:var(--bg);padding:4px}
header{display:flex;flex-wrap:wrap;gap:.3rem 1rem;align-items:center;padding:.5rem 1rem;border-bottom:1px solid var(--line)}
header .brand{font-weight:700;text-decoration:none;color:var(--fg)}
nav ul{display:flex;flex-wrap:wrap;gap:.2rem 1rem;list-style:none;margin:0;padding:0}
main{padding:0 1rem 2rem;max-width:1200px;margin:auto}
h1{font-size:1.4rem;margin:1rem 0 .5rem;word-break:break-word}h2{font-size:1.15rem;margin:1.4rem 0 .4rem}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600}
.scroll{overflow-x:auto}
code,pre,.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:13px}
.hash{word-break:break-all}
pre{background:var(--code);padding:.5rem;overflow-x:auto;margin:0;white-space:pre-wrap;word-break:break-word}
.state{font-weight:600}.succeeded{color:var(--ok)}.failed{color:var(--bad)}.cancelled,.queued,.assigned{color:var(--muted)}.running{color:var(--warn)}
.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin:.5rem 0}
.filters label{display:flex;flex-direction:column;font-size:.85rem}
input,select,button{font:inherit;padding:.25rem .4rem;color:var(--fg);background:var(--bg);border:1px solid var(--muted);border-radius:3px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}dl.facts dt{font-weight:600}dl.facts dd{margin:0;word-break:break-word}
details.step{border:1px solid var(--line);margin:.2rem 0}details.step summary{cursor:pointer;padding:.2rem .4rem;font-family:ui-monospace,monospace;font-size:13px}
details.step.cached summary{background:var(--hit)}.hit{font-size:.8rem;border:1px solid var(--link);border-radius:3px;padding:0 .3rem;color:var(--link)}.took{font-size:.8rem;color:var(--muted)}
.changed{background:var(--hit)}tr.first-change td{border-left:4px solid var(--warn)}
.diff .add{color:var(--ok)}.diff .del{color:var(--bad)}
.chart{width:100%;height:160px}.chart rect.succeeded{fill:var(--ok)}.chart rect.failed{fill:var(--bad)}.chart rect.cancelled{fill:var(--muted)}.chart .axis{stroke:var(--line)}.chart .axis-label{fill:var(--muted);font-size:11px}
footer.site{padding:0 1rem 1rem}form.action{display:inline-block;margin:0 .4rem .4rem 0}.muted{color:var(--muted)}.note{border-left:4px solid var(--warn);padding:.3rem .6rem}
${Array.from({ length: 16 }, (_, i) => `.fg${i}{color:var(--fg${i})}.bg${i}{background:var(--bg${i})}`).join('')}
.log .l{display:block;min-height:1.2em}.log summary .l{display:inline}.log .l.hl{background:var(--hl)}.log .l.match{background:var(--hit)}.log .l.current{outline:2px solid var(--warn)}
.log a.n{display:inline-block;min-width:3.5em;margin-right:.8em;text-align:right;color:var(--muted);text-decoration:none;user-select:none}.log a.n::before{content:attr(data-n)}
.log.times a.n[data-ts]::after{content:" " attr(data-ts)}.log.times a.n{min-width:11em}
details.step.failing summary{border-left:4px solid var(--bad)}.failed-mark{font-size:.8rem;border:1px solid var(--bad);border-radius:3px;padding:0 .3rem;color:var(--bad)}
.log-tools .check{flex-direction:row;align-items:center;gap:.3rem}header .theme{margin-left:auto}
.b{font-weight:700}.i{font-style:italic}.u{text-decoration:underline}
@media (max-width:640px){th.wide,td.wide{display:none}main{padding:0 .5rem 2rem}dl.facts{grid-template-columns:1fr}dl.facts dt{margin-top:.3rem}}
`;

/**
 * The script, browser/app.ts bundled by the build. The same path from src/view (the
 * service run from its sources) and from dist/view (built).
 */
const SCRIPT = new URL('../../dist/browser/app.js', import.meta.url);
let JS: string;
try {
  JS = readFileSync(SCRIPT, 'utf8');
} catch (e) {
  throw new Error(`the dashboard's script ${fileURLToPath(SCRIPT)} is missing: build the results-store (npx nx run results-store:build)`, { cause: e });
}

const version = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 12);

export const assets = {
  css: { path: `/static/app.${version(CSS)}.css`, body: CSS.trim(), type: 'text/css; charset=utf-8' },
  js: { path: `/static/app.${version(JS)}.js`, body: JS.trim(), type: 'text/javascript; charset=utf-8' },
} as const;
