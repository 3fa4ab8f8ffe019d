/**
 * Line diff (Myers' O(ND) algorithm) for comparing two specs, and the same on any
 * sequence for aligning two builds' steps. Inputs past a size limit are compared as
 * wholes, so a pathological pair cannot stall a page.
 */
export type DiffOp<T> =
  { readonly kind: 'same'; readonly a: T; readonly b: T } | { readonly kind: 'removed'; readonly a: T } | { readonly kind: 'added'; readonly b: T };

const MAX_EDIT = 4000;

export function diff<T>(a: readonly T[], b: readonly T[], key: (x: T) => string = String): DiffOp<T>[] {
  const ka = a.map(key);
  const kb = b.map(key);
  const n = a.length;
  const m = b.length;
  const max = Math.min(n + m, MAX_EDIT);
  const offset = max + 1;
  const v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  let found = false;
  outer: for (let d = 0; d <= max; d++) {
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!) ? v[offset + k + 1]! : v[offset + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && ka[x] === kb[y]) {
        x++;
        y++;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) {
        found = true;
        break outer;
      }
    }
  }
  if (!found) return [...a.map((x): DiffOp<T> => ({ kind: 'removed', a: x })), ...b.map((y): DiffOp<T> => ({ kind: 'added', b: y }))];
  const ops: DiffOp<T>[] = [];
  let x = n;
  let y = m;
  for (let d = trace.length - 1; d >= 0; d--) {
    const vd = trace[d]!;
    const k = x - y;
    const prevK = k === -d || (k !== d && vd[offset + k - 1]! < vd[offset + k + 1]!) ? k + 1 : k - 1;
    const prevX = vd[offset + prevK]!;
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      ops.push({ kind: 'same', a: a[x - 1]!, b: b[y - 1]! });
      x--;
      y--;
    }
    if (d > 0) {
      if (x === prevX) ops.push({ kind: 'added', b: b[y - 1]! });
      else ops.push({ kind: 'removed', a: a[x - 1]! });
    }
    x = prevX;
    y = prevY;
  }
  return ops.reverse();
}
