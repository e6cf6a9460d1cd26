// Weight access shared by matvec.wgsl and matmul.wgsl (prepended to both by the host).
// W is a Conv1D weight [K, N] (GPT-2's [in, out]); packed along N in words of 4 outputs:
//   INT8: W[i, 4j4 + l] = q[i, 4j4 + l] * s[4j4 + l]   (one f16 scale per output column, as f32)
//   f32:  W[i, 4j4 + l] stored as is.
// Epilogue MODE: 0 y = acc, 1 y = gelu(acc) (bias + tanh-GELU), 2 y = y + acc (residual add),
// where acc = b + sum_i x[i] W[i, :], summed from the bias in increasing i, the reference's order.

override K: u32 = 1u;
override N: u32 = 1u;
override INT8: bool = false;
override MODE: u32 = 0u;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

fn n4() -> u32 {
    return (N + 3u) / 4u;
}

fn scale4(j4: u32) -> vec4<f32> {
    if (INT8) {
        return vec4<f32>(scale[4u * j4], scale[4u * j4 + 1u], scale[4u * j4 + 2u], scale[4u * j4 + 3u]);
    }
    return vec4<f32>(1.0);
}

// Dequantized W[i, 4j4 .. 4j4+4]; `s` is scale4(j4).
fn w4(i: u32, j4: u32, s: vec4<f32>) -> vec4<f32> {
    let k = i * n4() + j4;
    if (INT8) {
        return unpack_i8x4(w[k]) * s;
    }
    return vec4<f32>(
        bitcast<f32>(w[4u * k]),
        bitcast<f32>(w[4u * k + 1u]),
        bitcast<f32>(w[4u * k + 2u]),
        bitcast<f32>(w[4u * k + 3u]),
    );
}

fn bias4(j4: u32) -> vec4<f32> {
    var b = vec4<f32>(0.0);
    for (var l = 0u; l < 4u; l++) {
        let j = 4u * j4 + l;
        if (j < N) {
            b[l] = bias[j];
        }
    }
    return b;
}

// Writes the outputs 4j4 .. 4j4+4 of row r through the epilogue.
fn store4(r: u32, j4: u32, acc: vec4<f32>) {
    for (var l = 0u; l < 4u; l++) {
        let j = 4u * j4 + l;
        if (j < N) {
            let o = r * N + j;
            y[o] = epilogue(MODE, y[o], acc[l]);
        }
    }
}
