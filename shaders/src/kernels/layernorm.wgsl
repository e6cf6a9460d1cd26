// LayerNorm of each row r < rows (one workgroup per row), GPT-2's, with biased variance:
//   mean = sum_c x[r, c] / C,  var = sum_c (x[r, c] - mean)^2 / C
//   y[o, c] = (x[r, c] - mean) * (1 / sqrt(var + EPS)) * g[c] + b[c]
// The output row o is r, or t0 + r when OUT_AT_POS (ln_f writes the hidden-state history that
// the LM head and the thought feedback read). The sums run in index order in one invocation
// (ordered_fold.wgsl), the reference's order, so the GPU and the oracle round alike.

override C: u32 = 1u;
override EPS: f32 = 1e-5;
override OUT_AT_POS: bool = false;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn row_value(at: u32) -> f32 {
    return x[at];
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let r = wid.x;
    let base = r * C;
    let mean = ordered_fold(lid.x, base, C, FOLD_SUM, 0.0) / f32(C);
    let inv = 1.0 / sqrt(ordered_fold(lid.x, base, C, FOLD_SQUARES, mean) / f32(C) + EPS);
    var o = r;
    if (OUT_AT_POS) {
        o = step.t0 + r;
    }
    for (var c = lid.x; c < C; c += 64u) {
        y[o * C + c] = (x[base + c] - mean) * inv * g[c] + b[c];
    }
}
