// LayerNorm of each row r < rows (one workgroup per row), GPT-2's, with biased variance:
//   mean = sum_c x[r, c] / C,  var = sum_c (x[r, c] - mean)^2 / C
//   y[o, c] = (x[r, c] - mean) * (1 / sqrt(var + EPS)) * g[c] + b[c]
// The output row o is r, or t0 + r when OUT_AT_POS (ln_f writes the hidden-state history that
// the LM head and the thought feedback read). The sums run in index order in one invocation, the
// reference's order, so the GPU and the oracle round alike; that invocation reads the row from
// workgroup memory, which all invocations fill 256 values at a time.

override C: u32 = 1u;
override EPS: f32 = 1e-5;
override OUT_AT_POS: bool = false;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const CHUNK: u32 = 256u;

var<workgroup> chunk: array<f32, 256>;
var<workgroup> stats: vec2<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let r = wid.x;
    let base = r * C;
    // Pass 1: mean.
    var sum = 0.0;
    for (var c0 = 0u; c0 < C; c0 += CHUNK) {
        let len = min(CHUNK, C - c0);
        for (var j = lid.x; j < len; j += 64u) {
            chunk[j] = x[base + c0 + j];
        }
        workgroupBarrier();
        if (lid.x == 0u) {
            for (var j = 0u; j < len; j++) {
                sum += chunk[j];
            }
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        stats.x = sum / f32(C);
    }
    workgroupBarrier();
    let mean = stats.x;
    // Pass 2: biased variance around the mean.
    var sq = 0.0;
    for (var c0 = 0u; c0 < C; c0 += CHUNK) {
        let len = min(CHUNK, C - c0);
        for (var j = lid.x; j < len; j += 64u) {
            chunk[j] = x[base + c0 + j];
        }
        workgroupBarrier();
        if (lid.x == 0u) {
            for (var j = 0u; j < len; j++) {
                let d = chunk[j] - mean;
                sq += d * d;
            }
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        stats.y = 1.0 / sqrt(sq / f32(C) + EPS);
    }
    workgroupBarrier();
    let inv = stats.y;
    var o = r;
    if (OUT_AT_POS) {
        o = step.t0 + r;
    }
    for (var c = lid.x; c < C; c += 64u) {
        y[o * C + c] = (x[base + c] - mean) * inv * g[c] + b[c];
    }
}
