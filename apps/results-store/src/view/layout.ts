/** The frame around every page: landmarks, navigation, a skip link, the stylesheet, the script (browser/app.ts). */
import { assets } from './assets.js';
import { html, type Html } from './html.js';

export type Section = 'dashboard' | 'builds' | 'jobs' | 'failures' | 'workers' | 'charts';

const NAV: [Section, string, string][] = [
  ['dashboard', '/', 'Dashboard'],
  ['builds', '/builds', 'Builds'],
  ['jobs', '/jobs', 'Jobs'],
  ['failures', '/failures', 'Failures'],
  ['workers', '/workers', 'Workers'],
  ['charts', '/charts', 'Charts'],
];

export function page(options: { title: string; section?: Section; body: Html; head?: Html }): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${options.title} · Cairn</title><link rel="stylesheet" href="${assets.css.path}">
<link rel="alternate" type="application/atom+xml" title="Cairn build failures" href="/failures.atom">${options.head ?? ''}</head>
<body><a class="skip" href="#main">Skip to content</a>
<header><a class="brand" href="/">Cairn results</a><nav aria-label="Main"><ul>${NAV.map(
    ([id, href, label]) => html`<li><a href="${href}"${id === options.section ? html` aria-current="page"` : ''}>${label}</a></li>`,
  )}</ul></nav><button type="button" id="theme-toggle" class="theme" hidden>Dark mode</button></header>
<main id="main">${options.body}</main>
<footer class="muted site"><a href="/openapi.json">API</a> · <a href="/failures.atom">Failures feed</a></footer>
<script src="${assets.js.path}" defer></script></body></html>`;
}

export function stateLabel(state: string): Html {
  return html`<span class="state ${state}">${state}</span>`;
}
