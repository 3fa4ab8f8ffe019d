/** The frame around every page: landmarks, navigation, a skip link, the stylesheet, the script (browser/app.ts). */
import type { Role } from '../roles.js';
import { assets } from './assets.js';
import { html, type Html } from './html.js';

export type Section = 'dashboard' | 'builds' | 'jobs' | 'failures' | 'workers' | 'images' | 'clients' | 'charts' | 'audit';

/**
 * The main navigation. An entry with a role is for those whose role allows it: every
 * page is the same for everyone (pages are cached and saved), so it comes hidden and the
 * script shows it to a browser signed in with such a role (`data-needs`).
 */
const NAV: [Section, string, string, Role?][] = [
  ['dashboard', '/', 'Dashboard'],
  ['builds', '/builds', 'Builds'],
  ['jobs', '/jobs', 'Jobs'],
  ['failures', '/failures', 'Failures'],
  ['workers', '/workers', 'Workers'],
  ['images', '/images', 'Images'],
  ['clients', '/clients', 'Clients'],
  ['charts', '/charts', 'Charts'],
  ['audit', '/audit', 'Audit log', 'operator'],
];

export function page(options: { title: string; section?: Section; body: Html; head?: Html }): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${options.title} · Cairn</title><link rel="stylesheet" href="${assets.css.path}">
<link rel="alternate" type="application/atom+xml" title="Cairn build failures" href="/failures.atom">${options.head ?? ''}</head>
<body><a class="skip" href="#main">Skip to content</a>
<header><a class="brand" href="/">Cairn results</a><nav aria-label="Main"><ul>${NAV.map(
    ([id, href, label, needs]) =>
      html`<li${needs ? html` data-needs="${needs}" hidden` : ''}><a href="${href}"${id === options.section ? html` aria-current="page"` : ''}>${label}</a></li>`,
  )}</ul></nav><button type="button" id="theme-toggle" class="theme" hidden>Dark mode</button></header>
<main id="main">${options.body}</main>
<footer class="muted site"><a href="/openapi.json">API</a> · <a href="/failures.atom">Failures feed</a></footer>
<script src="${assets.js.path}" defer></script></body></html>`;
}

export function stateLabel(state: string): Html {
  return html`<span class="state ${state}">${state}</span>`;
}
