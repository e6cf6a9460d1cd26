//! Linear probes of continuous thoughts, as the trainer fits them (`coconut probe`) and as every
//! reader uses them (the CLI's interventions, the page's inspector): what each probe reads, its
//! weights, its held-out score, and the file that holds a stage's probes.
//!
//! A probe reads a raw thought `h` (the vector fed in at a thought slot) as
//! `argmax(weight · h + bias)`, the standardisation of its fit folded into the weights. The file
//! is safetensors: `slot{j}.column{i}.{quantity}.weight` `[classes, C]` and `.bias` `[classes]`,
//! f32 or f16, with every probe's score as JSON under the metadata key `scores`.

use crate::decoding::argmax;
use crate::problem::Problem;
use crate::weights::with_json_metadata;
use half::f16;
use safetensors::{tensor::TensorView, Dtype};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// What a probe reads about a column (least significant column 0; missing digits count as 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// The digit the column writes, 0..9.
    Digit,
    /// Whether the column carries out, 0 or 1.
    Carry,
    /// The column's two operand digits summed, 0..18 (no carry in).
    InputSum,
}

impl Quantity {
    pub const ALL: [Quantity; 3] = [Quantity::Digit, Quantity::Carry, Quantity::InputSum];

    pub fn classes(self) -> usize {
        match self {
            Quantity::Digit => 10,
            Quantity::Carry => 2,
            Quantity::InputSum => 19,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Quantity::Digit => "digit",
            Quantity::Carry => "carry",
            Quantity::InputSum => "input_sum",
        }
    }

    /// This quantity of column `column` of `problem`.
    pub fn label(self, problem: &Problem, column: usize) -> usize {
        let digit = |n: u64, i: usize| ((n / 10u64.pow(i as u32)) % 10) as usize;
        let mut carry = 0;
        for i in 0..column {
            carry = (digit(problem.a, i) + digit(problem.b, i) + carry) / 10;
        }
        let input = digit(problem.a, column) + digit(problem.b, column);
        match self {
            Quantity::Digit => (input + carry) % 10,
            Quantity::Carry => (input + carry) / 10,
            Quantity::InputSum => input,
        }
    }
}

/// A probe's tensor names without `.weight` / `.bias`.
fn probe_name(s: &ProbeScore) -> String {
    format!("slot{}.column{}.{}", s.slot, s.column, s.quantity.name())
}

/// One probe's score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeScore {
    pub stage: String,
    /// The thought slot (0 = the first thought after `<bot>`).
    pub slot: usize,
    pub column: usize,
    pub quantity: Quantity,
    /// Accuracy (percent) on the held-out problems.
    pub accuracy: f64,
    /// The same probe fitted to shuffled training labels, on the held-out problems.
    pub shuffled: f64,
    /// The most frequent held-out label's share: what always guessing it gets.
    pub majority: f64,
    pub n_fit: usize,
    pub n_test: usize,
}

/// A fitted probe on raw thoughts: `logits = weight · h + bias`, weight `[classes, C]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub classes: usize,
}

impl Probe {
    /// The length of the thoughts it reads (the model's width).
    pub fn width(&self) -> usize {
        self.weight.len() / self.classes.max(1)
    }

    /// `weight · h + bias`; `h` must be [`Probe::width`] long (readers check it once, when the
    /// probes are loaded for a model).
    pub fn logits(&self, h: &[f32]) -> Vec<f32> {
        let c = self.width();
        (0..self.classes)
            .map(|k| {
                let row = &self.weight[k * c..(k + 1) * c];
                self.bias[k] + row.iter().zip(h).map(|(w, x)| w * x).sum::<f32>()
            })
            .collect()
    }

    pub fn predict(&self, h: &[f32]) -> usize {
        argmax(&self.logits(h)) as usize
    }
}

/// What one probe reads from one thought.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeReading {
    pub column: usize,
    pub quantity: Quantity,
    /// The class the probe picks (the digit, 0/1 for the carry, the input sum).
    pub value: usize,
    /// Its softmax probability.
    pub p: f32,
    /// The probe's held-out accuracy and its shuffled-label baseline, in percent, and how many
    /// problems fitted and scored it.
    pub accuracy: f64,
    pub shuffled: f64,
    pub n_fit: usize,
    pub n_test: usize,
}

/// The probes of one stage with their scores, in fitting order (slot, column, quantity).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ThoughtProbes {
    pub scores: Vec<ProbeScore>,
    /// `(slot, column, quantity, probe)` for every score, in the same order.
    pub probes: Vec<(usize, usize, Quantity, Probe)>,
}

/// Why a probes file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{file}: not a probes file: {reason}")]
pub struct ProbesError {
    pub file: String,
    pub reason: String,
}

/// How the weights are stored in a probes file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeDtype {
    F32,
    /// Half the bytes; readings are unchanged to about three significant digits.
    F16,
}

impl ThoughtProbes {
    pub fn get(&self, slot: usize, column: usize, quantity: Quantity) -> Option<&Probe> {
        self.probes
            .iter()
            .find(|(s, c, q, _)| (*s, *c, *q) == (slot, column, quantity))
            .map(|(.., p)| p)
    }

    /// The width of every probe's thoughts, if they agree (None for none or a mix).
    pub fn width(&self) -> Option<usize> {
        let mut widths = self.probes.iter().map(|(.., p)| p.width());
        let first = widths.next()?;
        widths.all(|w| w == first).then_some(first)
    }

    /// The stage every probe was fitted on (its scores name it); refused when there is none or
    /// more than one.
    pub fn stage(&self) -> Result<&str, String> {
        let mut stages = self.scores.iter().map(|s| s.stage.as_str());
        let first = stages.next().ok_or("no probes")?;
        match stages.find(|s| *s != first) {
            None => Ok(first),
            Some(other) => Err(format!("probes of more than one stage ({first}, {other})")),
        }
    }

    /// Refuses probes fitted on another stage than `id` (they read another model's thoughts).
    pub fn check_stage(&self, id: &str) -> Result<(), String> {
        match self.stage()? {
            stage if stage == id => Ok(()),
            stage => Err(format!(
                "probes of {stage}, not of {id}: fitted on another stage's thoughts"
            )),
        }
    }

    /// Thought slots with at least one probe.
    pub fn slots(&self) -> usize {
        self.probes.iter().map(|(s, ..)| s + 1).max().unwrap_or(0)
    }

    /// Only the probes of `quantities` (e.g. what a page shows), with their scores.
    pub fn only(&self, quantities: &[Quantity]) -> ThoughtProbes {
        let keep = |q: &Quantity| quantities.contains(q);
        ThoughtProbes {
            scores: self
                .scores
                .iter()
                .filter(|s| keep(&s.quantity))
                .cloned()
                .collect(),
            probes: self.probes.iter().filter(|p| keep(&p.2)).cloned().collect(),
        }
    }

    /// Every probe of `slot` applied to the thought `h` fed in there.
    pub fn read(&self, slot: usize, h: &[f32]) -> Vec<ProbeReading> {
        self.probes
            .iter()
            .zip(&self.scores)
            .filter(|((s, ..), _)| *s == slot)
            .map(|((_, column, quantity, probe), score)| {
                let logits = probe.logits(h);
                let value = argmax(&logits) as usize;
                let top = logits[value];
                let sum: f32 = logits.iter().map(|l| (l - top).exp()).sum();
                ProbeReading {
                    column: *column,
                    quantity: *quantity,
                    value,
                    p: 1.0 / sum,
                    accuracy: score.accuracy,
                    shuffled: score.shuffled,
                    n_fit: score.n_fit,
                    n_test: score.n_test,
                }
            })
            .collect()
    }

    pub fn to_safetensors(&self, dtype: ProbeDtype) -> Vec<u8> {
        let bytes = |v: &[f32]| -> Vec<u8> {
            match dtype {
                ProbeDtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ProbeDtype::F16 => v
                    .iter()
                    .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                    .collect(),
            }
        };
        let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (slot, column, quantity, probe) in &self.probes {
            let name = format!("slot{slot}.column{column}.{}", quantity.name());
            let c = probe.width();
            data.push((
                format!("{name}.weight"),
                vec![probe.classes, c],
                bytes(&probe.weight),
            ));
            data.push((
                format!("{name}.bias"),
                vec![probe.classes],
                bytes(&probe.bias),
            ));
        }
        let st_dtype = match dtype {
            ProbeDtype::F32 => Dtype::F32,
            ProbeDtype::F16 => Dtype::F16,
        };
        let views = data.iter().map(|(name, shape, bytes)| {
            let view = TensorView::new(st_dtype, shape.clone(), bytes).expect("sizes agree");
            (name.clone(), view)
        });
        let scores = serde_json::to_string(&self.scores).expect("scores serialize");
        let metadata = HashMap::from([("scores".to_string(), scores)]);
        safetensors::serialize(views, Some(metadata)).expect("probes serialize")
    }

    /// Parses a probes file (`file` names it in errors): every tensor named as above, f32 or
    /// f16, shaped for its quantity, each weight with its bias and its score.
    pub fn from_safetensors(file: &str, bytes: &[u8]) -> Result<ThoughtProbes, ProbesError> {
        let err = |reason: String| ProbesError {
            file: file.to_string(),
            reason,
        };
        let (tensors, scores) =
            with_json_metadata::<Vec<ProbeScore>>(bytes, "scores").map_err(err)?;
        let scores = scores.ok_or_else(|| err("no `scores` in the metadata".into()))?;
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>, ProbesError> {
            let t = tensors
                .tensor(name)
                .map_err(|_| err(format!("{name} is missing")))?;
            if t.shape() != shape {
                return Err(err(format!(
                    "{name} has shape {:?}, expected {shape:?}",
                    t.shape()
                )));
            }
            let values: Vec<f32> = match t.dtype() {
                Dtype::F32 => t
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::F16 => t
                    .data()
                    .chunks_exact(2)
                    .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                other => return Err(err(format!("{name} is {other:?}, not f32 or f16"))),
            };
            match values.iter().all(|v| v.is_finite()) {
                true => Ok(values),
                false => Err(err(format!("{name} holds a value that is not finite"))),
            }
        };
        let mut probes = Vec::with_capacity(scores.len());
        let mut width = None;
        for s in &scores {
            let name = probe_name(s);
            let classes = s.quantity.classes();
            let c = match width {
                Some(c) => c,
                None => {
                    let t = tensors
                        .tensor(&format!("{name}.weight"))
                        .map_err(|_| err(format!("{name}.weight is missing")))?;
                    *width.insert(t.shape().get(1).copied().unwrap_or(0))
                }
            };
            let weight = read(&format!("{name}.weight"), &[classes, c])?;
            let bias = read(&format!("{name}.bias"), &[classes])?;
            probes.push((
                s.slot,
                s.column,
                s.quantity,
                Probe {
                    weight,
                    bias,
                    classes,
                },
            ));
        }
        let expected: HashSet<String> = scores
            .iter()
            .flat_map(|s| ["weight", "bias"].map(|part| format!("{}.{part}", probe_name(s))))
            .collect();
        if expected.len() != 2 * scores.len() {
            return Err(err("a probe is scored twice".into()));
        }
        if let Some(extra) = tensors.names().into_iter().find(|n| !expected.contains(*n)) {
            return Err(err(format!("{extra} has no score")));
        }
        Ok(ThoughtProbes { scores, probes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(slot: usize, column: usize, quantity: Quantity) -> ProbeScore {
        ProbeScore {
            stage: "stage1".into(),
            slot,
            column,
            quantity,
            accuracy: 90.0 + column as f64,
            shuffled: 50.0,
            majority: 55.0,
            n_fit: 10,
            n_test: 10,
        }
    }

    /// Two slots, two columns, carry and digit; probe k of a quantity points along axis k.
    fn probes() -> ThoughtProbes {
        let c = 4;
        let mut out = ThoughtProbes::default();
        for slot in 0..2 {
            for column in 0..2 {
                for quantity in [Quantity::Digit, Quantity::Carry] {
                    let classes = quantity.classes();
                    let mut weight = vec![0f32; classes * c];
                    for k in 0..classes.min(c) {
                        weight[k * c + k] = 1.0 + slot as f32;
                    }
                    let bias = (0..classes).map(|k| -(k as f32) * 0.01).collect();
                    out.scores.push(score(slot, column, quantity));
                    out.probes.push((
                        slot,
                        column,
                        quantity,
                        Probe {
                            weight,
                            bias,
                            classes,
                        },
                    ));
                }
            }
        }
        out
    }

    #[test]
    fn labels_follow_the_written_steps() {
        let p = Problem::new(347, 285); // 7+5=12, 4+8+1=13, 3+2+1=6
        let col = |q: Quantity| (0..4).map(|c| q.label(&p, c)).collect::<Vec<_>>();
        assert_eq!(col(Quantity::Digit), [2, 3, 6, 0]);
        assert_eq!(col(Quantity::Carry), [1, 1, 0, 0]);
        assert_eq!(col(Quantity::InputSum), [12, 12, 5, 0]);
    }

    #[test]
    fn reads_a_thought_with_its_scores() {
        let p = probes();
        let readings = p.read(1, &[0.0, 0.0, 3.0, 0.0]);
        assert_eq!(readings.len(), 4, "digit and carry of two columns");
        let digit = &readings[0];
        assert_eq!(
            (digit.column, digit.quantity, digit.value),
            (0, Quantity::Digit, 2)
        );
        assert!(digit.p > 0.97 && digit.p < 0.99, "{}", digit.p); // e^5.98 against nine others near e^0
        assert_eq!((digit.accuracy, digit.shuffled), (90.0, 50.0));
        // The carry probe has two classes, neither along axis 2: class 0 wins by its bias.
        assert_eq!(readings[1].value, 0);
        assert!((readings[1].p - 0.5025).abs() < 1e-3, "{}", readings[1].p);
        assert_eq!(readings[3].accuracy, 91.0);
        assert!(p.read(2, &[0.0; 4]).is_empty(), "no slot 2");
        assert_eq!(p.slots(), 2);
        assert_eq!(p.only(&[Quantity::Carry]).probes.len(), 4);
        assert_eq!(p.width(), Some(4));
    }

    #[test]
    fn round_trips_through_a_file_in_f32_and_f16() {
        let p = probes();
        let back =
            ThoughtProbes::from_safetensors("x", &p.to_safetensors(ProbeDtype::F32)).unwrap();
        assert_eq!(back, p);
        let half = p.to_safetensors(ProbeDtype::F16);
        assert!(half.len() < p.to_safetensors(ProbeDtype::F32).len());
        let back = ThoughtProbes::from_safetensors("x", &half).unwrap();
        assert_eq!(back.scores, p.scores);
        for ((.., a), (.., b)) in back.probes.iter().zip(&p.probes) {
            assert!(a
                .weight
                .iter()
                .zip(&b.weight)
                .all(|(x, y)| (x - y).abs() < 1e-3));
        }
    }

    #[test]
    fn refuses_broken_files() {
        let refused = |bytes: &[u8]| {
            ThoughtProbes::from_safetensors("p.safetensors", bytes)
                .unwrap_err()
                .to_string()
        };
        assert!(refused(b"not safetensors").starts_with("p.safetensors: not a probes file"));
        let good = probes().to_safetensors(ProbeDtype::F32);
        assert!(refused(&good[..good.len() - 9]).contains("probes file"));
        // A score without its tensors.
        let mut extra = probes();
        extra.scores.push(score(5, 0, Quantity::Carry));
        let no_tensor = ThoughtProbes {
            scores: extra.scores,
            probes: probes().probes,
        };
        assert!(refused(&no_tensor.to_safetensors(ProbeDtype::F32))
            .contains("slot5.column0.carry.weight is missing"));
        // Tensors without a score.
        let mut unscored = probes();
        unscored.scores.pop();
        let msg = refused(&unscored.to_safetensors(ProbeDtype::F32));
        assert!(
            msg.contains("slot1.column1.carry.") && msg.ends_with("has no score"),
            "{msg}"
        );
        // A probe with the wrong number of classes for its quantity.
        let mut wrong = probes();
        wrong.probes[1].3.classes = 3;
        wrong.probes[1].3.weight = vec![0.0; 12];
        wrong.probes[1].3.bias = vec![0.0; 3];
        assert!(refused(&wrong.to_safetensors(ProbeDtype::F32))
            .contains("shape [3, 4], expected [2, 4]"));
        // A NaN weight.
        let mut nan = probes();
        nan.probes[0].3.weight[0] = f32::NAN;
        assert!(refused(&nan.to_safetensors(ProbeDtype::F32)).contains("not finite"));
        // No scores at all.
        let bare = safetensors::serialize(Vec::<(String, TensorView)>::new(), None).unwrap();
        assert!(refused(&bare).contains("no `scores`"));
    }
}
