//! The note as the rules see it: tokens (runs of letters and digits, with an apostrophe and
//! letters after them; every other non-space character alone), lower-cased into one string,
//! and where sentences start. Positions are code points, like entity offsets.
//!
//! Memory stays linear with a small factor whatever the text: per token, its first code point
//! and where its lower-cased text ends (two `u32`), and the lower-cased bytes; per sentence,
//! one `u32`. Both are counted in a first pass and allocated once. Text past 2^30 code points
//! (beyond what PostgreSQL stores in one value), or whose lower-cased form would pass 4 GiB, is
//! not read: entities there are asserted with no context.

/// The most code points read.
const MAX_CHARS: usize = 1 << 30;

pub(super) struct Text {
    starts: Vec<u32>,
    ends: Vec<u32>,
    lower: String,
    sentences: Vec<u32>,
    /// Code points read (at most [`MAX_CHARS`]).
    len: usize,
}

enum Event<'a> {
    Token(u32, &'a str),
    Sentence(u32),
}

/// Calls `f` with each token (its first code point and its text) and each sentence start
/// after the first, in order. Returns the code points read.
fn scan(text: &str, mut f: impl FnMut(Event<'_>) -> bool) -> usize {
    let mut it = text.char_indices().take(MAX_CHARS).peekable();
    let mut i = 0usize;
    while let Some((at, c)) = it.next() {
        let start = i;
        i += 1;
        if c.is_whitespace() {
            if c == '\n' && !f(Event::Sentence(i as u32)) {
                return start;
            }
            continue;
        }
        let mut end = at + c.len_utf8();
        if c.is_alphanumeric() {
            while let Some(&(b, d)) = it.peek().filter(|(_, d)| d.is_alphanumeric()) {
                end = b + d.len_utf8();
                i += 1;
                it.next();
            }
            let mut two = it.clone();
            if let (Some((_, '\'' | '\u{2019}')), Some((_, d))) = (two.next(), two.next()) {
                if d.is_alphabetic() {
                    it.next();
                    i += 1;
                    while let Some(&(b, d)) = it.peek().filter(|(_, d)| d.is_alphabetic()) {
                        end = b + d.len_utf8();
                        i += 1;
                        it.next();
                    }
                }
            }
        }
        if !f(Event::Token(start as u32, &text[at..end])) {
            return start;
        }
        if matches!(c, '.' | '!' | '?') {
            // A sentence ends at `.`, `!` or `?` followed by space and a character that is not
            // lower-case, or by the end of the text. Each run of space is looked at once more.
            let mut ahead = it.clone();
            let mut spaces = 0;
            let next = loop {
                match ahead.next() {
                    Some((_, d)) if d.is_whitespace() => spaces += 1,
                    other => break other.map(|(_, d)| d),
                }
            };
            if (next.is_none() || (spaces > 0 && !next.is_some_and(char::is_lowercase))) && !f(Event::Sentence(i as u32)) {
                return i;
            }
        }
    }
    i
}

impl Text {
    pub(super) fn new(text: &str) -> Text {
        let lowered = |s: &str| s.chars().flat_map(char::to_lowercase).map(char::len_utf8).sum::<usize>();
        let (mut tokens, mut bytes, mut sentences) = (0usize, 0usize, 1usize);
        let len = scan(text, |e| {
            match e {
                Event::Token(_, s) => {
                    bytes += lowered(s);
                    tokens += 1;
                }
                Event::Sentence(_) => sentences += 1,
            }
            bytes <= u32::MAX as usize
        });
        let mut t = Text {
            starts: Vec::with_capacity(tokens),
            ends: Vec::with_capacity(tokens),
            lower: String::with_capacity(bytes),
            sentences: Vec::with_capacity(sentences),
            len,
        };
        t.sentences.push(0);
        scan(&text[..text.char_indices().nth(len).map_or(text.len(), |(b, _)| b)], |e| {
            match e {
                Event::Token(start, s) => {
                    t.starts.push(start);
                    t.lower.extend(s.chars().flat_map(char::to_lowercase));
                    t.ends.push(t.lower.len() as u32);
                }
                Event::Sentence(start) => t.sentences.push(start),
            }
            true
        });
        t
    }

    /// Code points read.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn tokens(&self) -> usize {
        self.starts.len()
    }

    /// Token `t`'s lower-cased text.
    pub(super) fn word(&self, t: usize) -> &str {
        let from = if t == 0 { 0 } else { self.ends[t - 1] as usize };
        &self.lower[from..self.ends[t] as usize]
    }

    /// The first token that starts at or after code point `ch`.
    pub(super) fn token_at(&self, ch: usize) -> usize {
        self.starts.partition_point(|&x| (x as usize) < ch)
    }

    /// The sentence of code point `ch`.
    pub(super) fn sentence_of(&self, ch: usize) -> usize {
        self.sentences.partition_point(|&s| s as usize <= ch) - 1
    }

    /// The sentence of token `t` (None past the last token).
    pub(super) fn sentence_of_token(&self, t: usize) -> Option<usize> {
        self.starts.get(t).map(|&s| self.sentence_of(s as usize))
    }

    /// The first token of sentence `s`.
    pub(super) fn sentence_first_token(&self, s: usize) -> usize {
        self.token_at(self.sentences[s] as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_sentences_and_code_points() {
        let t = Text::new("No fever.  Pt's İstanbul trip!\n患者 😷: e.g. it");
        let words: Vec<&str> = (0..t.tokens()).map(|i| t.word(i)).collect();
        assert_eq!(words, ["no", "fever", ".", "pt's", "i̇stanbul", "trip", "!", "患者", "😷", ":", "e", ".", "g", ".", "it"]);
        assert_eq!(t.starts[3], 11);
        assert_eq!(t.starts[8], 34);
        assert_eq!(t.sentences, [0, 9, 30, 31]);
        assert_eq!(t.sentence_of_token(14), Some(3));
        assert_eq!(t.len(), "No fever.  Pt's İstanbul trip!\n患者 😷: e.g. it".chars().count());
    }
}
