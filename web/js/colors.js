// One diverging palette for every vector on the page: blue for negative, white for zero,
// orange-red for positive, saturating at ±1 after scaling.

export function heatColor(v) {
  const t = Math.max(-1, Math.min(1, v));
  if (t >= 0) {
    return `rgb(255,${Math.round(255 - 150 * t)},${Math.round(255 - 220 * t)})`;
  }
  const s = -t;
  return `rgb(${Math.round(255 - 200 * s)},${Math.round(255 - 120 * s)},255)`;
}

// A robust scale for a set of vectors: the 98th percentile of absolute values, so that one
// outlier coordinate does not wash the rest out.
export function scaleOf(vectors) {
  const values = [];
  for (const v of vectors) for (const x of v) values.push(Math.abs(x));
  if (values.length === 0) return 1;
  values.sort((a, b) => a - b);
  return values[Math.floor(0.98 * (values.length - 1))] || 1;
}
