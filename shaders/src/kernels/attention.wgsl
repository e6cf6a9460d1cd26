// Causal multi-head self-attention over the KV cache, one workgroup per (head h, query row r),
// query position p = t0 + r, head width D = C / H:
//   score[s] = (sum_d q[h, d] k[s, h, d]) * SCALE              for s = 0 ..= p, SCALE = 1/sqrt(D)
//   a[s]     = exp(score[s] - max_s score) / sum_s exp(...)     (stable softmax)
//   out[r, h, d] = sum_s a[s] v[s, h, d]
// qkv[r] = [q | k | v] (3C) holds this run's rows; keys and values of positions before t0 come
// from the cache, and each workgroup appends its own row's k and v to the cache at p. The
// weights a[s] are kept in att[h, p, s] ([H, P, P]): the softmax's scratch and the attention map
// the visualisation reads back. Sums run in increasing index, the reference's order
// (ordered_fold.wgsl for the softmax's max and sum, attention_terms.wgsl for the two sums, which
// the one-dispatch solver calls too).

override C: u32 = 1u;
override H: u32 = 1u;
override P: u32 = 1u;
override SCALE: f32 = 1.0;

@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> kc: array<f32>;
@group(0) @binding(3) var<storage, read_write> vc: array<f32>;
@group(0) @binding(4) var<storage, read_write> att: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

// The max and the sum of a query's scores (ordered_fold.wgsl) read them back from att.
fn row_value(at: u32) -> f32 {
    return att[at];
}

// attention_terms.wgsl's operands: this run's query rows, the weights in att, keys and values.
fn query(at: u32) -> f32 {
    return qkv[at];
}

fn weight(at: u32) -> f32 {
    return att[at];
}

fn key(s: u32, off: u32) -> f32 {
    if (s < step.t0) {
        return kc[s * C + off];
    }
    return qkv[(s - step.t0) * 3u * C + C + off];
}

fn value(s: u32, off: u32) -> f32 {
    if (s < step.t0) {
        return vc[s * C + off];
    }
    return qkv[(s - step.t0) * 3u * C + 2u * C + off];
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let h = wid.x;
    let r = wid.y;
    let p = step.t0 + r;
    let n = p + 1u;
    let dh = C / H;
    let head = h * dh;
    let q = r * 3u * C + head;
    let base = (h * P + p) * P;
    for (var d = lid.x; d < dh; d += 64u) {
        kc[p * C + head + d] = qkv[r * 3u * C + C + head + d];
        vc[p * C + head + d] = qkv[r * 3u * C + 2u * C + head + d];
    }
    for (var s = lid.x; s < n; s += 64u) {
        att[base + s] = attention_dot(q, s, head, dh) * SCALE;
    }
    storageBarrier();
    let mx = ordered_fold(lid.x, base, n, FOLD_MAX, 0.0);
    for (var s = lid.x; s < n; s += 64u) {
        att[base + s] = exp(att[base + s] - mx);
    }
    storageBarrier();
    let sum = ordered_fold(lid.x, base, n, FOLD_SUM, 0.0);
    for (var s = lid.x; s < n; s += 64u) {
        att[base + s] = att[base + s] / sum;
    }
    storageBarrier();
    for (var d = lid.x; d < dh; d += 64u) {
        out[r * C + head + d] = attention_mix(base, n, head + d);
    }
}
