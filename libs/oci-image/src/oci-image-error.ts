/** An image cannot be made, written, pushed or loaded: bad input, a refusing or unreachable peer. */
export class OciImageError extends Error {
  override readonly name = 'OciImageError';
}
