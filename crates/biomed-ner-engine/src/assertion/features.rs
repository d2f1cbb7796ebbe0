//! Each entity's rule verdict and the features the learned stage reads: the triggers within
//! reach (category, direction, side, distance in tokens and in entities, whether a
//! terminating word lies between, the words between), the nearest one, the words around and
//! inside the entity, its type, its place in the sentence. The work per entity is bounded:
//! only the tokens and phrases within [`LIST_WINDOW`] (plus the longest phrase) of it are
//! looked at, found by binary search.

use super::lists::{self, Direction, Kind, Match};
use super::text::Text;
use super::{Assertion, ADJACENT_ONLY, ASSERTED_GROUPS};

const FORWARD_WINDOW: usize = 8;
const BACKWARD_WINDOW: usize = 4;
pub(super) const LIST_WINDOW: usize = 20;
/// The most words of an entity's own span that become features.
const INSIDE_WORDS: usize = 6;

fn bucket(d: usize) -> &'static str {
    match d {
        0 => "0",
        1 => "1",
        2 => "2",
        3..=5 => "3-5",
        6..=10 => "6-10",
        _ => "11+",
    }
}

/// Calls `each` with the index of every span, the rules' verdict, and the features (None for
/// entity types that are not asserted). Spans outside the text are clamped to it.
pub(super) fn each(text: &str, spans: &[(usize, usize, Option<&str>)], mut each: impl FnMut(usize, Assertion, Option<Vec<String>>)) {
    if spans.is_empty() {
        return;
    }
    let t = Text::new(text);
    let n = t.tokens();
    let found = lists::matches(&t);
    // Terminations counted up to each token, so that "is there one between" costs one
    // subtraction.
    let mut terminations_before = Vec::with_capacity(n + 1);
    terminations_before.push(0u32);
    let mut next = found.iter().filter(|m| m.kind == Kind::Termination).map(|m| m.first as usize).peekable();
    for i in 0..n {
        let mut here = 0;
        while next.next_if(|&f| f == i).is_some() {
            here = 1;
        }
        terminations_before.push(terminations_before[i] + here);
    }
    let is_termination_at = |i: usize| terminations_before[(i + 1).min(n)] > terminations_before[i.min(n)];
    let terminated = |from: usize, to: usize| terminations_before[to.min(n)] > terminations_before[from.min(to).min(n)];
    let listy = |from: usize, to: usize, and: bool| {
        (from..to).any(|i| matches!(t.word(i), "," | "or" | "nor") || (and && t.word(i) == "and"))
    };
    let longest = lists::longest();
    let first_at_or_after = |i: usize| found.partition_point(|m| (m.first as usize) < i);
    // The first token of every span, sorted: how many entities lie between a trigger and one.
    let mut entity_tokens: Vec<u32> = spans.iter().map(|&(s, _, _)| t.token_at(s.min(t.len())) as u32).collect();
    entity_tokens.sort_unstable();
    let entities_in = |from: usize, to: usize| {
        entity_tokens.partition_point(|&x| (x as usize) < to) - entity_tokens.partition_point(|&x| (x as usize) < from)
    };
    for (index, &(s, e, group)) in spans.iter().enumerate() {
        // A token's label (aggregation none) names its type after B- or I-.
        let group = group.map(|g| g.strip_prefix("B-").or_else(|| g.strip_prefix("I-")).unwrap_or(g));
        if group.is_some_and(|g| !ASSERTED_GROUPS.contains(&g)) {
            each(index, Assertion::Present, None);
            continue;
        }
        let ty = group.unwrap_or("-");
        let adjacent_only = group.is_some_and(|g| ADJACENT_ONLY.contains(&g));
        let (s, e) = (s.min(t.len()), e.min(t.len()).max(s.min(t.len())));
        let sentence = t.sentence_of(s);
        let a = t.token_at(s);
        let b = t.token_at(e).max(a);
        let in_sentence = |i: usize| t.sentence_of_token(i) == Some(sentence);
        let mut features = vec![format!("type={ty}")];
        let mut best: Option<(usize, Kind)> = None;
        let mut nearest: Option<(usize, String, String)> = None;
        // Only triggers that can reach the entity: before it within the list window, at most
        // that far into its span, and after it within the window.
        let near = (first_at_or_after(a.saturating_sub(LIST_WINDOW + longest))..first_at_or_after(a + LIST_WINDOW + 1).min(first_at_or_after(b)))
            .chain(first_at_or_after(b)..first_at_or_after(b + LIST_WINDOW + 1));
        for m in near.map(|i| &found[i]) {
            if !matches!(m.kind, Kind::Absent | Kind::Possible) || !in_sentence(m.first as usize) {
                continue;
            }
            let (first, end) = (m.first as usize, m.end());
            let kind = if m.kind == Kind::Absent { "absent" } else { "possible" };
            let dir = if m.direction == Direction::Forward { "f" } else { "b" };
            let (side, gap, from, to) = if end <= a {
                ("before", a - end, end, a)
            } else if first >= b {
                ("after", first - b, b, first)
            } else {
                ("inside", 0, a, a)
            };
            if gap <= LIST_WINDOW {
                let cut = if side != "inside" && terminated(from, to) { ":cut" } else { "" };
                let between = bucket(entities_in(from, to).saturating_sub(usize::from(side == "after")));
                let key = format!("{kind}:{dir}:{side}:{}{cut}", bucket(gap));
                features.push(format!("trig={kind}:{dir}:{}:{side}:{}{cut}", lists::phrase(&t, m), bucket(gap)));
                features.push(format!("kt={key}:{ty}"));
                let list = if side != "inside" && listy(from, to, side == "after") { ":list" } else { "" };
                features.push(format!("ne={kind}:{dir}:{side}:{between}{cut}{list}"));
                for i in (from..to).filter(|_| gap <= FORWARD_WINDOW) {
                    features.push(format!("btw={kind}:{side}:{}", t.word(i)));
                }
                if nearest.as_ref().is_none_or(|(d, _, _)| gap < *d) {
                    nearest = Some((gap, format!("{key}:{between}"), format!("{}:{side}:{ty}", lists::phrase(&t, m))));
                }
                features.push(format!("kind={key}"));
            }
            if let Some(rule) = reach(m, a, b, best, adjacent_only, is_termination_at(a), &terminated, &listy) {
                best = Some(rule);
            }
        }
        let rule = match best {
            Some((_, Kind::Absent)) => Assertion::Absent,
            Some((_, Kind::Possible)) => Assertion::Possible,
            _ => Assertion::Present,
        };
        features.push(format!("rule={}", rule.as_str()));
        features.push(format!("rt={}:{ty}", rule.as_str()));
        if let Some((_, key, phrase)) = nearest {
            features.push(format!("nearest={key}"));
            features.push(format!("nearest_phrase={phrase}"));
        }
        let place = a.saturating_sub(t.sentence_first_token(sentence));
        features.push(format!("place={}", bucket(place)));
        for k in 1..=3 {
            if a >= k && in_sentence(a - k) {
                features.push(format!("l{k}={}", t.word(a - k)));
            }
            if b + k - 1 < n && in_sentence(b + k - 1) {
                features.push(format!("r{k}={}", t.word(b + k - 1)));
            }
        }
        features.extend((a.saturating_sub(8)..a.saturating_sub(3)).filter(|&i| in_sentence(i)).map(|i| format!("lbag={}", t.word(i))));
        features.extend(((b + 3)..(b + 6).min(n)).filter(|&i| in_sentence(i)).map(|i| format!("rbag={}", t.word(i))));
        if a < b {
            features.push(format!("first={}", t.word(a)));
            features.push(format!("last={}", t.word(b - 1)));
            features.extend((a..b).take(INSIDE_WORDS).map(|i| format!("in={}", t.word(i))));
        }
        each(index, rule, Some(features));
    }
}

/// Whether trigger `m` reaches the entity of tokens `a..b` by the rules, and how near it is
/// (0: the entity begins with it), unless a nearer trigger `best` already does.
#[allow(clippy::too_many_arguments)]
fn reach(
    m: &Match,
    a: usize,
    b: usize,
    best: Option<(usize, Kind)>,
    adjacent_only: bool,
    termination_at_entity: bool,
    terminated: &dyn Fn(usize, usize) -> bool,
    listy: &dyn Fn(usize, usize, bool) -> bool,
) -> Option<(usize, Kind)> {
    let (first, end) = (m.first as usize, m.end());
    if first == a && a < b && m.direction == Direction::Forward {
        // The entity's own span begins with the trigger.
        return Some((0, m.kind));
    }
    if best.is_some_and(|(d, _)| d == 0) || (adjacent_only && (m.direction == Direction::Backward || end < a)) || termination_at_entity {
        return None;
    }
    let distance = match m.direction {
        Direction::Forward if end <= a => {
            let window = if listy(end, a, false) { LIST_WINDOW } else { FORWARD_WINDOW };
            (a - end <= window && !terminated(end, a)).then_some(a - end)?
        }
        Direction::Backward if first >= b => {
            let window = if listy(b, first, true) { LIST_WINDOW } else { BACKWARD_WINDOW };
            (first - b <= window && !terminated(b, first)).then_some(first - b)?
        }
        _ => return None,
    };
    best.is_none_or(|(d, _)| distance + 1 < d).then_some((distance + 1, m.kind))
}
