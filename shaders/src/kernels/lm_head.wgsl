// LM head tied to the token embedding, for the positions p = t0 + r, r < rows:
//   logits[p, v] = sum_c wte[v, c] hidden[p, c]          (in increasing c, the reference's order)
// wte is int8 with one scale per row, wte[v, c] = q[v, c] * s[v] (INT8), or f32.

override C: u32 = 1u;
override V: u32 = 1u;
override INT8: bool = false;

@group(0) @binding(1) var<storage, read> hidden: array<f32>;
@group(0) @binding(2) var<storage, read> wte: array<u32>;
@group(0) @binding(3) var<storage, read> wte_scale: array<f32>;
@group(0) @binding(4) var<storage, read_write> logits: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let v = gid.x;
    let r = gid.y;
    if (v >= V || r >= step.rows) {
        return;
    }
    let p = step.t0 + r;
    let words = (C + 3u) / 4u;
    var acc = 0.0;
    if (INT8) {
        let s = wte_scale[v];
        // Four values per word: one load of the word and four of h, then four adds in order.
        var c = 0u;
        loop {
            if (c + 4u > C) {
                break;
            }
            let wv = unpack_i8x4(wte[v * words + c / 4u]) * s;
            let h0 = hidden[p * C + c];
            let h1 = hidden[p * C + c + 1u];
            let h2 = hidden[p * C + c + 2u];
            let h3 = hidden[p * C + c + 3u];
            acc += wv.x * h0;
            acc += wv.y * h1;
            acc += wv.z * h2;
            acc += wv.w * h3;
            c += 4u;
        }
        for (; c < C; c++) {
            let wv = unpack_i8(wte[v * words + c / 4u], c % 4u) * s;
            acc += wv * hidden[p * C + c];
        }
    } else {
        for (var c = 0u; c < C; c++) {
            acc += bitcast<f32>(wte[v * words * 4u + c]) * hidden[p * C + c];
        }
    }
    logits[p * V + v] = acc;
}
