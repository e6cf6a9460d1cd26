//! Problems and the data drawn from them: `a + b` and its column-by-column chain of thought
//! ([`problem`]), the seeded, disjoint splits ([`data`], [`draw`]; [`stratified`]: by digit-count
//! class) and the held-out sets by operand-length pair, carry chains included ([`lengths`]).

pub mod data;
pub mod draw;
pub mod lengths;
pub mod problem;
pub mod stratified;
