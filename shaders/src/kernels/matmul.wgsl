// Matrix-matrix product for `rows` positions at once (the prompt): x [M, K] times W [K, N]:
//   y[r, j] = epilogue(b[j] + sum_{i<K} x[r, i] W[i, j]),  M = step.rows
// (W, scales, epilogue: see linear_common.wgsl). Tiled: a 16x16 workgroup computes 16 rows x 64
// columns; tiles of 16 inputs of x and of dequantized W are staged in workgroup memory. Each
// invocation owns one row and four columns and still sums in increasing i from the bias
// (out-of-range tile entries are zeros), so it rounds like matvec and the reference.

const TILE: u32 = 16u;

var<workgroup> xs: array<array<f32, 16>, 16>;
var<workgroup> ws: array<array<vec4<f32>, 16>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let j4 = wid.x * TILE + tx;
    let r = wid.y * TILE + ty;
    let m = step.rows;
    let col_ok = j4 < n4();
    var s = vec4<f32>(1.0);
    var acc = vec4<f32>(0.0);
    if (col_ok) {
        s = scale4(j4);
        acc = bias4(j4);
    }
    // Row and column of the tile entry this invocation loads.
    let load_r = wid.y * TILE + ty;
    let load_j4 = wid.x * TILE + tx;
    for (var i0 = 0u; i0 < K; i0 += TILE) {
        var xv = 0.0;
        if (load_r < m && i0 + tx < K) {
            xv = x[load_r * K + i0 + tx];
        }
        xs[ty][tx] = xv;
        var wv = vec4<f32>(0.0);
        if (load_j4 < n4() && i0 + ty < K) {
            wv = w4(i0 + ty, load_j4, scale4(load_j4));
        }
        ws[ty][tx] = wv;
        workgroupBarrier();
        for (var ii = 0u; ii < TILE; ii++) {
            acc += xs[ty][ii] * ws[ii][tx];
        }
        workgroupBarrier();
    }
    if (col_ok && r < m) {
        store4(r, j4, acc);
    }
}
