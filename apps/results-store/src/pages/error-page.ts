/** An error on an HTML page, as a page: what went wrong, and a way to sign in when a token is needed. */
import { html, type Html } from '../view/html.js';
import { page } from '../view/layout.js';

export function errorPage(status: number, message: string): Html {
  const title = status === 404 ? 'Not found' : status === 401 ? 'Sign in needed' : status === 403 ? 'Not allowed' : status < 500 ? 'Bad request' : 'Error';
  return page({ title, body: html`<h1>${title}</h1><p>${message}</p>${status === 401 ? html`<p><a href="/login">Sign in with a token</a></p>` : ''}` });
}
