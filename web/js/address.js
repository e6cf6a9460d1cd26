// The page's address: its parameters read as people type them, and written back so that they
// read the same. URLSearchParams reads `+` as a space (form encoding), so `?a=347+285` or
// `?patch=0=from:999+1` typed by hand would lose their plus; here `+` is a plus and only %XX
// escapes are decoded. Written values escape what must be escaped (`&`, `#`, `%`, spaces as %20,
// `+` as %2B, so URLSearchParams reads them the same) and keep `=`, `:`, `;`, `,` and `/` as typed.

const decode = (s) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

// [[key, value], ...] in the address's order (a key given twice: the first).
function entries(search) {
  const out = [];
  for (const part of search.replace(/^\?/, '').split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const key = decode(eq < 0 ? part : part.slice(0, eq));
    if (out.some(([k]) => k === key)) continue;
    out.push([key, eq < 0 ? '' : decode(part.slice(eq + 1))]);
  }
  return out;
}

// The parameters of `search` (location.search by default): { get(key) -> string | null, has(key) }.
export function readParams(search = location.search) {
  const map = new Map(entries(search));
  return { get: (k) => (map.has(k) ? map.get(k) : null), has: (k) => map.has(k) };
}

const encodeValue = (v) => encodeURIComponent(v).replace(/%(3D|3A|3B|2C|2F)/g, (m) => decodeURIComponent(m));

// Sets (or, for null, removes) parameters in the address without reloading, keeping the others.
export function updateAddress(changes) {
  const list = entries(location.search);
  for (const [k, v] of Object.entries(changes)) {
    const i = list.findIndex(([key]) => key === k);
    if (v === null || v === undefined) {
      if (i >= 0) list.splice(i, 1);
    } else if (i >= 0) {
      list[i][1] = String(v);
    } else {
      list.push([k, String(v)]);
    }
  }
  const search = list.map(([k, v]) => `${encodeURIComponent(k)}=${encodeValue(v)}`).join('&');
  history.replaceState(null, '', `${location.pathname}${search ? `?${search}` : ''}${location.hash}`);
}
