/** The sign-in page (a token into a cookie; http/login.controller.ts), and its answers to a refused or throttled try. */
import { html, type Html } from '../view/html.js';
import { page } from '../view/layout.js';

export function signInPage(): Html {
  return page({
    title: 'Sign in',
    body: html`<h1>Sign in</h1><form method="post" action="/login"><p><label for="token">API token</label><br><input id="token" name="token" type="password" autocomplete="current-password" required size="50"></p><p><button type="submit">Sign in</button></p></form><h2>Sign out</h2><form method="post" action="/logout"><p><button type="submit">Sign out</button></p></form>`,
  });
}

export function signInThrottledPage(waitS: number): Html {
  return page({
    title: 'Sign in',
    body: html`<h1>Sign in</h1><p class="note" role="alert">Too many failed attempts from this address; try again in ${waitS} s.</p>`,
  });
}

export function signInRefusedPage(): Html {
  return page({ title: 'Sign in', body: html`<h1>Sign in</h1><p class="note" role="alert">That token is not valid.</p><p><a href="/login">Try again</a></p>` });
}
