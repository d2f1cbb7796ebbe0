//! What backends, the supervisor and the model process say to each other: plain Rust types,
//! sent as JSON in length-prefixed frames (a little-endian `u32` byte count, then the bytes).
//! A message that does not parse (an unknown dtype, say) is answered with a [`Failure`] of
//! SQLSTATE 22023, never read as a default.

use std::io::{self, Read, Write};

use biomed_ner_engine::Entity;
use serde::{Deserialize, Serialize};

use crate::failure::Failure;
use crate::spec::{CallOptions, ModelSpec};

/// Largest frame either side accepts: far above what `biomed_ner.max_chars` lets a call send
/// in one array, far below what would let a broken peer make the other allocate without end.
pub const MAX_FRAME: usize = 1 << 30;

/// A request from a backend.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Entities of each text, with this session's options. `model` is the model the session
    /// asks for: the service serves only the one of the server's configuration.
    Annotate {
        model: ModelSpec,
        options: CallOptions,
        texts: Vec<String>,
        /// Background work (a queue worker's): served by the threads at `queue_nice`.
        #[serde(default)]
        background: bool,
    },
    /// The service's state, for `biomed_ner_service()` and `biomed_ner_info()`.
    Status,
}

/// One entity on the wire: group, score (its `f32` bits, so it arrives unchanged), word,
/// start, end, token index (aggregation `none` only).
#[derive(Debug, Serialize, Deserialize)]
pub struct WireEntity(String, u32, String, usize, usize, Option<usize>);

impl From<Entity> for WireEntity {
    fn from(e: Entity) -> Self {
        Self(e.group, e.score.to_bits(), e.word, e.start, e.end, e.index)
    }
}

impl From<WireEntity> for Entity {
    fn from(w: WireEntity) -> Self {
        Entity { group: w.0, score: f32::from_bits(w.1), word: w.2, start: w.3, end: w.4, index: w.5 }
    }
}

/// Entities from the wire.
pub fn entities_from_wire(wire: Vec<Vec<WireEntity>>) -> Vec<Vec<Entity>> {
    wire.into_iter().map(|es| es.into_iter().map(Entity::from).collect()).collect()
}

/// The service's answer to a [`Request`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    Entities { entities: Vec<Vec<WireEntity>> },
    Failed { failure: Failure },
    /// The session asked for another model than the service runs.
    OtherModel { service: ModelSpec },
    Status { status: serde_json::Value },
}

/// What the supervisor tells a model process, at its start and again at each configuration
/// reload: the server's settings, never a session's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceConfig {
    pub spec: ModelSpec,
    /// `biomed_ner.model_path`, where a model name is looked up.
    pub model_path: Vec<String>,
    pub batch_size: usize,
    pub max_pass_bytes: usize,
    pub batch_wait_ms: u64,
    /// `biomed_ner.workers`: how many model processes there are.
    pub workers: usize,
    /// `biomed_ner.queue_nice`: the nice value of the threads that serve background work.
    #[serde(default)]
    pub queue_nice: i32,
}

/// Facts about a model process that its supervisor knows: which one it is, how often the
/// service restarted and why the last one stopped.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerMeta {
    pub worker: usize,
    pub supervisor_pid: i32,
    pub restarts: u64,
    pub last_exit: Option<String>,
}

/// The most bytes of notes one request to the service carries. The service runs requests whole,
/// so this bounds how long one request holds the others (a call of more notes goes in several
/// requests, one after the other, and other sessions' requests get in between); a longer note
/// runs in its session's own backend.
pub const REQUEST_BYTES: usize = 32 << 10;

/// Cuts a call's notes into requests of at most `limit` bytes of text each, in order (a note
/// over the limit alone; no notes, one empty request).
pub fn pieces<'a, 'b>(texts: &'a [&'b str], limit: usize) -> Vec<&'a [&'b str]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, t) in texts.iter().enumerate() {
        if i > start && bytes + t.len() > limit {
            out.push(&texts[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += t.len();
    }
    if start < texts.len() || texts.is_empty() {
        out.push(&texts[start..]);
    }
    out
}

pub fn write_frame(w: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    let body = serde_json::to_vec(value).map_err(io::Error::other)?;
    if body.len() > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("message of {} bytes is too large", body.len())));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame)
}

/// Reads one frame; `Ok(None)` at a clean end of stream before it. A frame read whole whose
/// body does not parse is an error of kind `InvalidData` (the stream stays in step); a frame
/// over [`MAX_FRAME`], of kind `InvalidInput`.
pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("message of {len} bytes is too large")));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    serde_json::from_slice(&body).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_scores_keep_their_bits() {
        let e = Entity { group: "Sign_symptom".into(), score: 0.123_456_79, word: "fever".into(), start: 0, end: 5, index: None };
        let bits = e.score.to_bits();
        let mut buf = Vec::new();
        write_frame(&mut buf, &Response::Entities { entities: vec![vec![e.into()]] }).unwrap();
        let back: Response = read_frame(&mut buf.as_slice()).unwrap().unwrap();
        let Response::Entities { mut entities } = back else { panic!("wrong kind") };
        let e: Entity = entities.remove(0).remove(0).into();
        assert_eq!(e.score.to_bits(), bits);
        assert_eq!(read_frame::<Response>(&mut &[][..]).unwrap().is_none(), true);
    }

    #[test]
    fn pieces_keep_order_and_stay_under_the_limit() {
        let texts = ["aaaa", "bb", "cccccc", "d", "", "eeeeeeeeeeee", "f"];
        let got = pieces(&texts, 6);
        assert_eq!(got, vec![&texts[0..2], &texts[2..3], &texts[3..5], &texts[5..6], &texts[6..7]]);
        assert_eq!(got.concat(), texts);
        for p in &got {
            assert!(p.len() == 1 || p.iter().map(|t| t.len()).sum::<usize>() <= 6);
        }
        assert_eq!(pieces(&[], 6), vec![&[] as &[&str]]);
        assert_eq!(pieces(&texts, usize::MAX), vec![&texts[..]]);
    }

    #[test]
    fn requests_with_unknown_names_do_not_parse() {
        let request = r#"{"op":"annotate","model":{"model":"","device":"cpu","precision":"f64","threads":1},
            "options":{"aggregation":"simple","max_length":512,"stride":128},"texts":[]}"#;
        let mut buf = Vec::new();
        write_frame(&mut buf, &serde_json::from_str::<serde_json::Value>(request).unwrap()).unwrap();
        let e = read_frame::<Request>(&mut buf.as_slice()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("biomed_ner.dtype \"f64\""), "{e}");
    }

    #[test]
    fn oversized_frames_are_refused() {
        let frame = (MAX_FRAME as u32 + 1).to_le_bytes();
        assert!(read_frame::<Request>(&mut &frame[..]).is_err());
    }
}
