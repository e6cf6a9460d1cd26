//! A GPT-2 checkpoint's tensors, by Hugging Face's names, turned into this project's model tree.
//!
//! Names lose the `transformer.` prefix of `GPT2LMHeadModel` (the bare `gpt2` checkpoint has
//! none), which leaves exactly [`coconut_core::skeleton`]'s names; the causal-mask buffers older
//! transformers saved (`attn.bias`, `attn.masked_bias`) are not weights and are skipped; the LM
//! head must be the token table itself (tied, as GPT-2 is). The shape comes from the tensors:
//! vocabulary and width from `wte`, positions from `wpe`, depth from the blocks present; the
//! head count is not in a state dict and is given. Tensors are read and converted one at a
//! time, so memory holds the converted model and one f32 tensor, never an f32 copy of it all.

use anyhow::{bail, ensure, Context, Result};
use coconut_core::config::ModelConfig;
use coconut_core::skeleton::tensor_specs;
use coconut_core::weights::{ModelWeights, Tensor, WeightDtype};
use std::collections::BTreeMap;

/// What a checkpoint file gives the importer: its tensors' names and shapes, and each one's
/// values on request.
pub trait TensorSource {
    /// The file, for messages.
    fn file(&self) -> String;
    /// Every tensor: name -> (shape, stored dtype as the file names it).
    fn shapes(&self) -> BTreeMap<String, (Vec<usize>, String)>;
    /// One tensor's values in f32.
    fn read_f32(&mut self, name: &str) -> Result<Vec<f32>>;
    /// Whether the LM head `head` is stored as the token table `table` itself (one storage),
    /// `None` where the format cannot tell (then the values are compared).
    fn shares_storage(&self, head: &str, table: &str) -> Option<bool>;
}

const PREFIX: &str = "transformer.";
const HEAD: &str = "lm_head.weight";

/// Whether `name` (prefix removed) is a buffer of older transformers, not a weight.
fn is_mask_buffer(name: &str) -> bool {
    name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias")
}

/// The model's shape, read off the tensors (`n_head` and the LayerNorm epsilon given).
pub fn infer_config(
    shapes: &BTreeMap<String, (Vec<usize>, String)>,
    n_head: usize,
    layer_norm_epsilon: f32,
    file: &str,
) -> Result<ModelConfig> {
    let shape_of = |name: &str| {
        shapes
            .get(name)
            .or_else(|| shapes.get(&format!("{PREFIX}{name}")))
            .map(|(s, _)| s.clone())
            .with_context(|| format!("{file}: no tensor {name}: not a GPT-2 state dict"))
    };
    let (wte, wpe) = (shape_of("wte.weight")?, shape_of("wpe.weight")?);
    ensure!(
        wte.len() == 2 && wpe.len() == 2 && wte[1] == wpe[1],
        "{file}: wte {wte:?} and wpe {wpe:?} are not two tables of one width"
    );
    let n_layer = (0..)
        .take_while(|i| shape_of(&format!("h.{i}.ln_1.weight")).is_ok())
        .count();
    let config = ModelConfig {
        vocab_size: wte[0],
        n_positions: wpe[0],
        n_embd: wte[1],
        n_layer,
        n_head,
        layer_norm_epsilon,
    };
    config
        .validate()
        .with_context(|| format!("{file}: the shape its tensors give"))?;
    Ok(config)
}

/// GPT-2's own vocabulary: a pretrained GPT-2 has this many token rows.
pub const GPT2_VOCAB: usize = 50_257;

/// The rows a model's token table gains when its vocabulary grows from the file's
/// `file_rows` to `config.vocab_size`: drawn N(0, 0.02) from a fixed seed, as transformers'
/// `resize_token_embeddings` initialized new rows in the version the seed used (4.44: the
/// model's `_init_weights`, `initializer_range` 0.02; later versions default to the mean of the
/// old rows).
fn added_rows(file_rows: usize, config: &ModelConfig) -> Vec<f32> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(file_rows as u64);
    (0..(config.vocab_size - file_rows) * config.n_embd)
        .map(|_| (crate::model::normal(&mut rng) * 0.02) as f32)
        .collect()
}

/// Reads every tensor of `source` into the model tree of `config`, stored as `dtype`. A token
/// table with fewer rows than `config.vocab_size` (GPT-2's 50,257 where the seed's family has
/// 50,261) gains the missing rows ([`added_rows`]).
pub fn import_weights(
    source: &mut dyn TensorSource,
    config: &ModelConfig,
    dtype: WeightDtype,
) -> Result<ModelWeights> {
    let file = source.file();
    let shapes = source.shapes();
    // Our name -> the file's name.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut head = None;
    for stored in shapes.keys() {
        let name = stored.strip_prefix(PREFIX).unwrap_or(stored);
        if name == HEAD {
            head = Some(stored.clone());
        } else if !is_mask_buffer(name) {
            if let Some(earlier) = names.insert(name.to_string(), stored.clone()) {
                bail!("{file}: {earlier} and {stored} are the same tensor");
            }
        }
    }
    let specs = tensor_specs(config);
    for name in names.keys() {
        ensure!(
            specs.iter().any(|s| &s.name == name),
            "{file}: tensor {} is not part of a GPT-2 of this shape",
            names[name]
        );
    }
    let mut tensors = BTreeMap::new();
    for spec in &specs {
        let stored = names
            .get(&spec.name)
            .with_context(|| format!("{file}: tensor {} is missing", spec.name))?;
        let (shape, stored_dtype) = &shapes[stored];
        let grows = spec.name == "wte.weight"
            && shape.len() == 2
            && shape[1] == spec.shape[1]
            && shape[0] < spec.shape[0];
        ensure!(
            *shape == spec.shape || grows,
            "{file}: tensor {stored} has shape {shape:?}, a GPT-2 of this shape needs {:?} \
             (Conv1D weights are [in, out])",
            spec.shape
        );
        ensure!(
            matches!(stored_dtype.as_str(), "f32" | "F32" | "f16" | "F16"),
            "{file}: tensor {stored} is stored as {stored_dtype}; f32 and f16 are read"
        );
        let mut values = source.read_f32(stored)?;
        ensure!(
            values.iter().all(|v| v.is_finite()),
            "{file}: tensor {stored} holds a non-finite value (NaN or infinity)"
        );
        if grows {
            values.extend(added_rows(shape[0], config));
        }
        let tensor = Tensor::stored_as(values, spec.shape.clone(), spec.role, dtype);
        tensors.insert(spec.name.clone(), tensor);
    }
    if let Some(head) = head {
        let table_shape = &shapes[&names["wte.weight"]].0;
        ensure!(
            shapes[&head].0 == *table_shape,
            "{file}: {head} has shape {:?}, the token table {table_shape:?}: an untied head is \
             not GPT-2's",
            shapes[&head].0
        );
        check_tied(source, &head, &names["wte.weight"])?;
    }
    Ok(ModelWeights {
        config: config.clone(),
        tensors,
    })
}

/// The LM head must be the token table: one storage, or the same values where the format
/// keeps them apart.
fn check_tied(source: &mut dyn TensorSource, head: &str, table: &str) -> Result<()> {
    let file = source.file();
    match source.shares_storage(head, table) {
        Some(true) => Ok(()),
        _ => {
            let (h, t) = (source.read_f32(head)?, source.read_f32(table)?);
            ensure!(
                h == t,
                "{file}: {head} differs from {table}: an untied head is not GPT-2's (this \
                 project's models read the LM head from the token table)"
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coconut_core::weights::random_weights;

    /// A state dict in memory, named as `GPT2LMHeadModel` names it.
    struct InMemory {
        tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
        tied: bool,
    }

    impl TensorSource for InMemory {
        fn file(&self) -> String {
            "test.pt".into()
        }
        fn shapes(&self) -> BTreeMap<String, (Vec<usize>, String)> {
            self.tensors
                .iter()
                .map(|(k, (s, _))| (k.clone(), (s.clone(), "f32".into())))
                .collect()
        }
        fn read_f32(&mut self, name: &str) -> Result<Vec<f32>> {
            Ok(self.tensors[name].1.clone())
        }
        fn shares_storage(&self, _: &str, _: &str) -> Option<bool> {
            Some(self.tied)
        }
    }

    fn state_dict(config: &ModelConfig) -> InMemory {
        let weights = random_weights(config, 5);
        let mut tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)> = weights
            .tensors
            .iter()
            .map(|(k, t)| (format!("{PREFIX}{k}"), (t.shape.clone(), t.to_f32())))
            .collect();
        let wte = tensors[&format!("{PREFIX}wte.weight")].clone();
        tensors.insert(HEAD.into(), wte);
        tensors.insert(
            format!("{PREFIX}h.0.attn.masked_bias"),
            (vec![], vec![-1e4]),
        );
        InMemory {
            tensors,
            tied: true,
        }
    }

    #[test]
    fn a_state_dict_becomes_the_model_tree_with_its_shape_inferred() {
        let config = ModelConfig::tiny();
        let mut source = state_dict(&config);
        let inferred = infer_config(&source.shapes(), config.n_head, 1e-5, "test.pt").unwrap();
        assert_eq!(inferred, config);
        let imported = import_weights(&mut source, &config, WeightDtype::F32).unwrap();
        assert_eq!(imported, random_weights(&config, 5));
        let int8 = import_weights(&mut source, &config, WeightDtype::Int8).unwrap();
        assert_eq!(int8, random_weights(&config, 5).convert(WeightDtype::Int8));
    }

    #[test]
    fn a_pretrained_gpt2_gains_the_seeds_four_tokens() {
        let file = ModelConfig {
            vocab_size: GPT2_VOCAB,
            n_embd: 8,
            n_layer: 1,
            n_head: 2,
            n_positions: 16,
            ..ModelConfig::tiny()
        };
        let seed = ModelConfig {
            vocab_size: coconut_core::seed::VOCAB,
            ..file.clone()
        };
        let mut source = state_dict(&file);
        let grown = import_weights(&mut source, &seed, WeightDtype::F32).unwrap();
        let again = import_weights(&mut source, &seed, WeightDtype::F32).unwrap();
        assert_eq!(grown, again, "the added rows are drawn from a fixed seed");
        let table = grown.f32("wte.weight");
        let old = random_weights(&file, 5).f32("wte.weight");
        assert_eq!(table.len(), coconut_core::seed::VOCAB * 8);
        assert_eq!(&table[..old.len()], &old[..]);
        let added = &table[old.len()..];
        let mean = added.iter().sum::<f32>() / added.len() as f32;
        let std =
            (added.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / added.len() as f32).sqrt();
        assert!(
            mean.abs() < 0.02 && (0.01..0.04).contains(&std),
            "{mean} {std}"
        );
        // Every other tensor as the file has it.
        assert_eq!(
            grown.f32("wpe.weight"),
            random_weights(&file, 5).f32("wpe.weight")
        );
        // Only the token table grows, and only by rows.
        let mut wide = state_dict(&file);
        let wpe = wide.tensors.get_mut("transformer.wpe.weight").unwrap();
        wpe.0 = vec![8, 8];
        wpe.1.truncate(64);
        let bigger = ModelConfig {
            n_positions: 16,
            ..seed.clone()
        };
        let e = import_weights(&mut wide, &bigger, WeightDtype::F32).unwrap_err();
        assert!(e.to_string().contains("wpe.weight has shape [8, 8]"), "{e}");
    }

    #[test]
    fn what_is_not_gpt2_is_refused_by_name() {
        let config = ModelConfig::tiny();
        let refused = |edit: &dyn Fn(&mut InMemory)| {
            let mut source = state_dict(&config);
            edit(&mut source);
            import_weights(&mut source, &config, WeightDtype::Int8)
                .unwrap_err()
                .to_string()
        };
        let untied = refused(&|s| {
            s.tied = false;
            s.tensors.get_mut(HEAD).unwrap().1[0] += 0.01;
        });
        assert!(untied.contains("lm_head.weight differs"), "{untied}");
        // The same values in a storage of their own are the same head.
        let mut equal = state_dict(&config);
        equal.tied = false;
        assert!(import_weights(&mut equal, &config, WeightDtype::F32).is_ok());
        let transposed = refused(&|s| {
            let t = s
                .tensors
                .get_mut("transformer.h.0.attn.c_attn.weight")
                .unwrap();
            t.0 = vec![t.0[1], t.0[0]];
        });
        assert!(
            transposed.contains("h.0.attn.c_attn.weight has shape [48, 16]"),
            "{transposed}"
        );
        let nan = refused(&|s| s.tensors.get_mut("transformer.ln_f.bias").unwrap().1[3] = f32::NAN);
        assert!(nan.contains("ln_f.bias holds a non-finite value"), "{nan}");
        let missing = refused(&|s| {
            s.tensors.remove("transformer.h.1.mlp.c_fc.bias");
        });
        assert!(
            missing.contains("h.1.mlp.c_fc.bias is missing"),
            "{missing}"
        );
        let extra = refused(&|s| {
            s.tensors.insert(
                "transformer.h.0.attn.q_proj.weight".into(),
                (vec![1], vec![0.0]),
            );
        });
        assert!(
            extra.contains("q_proj.weight is not part of a GPT-2"),
            "{extra}"
        );
        let shapes = state_dict(&config).shapes();
        let mut no_wpe = shapes.clone();
        no_wpe.remove("transformer.wpe.weight");
        let err = infer_config(&no_wpe, 2, 1e-5, "test.pt")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no tensor wpe.weight"), "{err}");
        let err = infer_config(&shapes, 3, 1e-5, "test.pt").unwrap_err();
        assert!(
            format!("{err:#}").contains("multiple of n_head (3)"),
            "{err:#}"
        );
    }
}
