// Matrix-vector product for one position (decode): row 0 of x [1, K] times W [K, N]:
//   y[j] = epilogue(b[j] + sum_{i<K} x[i] W[i, j])
// (W, scales, epilogue: see linear_common.wgsl). Each invocation owns four consecutive outputs
// and reads one packed word per input, so a row of W is read once, coalesced across invocations.

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j4 = gid.x;
    if (j4 >= n4()) {
        return;
    }
    let s = scale4(j4);
    var acc = bias4(j4);
    for (var i = 0u; i < K; i++) {
        acc += x[i] * w4(i, j4, s);
    }
    store4(0u, j4, acc);
}
