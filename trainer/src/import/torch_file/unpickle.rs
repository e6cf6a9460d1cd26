//! The restricted unpickler behind [`super`]: it understands exactly what `torch.save` writes for
//! a plain state dict and nothing more.
//!
//! It is an interpreter of a tiny subset of the pickle machine, not a pickle library: no global is
//! ever resolved to code; the four kinds of object a state dict is made of (an `OrderedDict`, a
//! tensor rebuilt by `torch._utils._rebuild_tensor_v2`, a storage reference, and the plain values
//! inside them) are built as Rust values, and any other opcode or global stops the parse with its
//! name. Every structure the input can grow is bounded by [`Limits`]: the stack, the mark stack,
//! the memo, the total number of values built, how deeply containers nest, string lengths and
//! the number of dimensions. The memo never hands out a second handle on a dict or list (a real
//! state dict never needs one), so what this reader sees is what Python would have built.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::{DType, Limits, TensorRecord};

/// What is wrong with a `data.pkl`, without the file's name (the archive layer adds it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickleError {
    #[error("ends at byte {at}, before its STOP opcode")]
    Truncated { at: usize },
    #[error(
        "uses pickle opcode {name} (0x{op:02x}) at byte {at}, which a plain state dict does not \
         need: only a plain state dict is accepted"
    )]
    Opcode {
        op: u8,
        name: &'static str,
        at: usize,
    },
    #[error("asks for global {module}.{name}: only a plain state dict is accepted")]
    ForbiddenGlobal { module: String, name: String },
    #[error("{what} at byte {at}: only a plain state dict is accepted")]
    Unsupported { what: String, at: usize },
    #[error("is malformed at byte {at}: {reason}")]
    Malformed { at: usize, reason: String },
    #[error("goes past the limit of {limit} {what} at byte {at}")]
    Limit {
        what: &'static str,
        limit: usize,
        at: usize,
    },
    #[error("is not a plain state dict: {0}")]
    NotStateDict(String),
}

/// The only callables a state dict's pickle names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    Storage(DType),
}

/// The values the subset can build. Tuples are shared (`Rc`) so that the memo hands them out in
/// O(1); dicts and lists are owned by the stack only (see [`Value::MemoizedMutable`]).
#[derive(Debug, Clone)]
enum Value {
    None,
    /// `requires_grad` and the like: only the kind matters, never the value.
    Bool,
    Int(i64),
    /// Accepted where torch versions write one (metadata); no tensor field is a float.
    Float,
    Str(Rc<str>),
    Tuple(Rc<[Value]>, u8),
    List(Vec<Value>, u8),
    Dict(Dict),
    Global(Global),
    Storage(Rc<Storage>),
    Tensor(Rc<TensorRecord>),
    /// What the memo keeps for a dict or list: a real state dict memoizes them but never reads
    /// them back, and a copy would diverge from Python's shared object, so reading one is refused.
    MemoizedMutable(&'static str),
}

#[derive(Debug, Clone)]
struct Dict {
    entries: Vec<(Value, Value)>,
    depth: u8,
    ordered: bool,
}

/// One `("storage", torch.XStorage, key, location, numel)` persistent id.
#[derive(Debug, Clone)]
struct Storage {
    dtype: DType,
    key: String,
    location: String,
    numel: usize,
}

impl Value {
    fn depth(&self) -> u8 {
        match self {
            Value::Tuple(_, d) | Value::List(_, d) => *d,
            Value::Dict(dict) => dict.depth,
            _ => 0,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool => "a bool",
            Value::Int(_) => "an int",
            Value::Float => "a float",
            Value::Str(_) => "a string",
            Value::Tuple(..) => "a tuple",
            Value::List(..) => "a list",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a global",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
            Value::MemoizedMutable(_) => "a shared dict or list",
        }
    }
}

/// Parses a `data.pkl` into its tensors, in the file's order, with names, dtypes, sizes, strides
/// and storages exactly as declared. Nothing here checks a declaration against the archive
/// (contiguity, extents, record sizes): [`super::TorchFile::open`] does, before any tensor is read.
pub fn parse_state_dict(bytes: &[u8], limits: &Limits) -> Result<Vec<TensorRecord>, PickleError> {
    if bytes.len() as u64 > limits.max_pickle_bytes {
        return Err(PickleError::Limit {
            what: "bytes of pickle",
            limit: usize::try_from(limits.max_pickle_bytes).unwrap_or(usize::MAX),
            at: 0,
        });
    }
    let mut machine = Machine {
        data: bytes,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        limits,
        built: 0,
        storages: HashMap::new(),
    };
    let root = machine.run()?;
    state_dict_of(root, limits)
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    limits: &'a Limits,
    /// Values pushed so far: bounds the total memory the input can make us hold.
    built: usize,
    /// Every storage key seen, with its dtype: declarations of one key must agree on it (each
    /// tensor's declared element count is checked against the record on its own).
    storages: HashMap<String, DType>,
}

impl Machine<'_> {
    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            let at = self.pos;
            let op = self.byte()?;
            if op == b'.' {
                return self.stop(at);
            }
            self.step(op, at)?;
        }
    }

    /// One opcode other than STOP. The set is the state dict's (docs/seed-format.md section 10)
    /// plus the spellings other torch and pickle versions use for the same values.
    fn step(&mut self, op: u8, at: usize) -> Result<(), PickleError> {
        match op {
            0x80 => self.proto(at)?,
            0x95 => self.frame(at)?,
            b'c' => {
                let module = self.line(at)?;
                let name = self.line(at)?;
                let global = resolve(&module, &name)?;
                self.push(Value::Global(global), at)?;
            }
            0x93 => self.stack_global(at)?,
            b'(' => self.mark(at)?,
            b')' => self.push_tuple(Vec::new(), at)?,
            b't' => {
                let items = self.pop_mark(at)?;
                self.push_tuple(items, at)?;
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let items = self.pop_n(n, at)?;
                self.push_tuple(items, at)?;
            }
            b']' => self.push(Value::List(Vec::new(), 1), at)?,
            b'}' => self.push(Value::Dict(Dict::empty(false)), at)?,
            b'a' | b'e' => self.append(op == b'e', at)?,
            b's' | b'u' => self.set_items(op == b'u', at)?,
            b'R' => self.reduce(at)?,
            b'b' => self.build(at)?,
            b'Q' => self.persistent_id(at)?,
            _ => return self.scalar(op, at),
        }
        Ok(())
    }

    /// Opcodes that push one plain value, or touch the memo.
    fn scalar(&mut self, op: u8, at: usize) -> Result<(), PickleError> {
        let value = match op {
            b'X' => {
                let n = self.le_uint(4, at)?;
                self.string(n, at)?
            }
            0x8c | b'U' => {
                let n = u64::from(self.byte()?);
                self.string(n, at)?
            }
            0x8d => {
                let n = self.le_uint(8, at)?;
                self.string(n, at)?
            }
            b'T' => {
                let n = self.le_uint(4, at)?;
                if n > i32::MAX as u64 {
                    return Err(malformed(at, "BINSTRING with a negative length"));
                }
                self.string(n, at)?
            }
            b'J' => Value::Int(i64::from(self.le_uint(4, at)? as u32 as i32)),
            b'K' => Value::Int(i64::from(self.byte()?)),
            b'M' => Value::Int(self.le_uint(2, at)? as i64),
            0x8a => self.long1(at)?,
            b'G' => {
                self.take(8, at)?;
                Value::Float
            }
            b'N' => Value::None,
            0x88 | 0x89 => Value::Bool,
            b'q' | b'r' | 0x94 => return self.memo_put(op, at),
            b'h' | b'j' => return self.memo_get(op, at),
            _ => {
                return Err(PickleError::Opcode {
                    op,
                    name: opcode_name(op),
                    at,
                })
            }
        };
        self.push(value, at)
    }

    fn stop(&mut self, at: usize) -> Result<Value, PickleError> {
        if !self.marks.is_empty() {
            return Err(malformed(at, "STOP inside an unclosed MARK"));
        }
        if self.pos != self.data.len() {
            return Err(malformed(at, "bytes after STOP"));
        }
        if self.stack.len() != 1 {
            return Err(malformed(
                at,
                &format!("STOP with {} values on the stack, not 1", self.stack.len()),
            ));
        }
        Ok(self.stack.pop().unwrap_or(Value::None))
    }

    fn proto(&mut self, at: usize) -> Result<(), PickleError> {
        let version = self.byte()?;
        if !(2..=5).contains(&version) || at != 0 {
            return Err(malformed(
                at,
                &format!("PROTO {version} (a state dict is written with protocol 2 to 5, first)"),
            ));
        }
        Ok(())
    }

    /// Protocol 4's FRAME only announces how many bytes follow; it changes no value.
    fn frame(&mut self, at: usize) -> Result<(), PickleError> {
        let n = self.le_uint(8, at)?;
        if n > (self.data.len() - self.pos) as u64 {
            return Err(PickleError::Truncated { at });
        }
        Ok(())
    }

    fn stack_global(&mut self, at: usize) -> Result<(), PickleError> {
        let mut pair = self.pop_n(2, at)?;
        let name = pair.pop();
        let module = pair.pop();
        let (Some(Value::Str(module)), Some(Value::Str(name))) = (module, name) else {
            return Err(malformed(at, "STACK_GLOBAL of values that are not strings"));
        };
        let global = resolve(&printable(&module, at)?, &printable(&name, at)?)?;
        self.push(Value::Global(global), at)
    }

    fn mark(&mut self, at: usize) -> Result<(), PickleError> {
        if self.marks.len() >= self.limits.max_marks {
            return Err(limit("nested MARKs", self.limits.max_marks, at));
        }
        self.marks.push(self.stack.len());
        Ok(())
    }

    fn append(&mut self, many: bool, at: usize) -> Result<(), PickleError> {
        let items = if many {
            self.pop_mark(at)?
        } else {
            self.pop_n(1, at)?
        };
        let nesting = self.limits.max_nesting;
        let Some(Value::List(list, depth)) = self.stack.last_mut() else {
            return Err(malformed(at, "APPEND to something that is not a list"));
        };
        for item in items {
            *depth = deeper(*depth, &item, nesting, at)?;
            list.push(item);
        }
        Ok(())
    }

    fn set_items(&mut self, many: bool, at: usize) -> Result<(), PickleError> {
        let items = if many {
            self.pop_mark(at)?
        } else {
            self.pop_n(2, at)?
        };
        if items.len() % 2 != 0 {
            return Err(malformed(at, "SETITEMS with an odd number of values"));
        }
        let nesting = self.limits.max_nesting;
        let Some(Value::Dict(dict)) = self.stack.last_mut() else {
            return Err(malformed(at, "SETITEM on something that is not a dict"));
        };
        let mut items = items.into_iter();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            dict.depth = deeper(dict.depth, &key, nesting, at)?;
            dict.depth = deeper(dict.depth, &value, nesting, at)?;
            dict.entries.push((key, value));
        }
        Ok(())
    }

    fn reduce(&mut self, at: usize) -> Result<(), PickleError> {
        let mut pair = self.pop_n(2, at)?;
        let (Some(args), Some(callable)) = (pair.pop(), pair.pop()) else {
            return Err(malformed(at, "REDUCE needs two values"));
        };
        let Value::Tuple(args, _) = args else {
            return Err(malformed(at, "REDUCE with arguments that are not a tuple"));
        };
        let value = match callable {
            Value::Global(Global::OrderedDict) if args.is_empty() => Value::Dict(Dict::empty(true)),
            Value::Global(Global::OrderedDict) => {
                return Err(unsupported(
                    at,
                    "calls collections.OrderedDict with arguments",
                ))
            }
            Value::Global(Global::RebuildTensorV2) => self.tensor(&args, at)?,
            Value::Global(Global::Storage(dtype)) => {
                return Err(unsupported(
                    at,
                    &format!("calls torch.{} directly", dtype.storage_name()),
                ))
            }
            other => return Err(malformed(at, &format!("REDUCE calls {}", other.kind()))),
        };
        self.push(value, at)
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks
    /// [, metadata])`, with no hooks and no metadata (torch records only conj/neg bits there, which
    /// would change the values read).
    fn tensor(&mut self, args: &[Value], at: usize) -> Result<Value, PickleError> {
        let bad = |what: &str| malformed(at, &format!("_rebuild_tensor_v2 {what}"));
        if !(6..=7).contains(&args.len()) {
            return Err(bad(&format!("with {} arguments, not 6 or 7", args.len())));
        }
        let Value::Storage(storage) = &args[0] else {
            return Err(bad("of something that is not a storage"));
        };
        let offset = non_negative(&args[1]).ok_or_else(|| bad("with a bad storage offset"))?;
        let shape = self.dims(&args[2], at)?;
        let stride = self.dims(&args[3], at)?;
        if shape.len() != stride.len() {
            return Err(bad("with sizes and strides of different lengths"));
        }
        if !matches!(args[4], Value::Bool) {
            return Err(bad("with requires_grad that is not a bool"));
        }
        if !is_empty_dict(&args[5]) {
            return Err(unsupported(at, "a tensor with backward hooks"));
        }
        if args.len() == 7 && !(matches!(args[6], Value::None) || is_empty_dict(&args[6])) {
            return Err(unsupported(
                at,
                "a tensor with metadata (conjugate or negative bit)",
            ));
        }
        Ok(Value::Tensor(Rc::new(TensorRecord {
            name: String::new(),
            dtype: storage.dtype,
            shape,
            stride,
            storage_key: storage.key.clone(),
            storage_offset: offset,
            storage_numel: storage.numel,
            location: storage.location.clone(),
        })))
    }

    fn dims(&self, value: &Value, at: usize) -> Result<Vec<usize>, PickleError> {
        let items: &[Value] = match value {
            Value::Tuple(items, _) => items,
            Value::List(items, _) => items,
            _ => return Err(malformed(at, "tensor size or stride that is not a tuple")),
        };
        if items.len() > self.limits.max_dims {
            return Err(limit("dimensions", self.limits.max_dims, at));
        }
        items
            .iter()
            .map(|v| non_negative(v).ok_or_else(|| malformed(at, "negative or non-integer size")))
            .collect()
    }

    /// The only BUILD a state dict has: the root `OrderedDict` gets its `_metadata` attribute
    /// (per-module versions, which say nothing about the tensors and are dropped).
    fn build(&mut self, at: usize) -> Result<(), PickleError> {
        let state = self.pop_n(1, at)?.pop();
        let Some(Value::Dict(state)) = state else {
            return Err(unsupported(at, "BUILD with a state that is not a dict"));
        };
        let only_metadata = state.entries.len() == 1
            && matches!(&state.entries[0], (Value::Str(k), Value::Dict(_)) if &**k == "_metadata");
        match self.stack.last() {
            Some(Value::Dict(target)) if target.ordered && only_metadata => Ok(()),
            Some(Value::Dict(target)) if target.ordered => Err(unsupported(
                at,
                "BUILD setting attributes other than _metadata on the OrderedDict",
            )),
            Some(other) => Err(unsupported(at, &format!("BUILD of {}", other.kind()))),
            None => Err(malformed(at, "BUILD on an empty stack")),
        }
    }

    fn persistent_id(&mut self, at: usize) -> Result<(), PickleError> {
        let pid = self.pop_n(1, at)?.pop();
        let bad = || {
            unsupported(
                at,
                "a persistent id other than (\"storage\", torch.<T>Storage, key, location, numel)",
            )
        };
        let Some(Value::Tuple(fields, _)) = pid else {
            return Err(bad());
        };
        let [Value::Str(tag), Value::Global(Global::Storage(dtype)), Value::Str(key), Value::Str(location), numel] =
            &fields[..]
        else {
            return Err(bad());
        };
        if &**tag != "storage" {
            return Err(bad());
        }
        let numel = non_negative(numel).ok_or_else(bad)?;
        let storage = Storage {
            dtype: *dtype,
            key: storage_key(key, at)?,
            location: printable(location, at)?,
            numel,
        };
        // torch keeps the first declaration of a key and ignores the dtype of later ones;
        // a key declared with two dtypes would be read differently here and there.
        match self.storages.get(&storage.key) {
            Some(&dtype) if dtype != storage.dtype => {
                return Err(malformed(
                    at,
                    &format!(
                        "storage {} declared as both {dtype} and {}",
                        storage.key, storage.dtype
                    ),
                ))
            }
            Some(_) => {}
            None => {
                if self.storages.len() >= self.limits.max_tensors {
                    return Err(limit("storages", self.limits.max_tensors, at));
                }
                self.storages.insert(storage.key.clone(), storage.dtype);
            }
        }
        let storage = Rc::new(storage);
        self.push(Value::Storage(storage), at)
    }

    fn memo_put(&mut self, op: u8, at: usize) -> Result<(), PickleError> {
        let index = match op {
            b'q' => u32::from(self.byte()?),
            b'r' => self.le_uint(4, at)? as u32,
            _ => u32::try_from(self.memo.len()).unwrap_or(u32::MAX),
        };
        let Some(top) = self.stack.last() else {
            return Err(malformed(at, "memo store from an empty stack"));
        };
        let entry = match top {
            Value::List(..) => Value::MemoizedMutable("list"),
            Value::Dict(_) => Value::MemoizedMutable("dict"),
            other => other.clone(),
        };
        if self.memo.len() >= self.limits.max_memo && !self.memo.contains_key(&index) {
            return Err(limit("memo entries", self.limits.max_memo, at));
        }
        self.memo.insert(index, entry);
        Ok(())
    }

    fn memo_get(&mut self, op: u8, at: usize) -> Result<(), PickleError> {
        let index = match op {
            b'h' => u32::from(self.byte()?),
            _ => self.le_uint(4, at)? as u32,
        };
        let value = match self.memo.get(&index) {
            None => {
                return Err(malformed(
                    at,
                    &format!("memo entry {index} read before set"),
                ))
            }
            Some(Value::MemoizedMutable(kind)) => {
                return Err(unsupported(
                    at,
                    &format!("a {kind} shared through the memo"),
                ))
            }
            Some(value) => value.clone(),
        };
        self.push(value, at)
    }

    fn push(&mut self, value: Value, at: usize) -> Result<(), PickleError> {
        if self.stack.len() >= self.limits.max_stack {
            return Err(limit("values on the stack", self.limits.max_stack, at));
        }
        self.built += 1;
        if self.built > self.limits.max_values {
            return Err(limit("values", self.limits.max_values, at));
        }
        self.stack.push(value);
        Ok(())
    }

    fn push_tuple(&mut self, items: Vec<Value>, at: usize) -> Result<(), PickleError> {
        let mut depth = 1;
        for item in &items {
            depth = deeper(depth, item, self.limits.max_nesting, at)?;
        }
        self.push(Value::Tuple(items.into(), depth), at)
    }

    fn pop_mark(&mut self, at: usize) -> Result<Vec<Value>, PickleError> {
        let start = self
            .marks
            .pop()
            .ok_or_else(|| malformed(at, "no MARK to close"))?;
        Ok(self.stack.split_off(start))
    }

    /// Pops `n` values above the innermost MARK (a MARK's values are not for single pops).
    fn pop_n(&mut self, n: usize, at: usize) -> Result<Vec<Value>, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() < floor + n {
            return Err(malformed(at, "stack underflow"));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1, self.pos)?[0])
    }

    fn take(&mut self, n: usize, at: usize) -> Result<&[u8], PickleError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or(PickleError::Truncated { at })?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn le_uint(&mut self, width: usize, at: usize) -> Result<u64, PickleError> {
        let bytes = self.take(width, at)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// A length-prefixed string; the length is checked against the limit and against what is
    /// left of the input before anything is copied.
    fn string(&mut self, n: u64, at: usize) -> Result<Value, PickleError> {
        let max = self.limits.max_string_bytes;
        let n = usize::try_from(n).ok().filter(|&n| n <= max).ok_or(limit(
            "bytes in one string",
            max,
            at,
        ))?;
        let bytes = self.take(n, at)?;
        let text =
            std::str::from_utf8(bytes).map_err(|_| malformed(at, "a string that is not UTF-8"))?;
        Ok(Value::Str(text.into()))
    }

    /// LONG1: a little-endian two's-complement integer of up to 8 bytes (larger ones fit no size).
    fn long1(&mut self, at: usize) -> Result<Value, PickleError> {
        let n = usize::from(self.byte()?);
        if n > 8 {
            return Err(limit("bytes in one integer", 8, at));
        }
        let bytes = self.take(n, at)?;
        let Some(&last) = bytes.last() else {
            return Ok(Value::Int(0));
        };
        let fill = if last & 0x80 != 0 { 0xff } else { 0 };
        let mut raw = [fill; 8];
        raw[..n].copy_from_slice(bytes);
        Ok(Value::Int(i64::from_le_bytes(raw)))
    }

    /// GLOBAL's newline-terminated module or name: short, printable ASCII (it may end up in an
    /// error message).
    fn line(&mut self, at: usize) -> Result<String, PickleError> {
        let data = self.data;
        let rest = &data[self.pos..];
        let window = &rest[..rest.len().min(MAX_GLOBAL_PART + 1)];
        let Some(end) = window.iter().position(|&b| b == b'\n') else {
            return Err(if rest.len() <= MAX_GLOBAL_PART {
                PickleError::Truncated { at }
            } else {
                limit("bytes in a global's name", MAX_GLOBAL_PART, at)
            });
        };
        let text = std::str::from_utf8(&rest[..end])
            .map_err(|_| malformed(at, "a global name that is not text"))?;
        let text = printable(text, at)?;
        self.pos += end + 1;
        Ok(text)
    }
}

const MAX_GLOBAL_PART: usize = 256;

impl Dict {
    fn empty(ordered: bool) -> Dict {
        Dict {
            entries: Vec::new(),
            depth: 1,
            ordered,
        }
    }
}

fn resolve(module: &str, name: &str) -> Result<Global, PickleError> {
    match (module, name) {
        ("collections", "OrderedDict") => Ok(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Ok(Global::RebuildTensorV2),
        ("torch", storage) => DType::from_storage_name(storage)
            .map(Global::Storage)
            .ok_or_else(|| forbidden(module, name)),
        _ => Err(forbidden(module, name)),
    }
}

fn forbidden(module: &str, name: &str) -> PickleError {
    PickleError::ForbiddenGlobal {
        module: module.to_string(),
        name: name.to_string(),
    }
}

/// The container depth after adding `item`, refused past the limit (Drop and every walk over
/// a value recurse, so depth must stay small whatever the input).
fn deeper(depth: u8, item: &Value, max: usize, at: usize) -> Result<u8, PickleError> {
    let max = max.min(usize::from(u8::MAX));
    let inner = usize::from(item.depth()) + 1;
    if inner > max {
        return Err(limit("levels of nesting", max, at));
    }
    Ok(depth.max(inner as u8))
}

fn non_negative(value: &Value) -> Option<usize> {
    match value {
        Value::Int(n) => usize::try_from(*n).ok(),
        _ => None,
    }
}

fn is_empty_dict(value: &Value) -> bool {
    matches!(value, Value::Dict(d) if d.entries.is_empty())
}

/// Storage keys become zip entry names (`<archive>/data/<key>`): torch writes decimal numbers;
/// anything that could walk out of `data/` is refused.
fn storage_key(key: &str, at: usize) -> Result<String, PickleError> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(key.to_string())
    } else {
        Err(malformed(at, "a storage key that is not a plain name"))
    }
}

fn printable(text: &str, at: usize) -> Result<String, PickleError> {
    if text.len() <= MAX_GLOBAL_PART && text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        Ok(text.to_string())
    } else {
        Err(malformed(
            at,
            "a name or location that is not short printable ASCII",
        ))
    }
}

fn malformed(at: usize, reason: &str) -> PickleError {
    PickleError::Malformed {
        at,
        reason: reason.to_string(),
    }
}

fn unsupported(at: usize, what: &str) -> PickleError {
    PickleError::Unsupported {
        what: what.to_string(),
        at,
    }
}

fn limit(what: &'static str, limit: usize, at: usize) -> PickleError {
    PickleError::Limit { what, limit, at }
}

/// The root must be a dict of `name -> tensor`; the names are given to the records here.
fn state_dict_of(root: Value, limits: &Limits) -> Result<Vec<TensorRecord>, PickleError> {
    let Value::Dict(dict) = root else {
        return Err(PickleError::NotStateDict(format!(
            "the file holds {}, not a dict of tensors",
            root.kind()
        )));
    };
    if dict.entries.len() > limits.max_tensors {
        return Err(PickleError::NotStateDict(format!(
            "{} entries, more than the limit of {}",
            dict.entries.len(),
            limits.max_tensors
        )));
    }
    let mut seen = HashSet::new();
    let mut records = Vec::with_capacity(dict.entries.len());
    for (key, value) in dict.entries {
        let Value::Str(name) = key else {
            return Err(PickleError::NotStateDict(format!(
                "a key is {}",
                key.kind()
            )));
        };
        let Value::Tensor(tensor) = value else {
            return Err(PickleError::NotStateDict(format!(
                "entry {name:?} is {}, not a tensor",
                value.kind()
            )));
        };
        if !seen.insert(name.clone()) {
            return Err(PickleError::NotStateDict(format!(
                "entry {name:?} appears twice"
            )));
        }
        let mut record = Rc::unwrap_or_clone(tensor);
        record.name = name.to_string();
        records.push(record);
    }
    Ok(records)
}

/// Python's names for the opcodes this reader refuses, so a refusal says what the file tried.
fn opcode_name(op: u8) -> &'static str {
    match op {
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'L' => "LONG",
        b'P' => "PERSID",
        b'S' => "STRING",
        b'V' => "UNICODE",
        b'd' => "DICT",
        b'g' => "GET",
        b'i' => "INST",
        b'l' => "LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x8b => "LONG4",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        _ => "unknown",
    }
}
