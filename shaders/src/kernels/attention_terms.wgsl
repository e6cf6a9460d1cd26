// The two sums of causal attention, written once for both GPU paths (attention.wgsl: one
// workgroup per head and query row; solve.wgsl: one workgroup per problem, every head):
//   attention_dot(q, s, k, n) = sum_{d < n} query(q + d) key(s, k + d)    in increasing d
//   attention_mix(w, n, o)    = sum_{s < n} weight(w + s) value(s, o)     in increasing s
// The including shader says where the numbers are: query(i), weight(i), and key(s, i) /
// value(s, i), the element at offset i of key position s's key / value row. Both loops take four
// loads, then four adds in increasing order: the plain loop's rounding (the reference's), in a
// quarter of the loop iterations, which llvmpipe counts (solve.wgsl's header).

fn attention_dot(q: u32, s: u32, k: u32, n: u32) -> f32 {
    var dot = 0.0;
    var d = 0u;
    loop {
        if (d + 4u > n) {
            break;
        }
        let q0 = query(q + d);
        let q1 = query(q + d + 1u);
        let q2 = query(q + d + 2u);
        let q3 = query(q + d + 3u);
        let k0 = key(s, k + d);
        let k1 = key(s, k + d + 1u);
        let k2 = key(s, k + d + 2u);
        let k3 = key(s, k + d + 3u);
        dot += q0 * k0;
        dot += q1 * k1;
        dot += q2 * k2;
        dot += q3 * k3;
        d += 4u;
    }
    for (; d < n; d++) {
        dot += query(q + d) * key(s, k + d);
    }
    return dot;
}

fn attention_mix(w: u32, n: u32, o: u32) -> f32 {
    var acc = 0.0;
    var s = 0u;
    loop {
        if (s + 4u > n) {
            break;
        }
        let a0 = weight(w + s);
        let a1 = weight(w + s + 1u);
        let a2 = weight(w + s + 2u);
        let a3 = weight(w + s + 3u);
        let v0 = value(s, o);
        let v1 = value(s + 1u, o);
        let v2 = value(s + 2u, o);
        let v3 = value(s + 3u, o);
        acc += a0 * v0;
        acc += a1 * v1;
        acc += a2 * v2;
        acc += a3 * v3;
        s += 4u;
    }
    for (; s < n; s++) {
        acc += weight(w + s) * value(s, o);
    }
    return acc;
}
