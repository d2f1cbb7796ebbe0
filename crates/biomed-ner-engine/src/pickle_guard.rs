//! A bounded pre-scan of a `pytorch_model.bin`'s pickle, run before candle reads it.
//!
//! candle's pickle reader builds the pickled objects as a tree, recursively: it clones an
//! object on every memo read and drops and formats nested objects by recursion. A small
//! hostile file (lists nested 100,000 deep, or memo reads that copy a deep object over and
//! over) therefore overflows the stack or takes the machine's memory, and either kills the
//! process. This scan walks the same opcodes candle accepts, keeping for every stack entry only
//! its nesting depth and its size in objects (candle's clone semantics make both exact), and
//! refuses a pickle that nests deeper than [`MAX_DEPTH`], builds more than [`MAX_OBJECTS`]
//! objects, declares a string longer than what follows it, or is larger than
//! [`MAX_PICKLE_BYTES`]. Real checkpoints nest fewer than 10 deep and build a few thousand
//! objects.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Deepest nesting accepted.
pub const MAX_DEPTH: u32 = 100;
/// Most objects (counting copies made by memo reads) accepted.
pub const MAX_OBJECTS: u64 = 10_000_000;
/// Largest `data.pkl` accepted, uncompressed.
pub const MAX_PICKLE_BYTES: u64 = 256 << 20;

/// What the scan keeps of one object: how deep it nests and how many objects it holds.
#[derive(Clone, Copy, Debug)]
struct Shape {
    depth: u32,
    size: u64,
}

const LEAF: Shape = Shape { depth: 1, size: 1 };
/// candle's MARK is an object on the stack; it never ends up inside a container.
const MARK: Shape = Shape { depth: 0, size: 0 };

/// Checks every `*data.pkl` inside the zip archive at `path`.
pub fn check_pth(path: &Path) -> Result<()> {
    let bad = |reason: String| Error::BadFile { path: path.to_path_buf(), reason };
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| bad(format!("not a PyTorch zip archive: {e}")))?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().filter(|n| n.ends_with("data.pkl")).map(|n| n.into_owned()))
        .collect();
    for name in names {
        let entry = zip.by_name(&name).map_err(|e| bad(e.to_string()))?;
        let mut data = Vec::new();
        entry.take(MAX_PICKLE_BYTES + 1).read_to_end(&mut data).map_err(|e| bad(e.to_string()))?;
        if data.len() as u64 > MAX_PICKLE_BYTES {
            return Err(bad(format!("{name} is larger than {MAX_PICKLE_BYTES} bytes")));
        }
        check_pickle(&data).map_err(|reason| bad(format!("{name}: {reason}")))?;
    }
    Ok(())
}

/// Scans one pickle; the error says why it is refused.
pub fn check_pickle(data: &[u8]) -> std::result::Result<(), String> {
    let mut r = data;
    let mut stack: Vec<Shape> = Vec::new();
    let mut memo: std::collections::HashMap<u32, Shape> = std::collections::HashMap::new();
    let mut objects: u64 = 0;
    let take = |r: &mut &[u8], n: usize| -> std::result::Result<(), String> {
        if r.len() < n {
            return Err("truncated pickle".into());
        }
        *r = &r[n..];
        Ok(())
    };
    fn u32_at(r: &[u8]) -> std::result::Result<u32, String> {
        r.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or_else(|| "truncated pickle".into())
    }
    fn pop(stack: &mut Vec<Shape>) -> std::result::Result<Shape, String> {
        stack.pop().ok_or_else(|| "pickle pops an empty stack".into())
    }
    fn pop_to_mark(stack: &mut Vec<Shape>, marks: &mut Vec<usize>) -> std::result::Result<Vec<Shape>, String> {
        let at = marks.pop().ok_or("pickle has no mark to pop to")?;
        if at > stack.len() {
            return Err("pickle pops past its mark".into());
        }
        let items = stack.split_off(at);
        stack.pop(); // the mark itself
        Ok(items)
    }
    // Positions of the marks on the stack (candle searches the stack for the last one).
    let mut marks: Vec<usize> = Vec::new();
    let container = |children: &[Shape]| Shape {
        depth: 1 + children.iter().map(|c| c.depth).max().unwrap_or(0),
        size: 1 + children.iter().map(|c| c.size).sum::<u64>(),
    };
    // Adds `children` to the container on top of the stack.
    fn extend(stack: &mut [Shape], children: &[Shape]) -> std::result::Result<(), String> {
        let top = stack.last_mut().ok_or("pickle appends to an empty stack")?;
        for c in children {
            top.depth = top.depth.max(c.depth + 1);
            top.size += c.size;
        }
        Ok(())
    }
    loop {
        let Some((&op, rest)) = r.split_first() else { return Err("pickle ends without STOP".into()) };
        r = rest;
        let mut new_objects = 0u64;
        match op {
            0x80 => take(&mut r, 1)?, // PROTO
            b'c' => {
                // GLOBAL: module and name, each up to a newline.
                for _ in 0..2 {
                    let nl = r.iter().position(|&b| b == b'\n').ok_or("truncated pickle")?;
                    r = &r[nl + 1..];
                }
                stack.push(LEAF);
                new_objects = 1;
            }
            b'K' | b'M' | b'J' | b'G' => {
                // BININT1, BININT2, BININT, BINFLOAT: a number of 1, 2, 4 or 8 bytes.
                take(&mut r, match op { b'K' => 1, b'M' => 2, b'J' => 4, _ => 8 })?;
                stack.push(LEAF);
                new_objects = 1;
            }
            b'q' | b'r' | b'h' | b'j' => {
                // BINPUT/LONG_BINPUT and BINGET/LONG_BINGET: a memo id of 1 or 4 bytes.
                let id = if matches!(op, b'q' | b'h') {
                    *r.first().ok_or("truncated pickle")? as u32
                } else {
                    u32_at(r)?
                };
                take(&mut r, if matches!(op, b'q' | b'h') { 1 } else { 4 })?;
                if matches!(op, b'q' | b'r') {
                    memo.insert(id, *stack.last().ok_or("pickle memoizes an empty stack")?);
                } else {
                    let s = *memo.get(&id).ok_or("pickle reads a missing memo entry")?;
                    stack.push(s);
                    new_objects = s.size;
                }
            }
            b'X' => {
                let len = u32_at(r)? as usize;
                take(&mut r, 4)?;
                if len > r.len() {
                    return Err(format!("string of {len} bytes runs past the end of the pickle"));
                }
                take(&mut r, len)?;
                stack.push(LEAF);
                new_objects = 1;
            }
            0x8a => {
                let n = *r.first().ok_or("truncated pickle")? as usize;
                take(&mut r, 1 + n)?;
                stack.push(LEAF);
                new_objects = 1;
            }
            b'N' | 0x88 | 0x89 | b')' | b']' | b'}' | b'd' => {
                stack.push(LEAF);
                new_objects = 1;
            }
            b'(' => {
                marks.push(stack.len() + 1);
                stack.push(MARK);
            }
            b'Q' => {
                // BINPERSID wraps the id.
                let id = pop(&mut stack)?;
                stack.push(container(&[id]));
                new_objects = 1;
            }
            b't' => {
                let items = pop_to_mark(&mut stack, &mut marks)?;
                stack.push(container(&items));
                new_objects = 1;
            }
            0x85 | 0x86 | 0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(pop(&mut stack)?);
                }
                stack.push(container(&items));
                new_objects = 1;
            }
            b'a' | b's' => {
                let n = if op == b'a' { 1 } else { 2 };
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(pop(&mut stack)?);
                }
                extend(&mut stack, &items)?;
            }
            b'e' | b'u' => {
                let items = pop_to_mark(&mut stack, &mut marks)?;
                extend(&mut stack, &items)?;
            }
            b'b' | b'R' | 0x81 => {
                // BUILD, REDUCE, NEWOBJ: two objects become one holding both.
                let b = pop(&mut stack)?;
                let a = pop(&mut stack)?;
                stack.push(container(&[a, b]));
                new_objects = 1;
            }
            b'.' => return Ok(()),
            other => return Err(format!("unknown pickle opcode {other}")),
        }
        // A mark below the stack's new top that was popped by a plain pop is gone.
        while marks.last().is_some_and(|&m| m > stack.len()) {
            marks.pop();
        }
        if let Some(top) = stack.last() {
            if top.depth > MAX_DEPTH {
                return Err(format!("pickle nests deeper than {MAX_DEPTH} levels"));
            }
        }
        objects = objects.saturating_add(new_objects);
        if objects > MAX_OBJECTS {
            return Err(format!("pickle builds more than {MAX_OBJECTS} objects"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_deep_nesting() {
        // The reported crash: 100,000 nested lists.
        let mut p = vec![0x80, 2];
        p.extend(std::iter::repeat_n(b']', 100_000));
        p.extend(std::iter::repeat_n(b'a', 99_999));
        p.push(b'.');
        let e = check_pickle(&p).unwrap_err();
        assert!(e.contains("nests deeper"), "{e}");
    }

    #[test]
    fn refuses_deep_nesting_built_through_the_memo() {
        // Bounded stack, growing depth: push a list, read the memo'd object into it, memoize.
        let mut p = vec![0x80, 2, b']', b'q', 0];
        for _ in 0..200 {
            p.extend([b']', b'h', 0, b'a', b'q', 0]);
        }
        p.push(b'.');
        let e = check_pickle(&p).unwrap_err();
        assert!(e.contains("nests deeper"), "{e}");
    }

    #[test]
    fn refuses_exponential_copies() {
        // Each step doubles the memo'd object: a list holding two copies of the previous one.
        let mut p = vec![0x80, 2, b']', b'q', 0];
        for _ in 0..40 {
            p.extend([b']', b'h', 0, b'a', b'h', 0, b'a', b'q', 0]);
        }
        p.push(b'.');
        let e = check_pickle(&p).unwrap_err();
        assert!(e.contains("objects"), "{e}");
    }

    #[test]
    fn refuses_strings_longer_than_the_file() {
        let p = [0x80, 2, b'X', 0xff, 0xff, 0xff, 0xff, b'a', b'.'];
        assert!(check_pickle(&p).unwrap_err().contains("runs past"));
    }

    #[test]
    fn accepts_a_state_dict_shape() {
        // {'w': (1, 2, [3])} built with MARK/SETITEMS, as torch.save writes dicts.
        let p = [0x80, 2, b'}', b'q', 0, b'(', b'X', 1, 0, 0, 0, b'w', b'K', 1, b'K', 2, b']', b'K', 3, b'a', 0x87, b'u', b'.'];
        check_pickle(&p).unwrap();
    }

    #[test]
    fn refuses_truncated_and_unknown() {
        assert!(check_pickle(&[0x80, 2, b']']).is_err());
        assert!(check_pickle(&[0x80, 2, b'i', b'.']).unwrap_err().contains("unknown"));
    }
}
