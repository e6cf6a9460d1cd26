//! How two engines' numbers are compared: the one error measure every parity test uses.

/// `‖got − want‖ / ‖want‖`, in f64. Panics on a length mismatch, on a (near) zero reference
/// (the comparison would prove nothing) and on a non-finite value in `got` (poison left in a
/// buffer, or a NaN produced): it is meant for checks.
pub fn relative_error<A, B>(got: &[A], want: &[B]) -> f64
where
    A: Copy + Into<f64>,
    B: Copy + Into<f64>,
{
    assert_eq!(got.len(), want.len(), "compared vectors differ in length");
    let norm: f64 = want.iter().map(|&y| y.into().powi(2)).sum::<f64>().sqrt();
    assert!(
        norm > 1e-6,
        "the reference is (near) zero: the comparison would prove nothing"
    );
    let mut diff = 0.0;
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        let a: f64 = a.into();
        assert!(
            a.is_finite(),
            "value {i} is {a} (poison left or NaN produced)"
        );
        diff += (a - b.into()).powi(2);
    }
    diff.sqrt() / norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_the_difference_against_the_reference_norm() {
        assert_eq!(relative_error(&[3.0f32, 4.0], &[3.0f32, 4.0]), 0.0);
        let e = relative_error(&[3.0f32, 5.0], &[3.0f64, 4.0]);
        assert!((e - 0.2).abs() < 1e-12, "{e}");
    }

    #[test]
    #[should_panic(expected = "near) zero")]
    fn refuses_a_zero_reference() {
        relative_error(&[1.0f32], &[0.0f32]);
    }

    #[test]
    #[should_panic(expected = "NaN")]
    fn refuses_non_finite_values() {
        relative_error(&[f32::NAN, 1.0], &[1.0f32, 1.0]);
    }
}
