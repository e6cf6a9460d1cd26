//! The reference engine and what is measured with it: the plain-Rust forward pass every other
//! engine is checked against ([`reference`]), thought edits ([`intervention`]) and their measured
//! effects ([`effects`]), linear probes of the thoughts ([`probes`]), golden activations for the
//! other engines' parity tests ([`golden`]) and the one error measure they use ([`compare`]).

pub mod compare;
pub mod effects;
pub mod golden;
pub mod intervention;
pub mod probes;
pub mod reference;
