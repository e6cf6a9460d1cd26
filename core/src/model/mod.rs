//! The model and its files: the GPT-2 configuration ([`config`]), its tree of tensors
//! ([`skeleton`]), stage weight files in f32, f16 or int8 ([`weights`]) and a matrix kept as
//! stored ([`stored`]), the weights folder's manifest ([`manifest`]) with the family its stages
//! follow ([`family`]), and bounded reading of its files ([`files`]).

pub mod config;
pub mod family;
pub mod files;
pub mod manifest;
pub mod skeleton;
pub mod stored;
pub mod weights;
