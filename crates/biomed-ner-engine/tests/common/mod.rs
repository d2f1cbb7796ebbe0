//! What the property tests share: a generator of hostile text.

use proptest::prelude::*;

/// Pieces that text is made of, the hostile ones weighted up.
pub fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z]{1,12}",
        3 => Just(" ".to_string()),
        2 => "[ \t\n\r\u{a0}\u{2009}\u{3000}]{1,4}",
        2 => "[.,;:!?()\\[\\]/%+=<>-]{1,3}",
        2 => "[0-9]{1,6}",
        1 => "[éèçñüßæøå]{1,4}",
        1 => "[\u{4e00}-\u{4e40}]{1,6}",
        1 => "[\u{0600}-\u{0620}]{1,6}",
        1 => "[😷🤒💊🩺👩‍⚕️]{1,3}",
        1 => "e[\u{0300}-\u{036f}]{1,40}",
        1 => "[\u{0001}-\u{001f}\u{007f}\u{200b}-\u{200f}\u{feff}]{1,3}",
        1 => "[\u{fff0}-\u{ffff}\u{10000}-\u{10100}]{1,3}",
        1 => "[a-z]{1,3}".prop_map(|s| s.repeat(300)),
        1 => any::<char>().prop_map(|c| c.to_string()),
    ]
}

pub fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..60).prop_map(|v| v.concat())
}
