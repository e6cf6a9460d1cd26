//! Products with a Conv1D weight `[K, N]` (GPT-2's layout), int8 or f32: matvec.wgsl for one
//! row, matmul.wgsl (tiled) for several; linear_common.wgsl holds their weight access and the
//! epilogue (store, bias + GELU, residual add).

use super::{div_up, flag, Access, Driver, Kernel, Step, StepTable, COMMON_WGSL};

/// Prepended to matvec and matmul: weight access and the bias / GELU / residual epilogue.
pub const LINEAR_COMMON_WGSL: &str = include_str!("linear_common.wgsl");
pub const MATVEC_WGSL: &str = include_str!("matvec.wgsl");
pub const MATMUL_WGSL: &str = include_str!("matmul.wgsl");

/// What a matrix product does with `acc = b + x W`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Epilogue {
    /// `y = acc`
    Store = 0,
    /// `y = gelu(acc)` (bias + tanh-GELU)
    Gelu = 1,
    /// `y += acc` (residual add)
    Residual = 2,
}

/// Matrix-vector (matvec.wgsl) and matrix-matrix (matmul.wgsl) products with a Conv1D weight
/// `[K, N]`, int8 or f32. Both share one bind-group layout: x, w, scales, bias, y (out).
pub struct Linear {
    /// Bound with the buffers above; `matmul` shares its layout and bind group.
    pub matvec: Kernel<5>,
    pub matmul: Kernel<5>,
    n: usize,
}

impl Linear {
    pub fn new(
        device: &wgpu::Device,
        k: usize,
        n: usize,
        int8: bool,
        epilogue: Epilogue,
    ) -> Linear {
        use Access::*;
        let consts = [
            ("K", k as f64),
            ("N", n as f64),
            ("INT8", flag(int8)),
            ("MODE", epilogue as u32 as f64),
        ];
        let access = [Read, Read, Read, Read, ReadWrite];
        Linear {
            matvec: Kernel::new(
                device,
                "matvec",
                &[COMMON_WGSL, LINEAR_COMMON_WGSL, MATVEC_WGSL],
                "main",
                access,
                &consts,
            ),
            matmul: Kernel::new(
                device,
                "matmul",
                &[COMMON_WGSL, LINEAR_COMMON_WGSL, MATMUL_WGSL],
                "main",
                access,
                &consts,
            ),
            n,
        }
    }
}

impl Linear {
    /// The kernel and grid for `rows` rows: the tiled matrix-matrix kernel (`tiled`), or the
    /// matrix-vector one for a single row.
    fn choice(&self, rows: u32, tiled: bool) -> (&Kernel<5>, (u32, u32, u32)) {
        let n4 = self.n.div_ceil(4);
        if tiled {
            (&self.matmul, (div_up(n4, 16), div_up(rows as usize, 16), 1))
        } else {
            assert_eq!(rows, 1, "the matrix-vector kernel runs one row");
            (&self.matvec, (div_up(n4, 64), 1, 1))
        }
    }

    /// Records step record `index` with the kernel asked for (tests run both on one row);
    /// [`Driver::dispatch`] picks by the row count.
    pub fn dispatch_tiled(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        bg: &wgpu::BindGroup,
        steps: &StepTable,
        index: usize,
        tiled: bool,
    ) {
        let (kernel, groups) = self.choice(steps.step(index).rows, tiled);
        kernel.dispatch(pass, bg, steps.offset(index), groups);
    }
}

/// One row: the matrix-vector kernel; several: the tiled matrix-matrix kernel.
impl Driver<5> for Linear {
    fn kernel(&self, step: Step) -> &Kernel<5> {
        self.choice(step.rows, step.rows > 1).0
    }

    fn groups(&self, step: Step) -> (u32, u32, u32) {
        self.choice(step.rows, step.rows > 1).1
    }
}

/// GPT-2's tanh approximation of GELU, in f64.
pub fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
}

/// The CPU reference for one row: `acc[j] = bias[j] + sum_i x[i] w[i, j]` (`w` row-major
/// `[K, N]`, dequantized), then the epilogue: `acc`, `gelu(acc)`, or `y_before[j] + acc`.
pub fn reference(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    epilogue: Epilogue,
    y_before: &[f32],
) -> Vec<f64> {
    let n = bias.len();
    (0..n)
        .map(|j| {
            let acc = bias[j] as f64
                + x.iter()
                    .enumerate()
                    .map(|(i, &xi)| xi as f64 * w[i * n + j] as f64)
                    .sum::<f64>();
            match epilogue {
                Epilogue::Store => acc,
                Epilogue::Gelu => gelu(acc),
                Epilogue::Residual => y_before[j] as f64 + acc,
            }
        })
        .collect()
}
