//! Notes as HTML with their entities highlighted: [`fragment`] for one note (an element that
//! carries its own `<style>`), [`page`] for a self-contained page of many notes (inline CSS and
//! JavaScript only: a legend with per-type counts as bars, checkboxes that hide or show each
//! type's highlights, and an index of the notes when there are more than [`INDEX_FROM`]).
//!
//! Entities are JSON objects as the CLI writes them: integer `start` and `end` (code points into
//! the note, end exclusive), `entity_group` (or `entity`, as aggregation `none` writes it, its
//! `B-`/`I-` prefix dropped), and optionally `score` (a number) and `assertion` (a string).
//! Other keys are ignored. Each entity becomes one element whose text is exactly the note's
//! slice:
//!
//! ```text
//! <mark class="ent" data-entity-group="Sign_symptom" data-start="11" data-end="16"
//!       data-assertion="absent" title="Sign_symptom 0.98 (absent)" style="background-color:#…">fever</mark>
//! ```
//!
//! Everything taken from the input (the note, types, assertions) is HTML-escaped, so a note
//! that contains markup shows it as text; a carriage return is written as `&#13;`, so that it
//! survives parsing, and a NUL (which HTML cannot hold) as U+FFFD. What is rendered, and the rule for the rest:
//! - an entity with `start` after `end`, an offset past the note's end, a missing or
//!   non-integer offset, or a missing or non-string type is an error naming the entity;
//! - an empty entity (`start == end`) has no text and is left out;
//! - entities are taken in order of `start`, the longer first at equal starts; one that
//!   overlaps an entity already taken is left out (nested and crossing spans cannot both be
//!   one element each). [`Marks::left_out`] counts what was left out.
//!
//! Colours: one per MACCROBAT type ([`PALETTE`]), and for any other type one derived from a
//! hash of its name; all give black text a WCAG contrast of at least 4.5:1. Absent entities
//! are struck through, possible ones have a dashed underline.

use std::collections::BTreeMap;
use std::fmt::Write;

use html_escape::{encode_double_quoted_attribute_to_string as attr, encode_text_to_string};
use serde_json::Value;

/// The bundled model's 41 MACCROBAT types and their colours, most frequent types first.
pub const PALETTE: [(&str, &str); 41] = [
    ("Diagnostic_procedure", "#f5a3a3"),
    ("Sign_symptom", "#51ec51"),
    ("Biological_structure", "#bd51ec"),
    ("Detailed_description", "#51ecec"),
    ("Lab_value", "#eccd51"),
    ("Disease_disorder", "#5f92dd"),
    ("Medication", "#ec519e"),
    ("Therapeutic_procedure", "#9cd98c"),
    ("Date", "#ec5151"),
    ("Clinical_event", "#c9d4ed"),
    ("History", "#e4a2eb"),
    ("Severity", "#ec8f51"),
    ("Dosage", "#ebd5a2"),
    ("Nonbiological_location", "#7575f0"),
    ("Coreference", "#bdec51"),
    ("Duration", "#f075e3"),
    ("Age", "#51ec8f"),
    ("Sex", "#51bdec"),
    ("Administration", "#c9edd8"),
    ("Distance", "#51ecbd"),
    ("Activity", "#cf6e94"),
    ("Family_history", "#dae481"),
    ("Frequency", "#f8bfe1"),
    ("Shape", "#a86ecf"),
    ("Personal_background", "#edd1c9"),
    ("Subject", "#cf946e"),
    ("Time", "#b0abe3"),
    ("Quantitative_concept", "#8cd1d9"),
    ("Color", "#f07582"),
    ("Texture", "#85dd5f"),
    ("Qualitative_concept", "#ddab5f"),
    ("Area", "#a39af4"),
    ("Outcome", "#8cd9b2"),
    ("Volume", "#ecec51"),
    ("Other_event", "#dd785f"),
    ("Occupation", "#cf6ebb"),
    ("Other_entity", "#c7e3ab"),
    ("Biological_attribute", "#ec517f"),
    ("Weight", "#f49ac7"),
    ("Height", "#ec51ec"),
    ("Mass", "#cb75f0"),
];

/// A page lists its notes with links to each when it has more notes than this.
pub const INDEX_FROM: usize = 5;

/// One entity to highlight.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub start: usize,
    pub end: usize,
    pub group: String,
    pub score: Option<f64>,
    pub assertion: Option<String>,
}

/// A note's entities as they are shown: in order, none overlapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Marks {
    pub shown: Vec<Mark>,
    /// Empty entities, and entities that overlap one shown before them.
    pub left_out: usize,
}

/// The colour of a type: its [`PALETTE`] entry, else a light colour from a hash of its name
/// (FNV-1a), the same on every run.
pub fn colour(group: &str) -> String {
    if let Some((_, c)) = PALETTE.iter().find(|(g, _)| *g == group) {
        return (*c).to_string();
    }
    let h = group.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    let hue = f64::from(h % 360);
    let saturation = 0.5 + f64::from((h >> 9) % 30) / 100.0;
    let lightness = 0.72 + f64::from((h >> 17) % 12) / 100.0;
    let (r, g, b) = hsl_to_rgb(hue, saturation, lightness);
    format!("#{r:02x}{g:02x}{b:02x}")
}

fn hsl_to_rgb(hue: f64, s: f64, l: f64) -> (u8, u8, u8) {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let x = c * (1.0 - ((hue / 60.0) % 2.0 - 1.0).abs());
    let (r, g, b) = match (hue / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let byte = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    (byte(r), byte(g), byte(b))
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "an object",
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    }
}

/// Entity `i`'s offset `key`, a code point of a text of `length` code points.
fn offset(o: &serde_json::Map<String, Value>, i: usize, key: &str, length: usize) -> Result<usize, String> {
    match o.get(key).map(|v| (v, v.as_u64())) {
        None => Err(format!("entity {i} has no \"{key}\"")),
        Some((v, None)) => Err(format!("entity {i}: \"{key}\" must be a non-negative integer, not {v}")),
        Some((_, Some(n))) if n > length as u64 => {
            Err(format!("entity {i}: \"{key}\" {n} is past the end of the text ({length} characters)"))
        }
        Some((_, Some(n))) => Ok(n as usize),
    }
}

fn mark(i: usize, e: &Value, length: usize) -> Result<Mark, String> {
    let o = e.as_object().ok_or_else(|| format!("entity {i} must be an object, not {}", describe(e)))?;
    let (start, end) = (offset(o, i, "start", length)?, offset(o, i, "end", length)?);
    if start > end {
        return Err(format!("entity {i}: \"start\" {start} is after \"end\" {end}"));
    }
    let group = match (o.get("entity_group"), o.get("entity")) {
        (Some(Value::String(g)), _) => g.clone(),
        (None, Some(Value::String(g))) => g.strip_prefix("B-").or_else(|| g.strip_prefix("I-")).unwrap_or(g).to_string(),
        (Some(v), _) | (None, Some(v)) => return Err(format!("entity {i}: \"entity_group\" must be a string, not {}", describe(v))),
        (None, None) => return Err(format!("entity {i} has no \"entity_group\"")),
    };
    let score = match o.get("score") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(v) => return Err(format!("entity {i}: \"score\" must be a number, not {}", describe(v))),
    };
    let assertion = match o.get("assertion") {
        None | Some(Value::Null) => None,
        Some(Value::String(a)) => Some(a.clone()),
        Some(v) => return Err(format!("entity {i}: \"assertion\" must be a string, not {}", describe(v))),
    };
    Ok(Mark { start, end, group, score, assertion })
}

/// The entities of `entities` (a JSON array) that are shown on `text`, by the rule of the
/// module's documentation; an error says what is wrong with which entity.
pub fn marks(text: &str, entities: &Value) -> Result<Marks, String> {
    let list = entities.as_array().ok_or_else(|| format!("entities must be a JSON array, not {}", describe(entities)))?;
    let length = text.chars().count();
    let mut all = list.iter().enumerate().map(|(i, e)| mark(i, e, length)).collect::<Result<Vec<_>, _>>()?;
    all.sort_by_key(|m| (m.start, std::cmp::Reverse(m.end)));
    let mut shown: Vec<Mark> = Vec::with_capacity(all.len());
    for m in all {
        if m.start < m.end && shown.last().is_none_or(|last| last.end <= m.start) {
            shown.push(m);
        }
    }
    Ok(Marks { left_out: list.len() - shown.len(), shown })
}

/// The CSS of [`fragment`]'s and [`page`]'s notes and legends (colours are inline on each
/// element, so this is the same for every model).
pub fn style() -> &'static str {
    STYLE
}

const STYLE: &str = "\
.biomed-ner-note{white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.9;font-family:system-ui,sans-serif;color:#000;background:#fff}
.biomed-ner-note mark.ent{color:#000;padding:.1em .15em;border-radius:.25em;-webkit-box-decoration-break:clone;box-decoration-break:clone}
.biomed-ner-note mark.ent[data-assertion=absent]{text-decoration:line-through 2px}
.biomed-ner-note mark.ent[data-assertion=possible]{text-decoration:underline dashed 2px;text-underline-offset:.25em}
.biomed-ner-note mark.ent.off{background:none!important;text-decoration:none;padding:0}
.biomed-ner-legend{font-family:system-ui,sans-serif;font-size:.85em;margin:.5em 0}
.biomed-ner-legend .key{display:inline-block;margin:0 1em .25em 0;white-space:nowrap}
.biomed-ner-swatch{display:inline-block;width:1em;height:1em;border-radius:.2em;vertical-align:-.15em;margin-right:.3em;border:1px solid #0003}
";

/// `s` as HTML text. A carriage return becomes a character reference, which (unlike a literal
/// one, which the parser folds into the line feed after it) keeps the note's characters, and so
/// each highlight's slice, exactly as given. A NUL, which HTML cannot hold (the parser drops it),
/// shows as U+FFFD, one character for one.
fn text_to(s: &str, out: &mut String) {
    let mut at = 0;
    for (i, c) in s.match_indices(['\r', '\0']) {
        encode_text_to_string(&s[at..i], out);
        out.push_str(if c == "\r" { "&#13;" } else { "\u{fffd}" });
        at = i + 1;
    }
    encode_text_to_string(&s[at..], out);
}

/// One note's text with its shown entities as `<mark>` elements, inside
/// `<div class="biomed-ner-note">`.
fn note_body(out: &mut String, text: &str, shown: &[Mark]) {
    out.push_str("<div class=\"biomed-ner-note\">");
    let mut bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    bytes.push(text.len());
    let mut at = 0;
    for m in shown {
        text_to(&text[bytes[at]..bytes[m.start]], out);
        out.push_str("<mark class=\"ent\" data-entity-group=\"");
        attr(&m.group, out);
        let _ = write!(out, "\" data-start=\"{}\" data-end=\"{}\"", m.start, m.end);
        let mut title = m.group.clone();
        if let Some(s) = m.score {
            let _ = write!(out, " data-score=\"{s:.4}\"");
            let _ = write!(title, " {s:.2}");
        }
        if let Some(a) = &m.assertion {
            out.push_str(" data-assertion=\"");
            attr(a, out);
            out.push('"');
            let _ = write!(title, " ({a})");
        }
        out.push_str(" title=\"");
        attr(&title, out);
        let _ = write!(out, "\" style=\"background-color:{}\">", colour(&m.group));
        text_to(&text[bytes[m.start]..bytes[m.end]], out);
        out.push_str("</mark>");
        at = m.end;
    }
    text_to(&text[bytes[at]..], out);
    out.push_str("</div>");
}

fn swatch(out: &mut String, group: &str) {
    let _ = write!(out, "<span class=\"biomed-ner-swatch\" style=\"background-color:{}\"></span>", colour(group));
}

/// Entities per type, the most frequent first (then by name).
fn counts<'a>(marks: impl IntoIterator<Item = &'a Mark>) -> Vec<(&'a str, usize)> {
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for m in marks {
        *by_type.entry(m.group.as_str()).or_default() += 1;
    }
    let mut v: Vec<_> = by_type.into_iter().collect();
    v.sort_by_key(|&(g, n)| (std::cmp::Reverse(n), g));
    v
}

/// One note as an HTML element that stands alone: its `<style>` ([`style`]), the text with
/// its entities highlighted, and a legend of the types it shows.
pub fn fragment(text: &str, entities: &Value) -> Result<String, String> {
    let marks = marks(text, entities)?;
    let mut out = String::with_capacity(text.len() * 2 + STYLE.len() + 64 * marks.shown.len());
    out.push_str("<div class=\"biomed-ner\"><style>");
    out.push_str(STYLE);
    out.push_str("</style>");
    note_body(&mut out, text, &marks.shown);
    out.push_str("<div class=\"biomed-ner-legend\">");
    for (group, _) in counts(&marks.shown) {
        out.push_str("<span class=\"key\">");
        swatch(&mut out, group);
        text_to(group, &mut out);
        out.push_str("</span>");
    }
    out.push_str("</div></div>");
    Ok(out)
}

const PAGE_STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:60em;padding:0 1em;color:#000;background:#fff}
h1{font-size:1.4em}h2{font-size:1.1em;margin:1.2em 0 .3em}
table.types{border-collapse:collapse;font-size:.85em}
table.types td{padding:.1em .5em .1em 0}
table.types td.bar{width:20em}
table.types td.bar div{height:.9em;min-width:2px;border:1px solid #0003}
table.types td.count{text-align:right;font-variant-numeric:tabular-nums}
nav.index ol{columns:3;column-gap:3em;font-size:.85em}
nav.index li{break-inside:avoid}
article.note{border-top:1px solid #ddd;padding-top:.3em}
";

/// Hides the highlights of the types whose checkbox is cleared; buttons check or clear all.
const SCRIPT: &str = "\
(function(){
function apply(){
var on={};
document.querySelectorAll('input[data-group]').forEach(function(c){on[c.getAttribute('data-group')]=c.checked;});
document.querySelectorAll('mark.ent').forEach(function(m){m.classList.toggle('off',on[m.getAttribute('data-entity-group')]===false);});
}
document.addEventListener('change',function(e){if(e.target.matches('input[data-group]'))apply();});
document.querySelectorAll('button[data-all]').forEach(function(b){b.addEventListener('click',function(){
var v=b.getAttribute('data-all')==='1';
document.querySelectorAll('input[data-group]').forEach(function(c){c.checked=v;});
apply();});});
apply();
})();
";

/// A self-contained HTML page of `notes` (each a text and its entities as a JSON array): a
/// legend of the types found with their counts as bars and a checkbox each, the notes'
/// index when there are more than [`INDEX_FROM`] notes, and every note. An error names the
/// note (from 1) and the entity.
pub fn page(notes: &[(&str, &Value)]) -> Result<String, String> {
    let all: Vec<Marks> = notes
        .iter()
        .enumerate()
        .map(|(i, (text, entities))| marks(text, entities).map_err(|e| format!("note {}: {e}", i + 1)))
        .collect::<Result<_, _>>()?;
    let types = counts(all.iter().flat_map(|m| &m.shown));
    let shown: usize = types.iter().map(|t| t.1).sum();
    let left_out: usize = all.iter().map(|m| m.left_out).sum();
    let mut out = String::with_capacity(notes.iter().map(|n| n.0.len() * 2).sum::<usize>() + 64 * shown + 8192);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    out.push_str("<title>Biomedical entities</title><style>\n");
    out.push_str(STYLE);
    out.push_str(PAGE_STYLE);
    out.push_str("</style></head>\n<body>\n<h1>Biomedical entities</h1>\n");
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let _ = write!(out, "<p class=\"summary\">{}, {}", plural(notes.len(), "note", "notes"), plural(shown, "entity", "entities"));
    if left_out > 0 {
        let _ = write!(out, " ({} not shown: empty or overlapping another)", plural(left_out, "entity", "entities"));
    }
    out.push_str(".</p>\n<section class=\"biomed-ner-legend\"><h2>Types</h2>\n");
    out.push_str("<p><button type=\"button\" data-all=\"1\">Show all</button> <button type=\"button\" data-all=\"0\">Hide all</button></p>\n");
    out.push_str("<table class=\"types\">\n");
    let most = types.first().map_or(1, |t| t.1);
    for &(group, n) in &types {
        out.push_str("<tr><td><label><input type=\"checkbox\" checked data-group=\"");
        attr(group, &mut out);
        out.push_str("\"> ");
        swatch(&mut out, group);
        text_to(group, &mut out);
        let _ = writeln!(
            out,
            "</label></td><td class=\"bar\"><div style=\"width:{:.1}%;background-color:{}\"></div></td><td class=\"count\">{n}</td></tr>",
            100.0 * n as f64 / most as f64,
            colour(group)
        );
    }
    out.push_str("</table></section>\n");
    if notes.len() > INDEX_FROM {
        out.push_str("<nav class=\"index\"><h2>Notes</h2><ol>\n");
        for (i, ((text, _), m)) in notes.iter().zip(&all).enumerate() {
            let _ = write!(out, "<li><a href=\"#note-{0}\">Note {0}</a> ({1}): ", i + 1, m.shown.len());
            let head: String = text.chars().take(40).collect();
            text_to(head.trim(), &mut out);
            out.push_str("</li>\n");
        }
        out.push_str("</ol></nav>\n");
    }
    out.push_str("<main>\n");
    for (i, ((text, _), m)) in notes.iter().zip(&all).enumerate() {
        let _ = write!(out, "<article class=\"note\" id=\"note-{0}\"><h2>Note {0}</h2>", i + 1);
        note_body(&mut out, text, &m.shown);
        out.push_str("</article>\n");
    }
    out.push_str("</main>\n<script>\n");
    out.push_str(SCRIPT);
    out.push_str("</script>\n</body></html>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// WCAG 2 relative luminance of `#rrggbb`.
    fn luminance(hex: &str) -> f64 {
        let channel = |i: usize| {
            let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
            if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
        };
        0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
    }

    fn black_text_contrast(hex: &str) -> f64 {
        (luminance(hex) + 0.05) / 0.05
    }

    #[test]
    fn the_palette_covers_the_bundled_models_types_once_each() {
        let config: Value = serde_json::from_str(include_str!("../../../models/maccrobat-small/config.json")).unwrap();
        let mut labels: Vec<&str> = config["id2label"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|l| l.as_str().unwrap().get(2..))
            .collect();
        labels.sort();
        labels.dedup();
        let mut types: Vec<&str> = PALETTE.iter().map(|p| p.0).collect();
        types.sort();
        assert_eq!(types, labels);
        let mut colours: Vec<&str> = PALETTE.iter().map(|p| p.1).collect();
        colours.sort();
        colours.dedup();
        assert_eq!(colours.len(), PALETTE.len(), "a colour is used twice");
    }

    #[test]
    fn every_colour_gives_black_text_a_contrast_of_at_least_4_5() {
        for (group, c) in PALETTE {
            assert_eq!(colour(group), c);
            assert!(black_text_contrast(c) >= 4.5, "{group} {c}: {:.2}", black_text_contrast(c));
        }
        let mut worst = f64::MAX;
        for i in 0..5000 {
            let name = format!("Type_{i}");
            let c = colour(&name);
            assert_eq!(c, colour(&name), "not deterministic");
            assert!(c.len() == 7 && c.starts_with('#'), "{c}");
            worst = worst.min(black_text_contrast(&c));
        }
        assert!(worst >= 4.5, "an unknown type's colour gives {worst:.2}:1");
        // White itself would be invisible on a white page.
        assert!(black_text_contrast("#ffffff") > 20.0 && black_text_contrast("#000000") < 1.01);
    }

    #[test]
    fn markup_in_notes_and_labels_is_escaped() {
        let text = "<script>alert(1)</script> & \"fever\"";
        let out = fragment(text, &json!([{"start": 0, "end": 8, "entity_group": "x\"><img src=x onerror=alert(1)>", "assertion": "<b>"}])).unwrap();
        assert!(!out.contains("<script") && !out.contains("<img") && !out.contains("<b>"), "{out}");
        assert!(out.contains("&lt;script&gt;</mark>alert(1)&lt;/script&gt; &amp; \"fever\"</div>"), "{out}");
        assert!(out.contains("data-entity-group=\"x&quot;&gt;&lt;img src=x onerror=alert(1)&gt;\""), "{out}");
    }

    #[test]
    fn each_entity_is_one_element_holding_its_code_point_slice() {
        let text = "Café 🙂 fever\nno cough";
        let entities = json!([
            {"start": 7, "end": 12, "entity_group": "Sign_symptom", "score": 0.98765, "assertion": "present", "word": "fever"},
            {"start": 16, "end": 21, "entity": "B-Sign_symptom", "assertion": "absent"},
            {"start": 0, "end": 4, "entity_group": "Nonbiological_location"},
        ]);
        let out = fragment(text, &entities).unwrap();
        assert_eq!(out.matches("<mark ").count(), 3);
        assert!(out.contains(">Café</mark> 🙂 <mark"), "{out}");
        assert!(out.contains(concat!(
            "<mark class=\"ent\" data-entity-group=\"Sign_symptom\" data-start=\"7\" data-end=\"12\" data-score=\"0.9877\" ",
            "data-assertion=\"present\" title=\"Sign_symptom 0.99 (present)\" style=\"background-color:#51ec51\">fever</mark>\nno "
        )), "{out}");
        assert!(out.contains("data-start=\"16\" data-end=\"21\" data-assertion=\"absent\" title=\"Sign_symptom (absent)\""), "{out}");
        // The legend names the types shown, the most frequent first.
        let legend = &out[out.find("<div class=\"biomed-ner-legend\">").unwrap()..];
        assert!(legend.find("Sign_symptom").unwrap() < legend.find("Nonbiological_location").unwrap(), "{legend}");
        assert!(out.starts_with("<div class=\"biomed-ner\"><style>") && out.contains(style()));
    }

    #[test]
    fn carriage_returns_survive_html_parsing_and_nul_shows_as_a_replacement() {
        let out = fragment("fever\r\ncough\r\0.", &json!([{"start": 3, "end": 8, "entity_group": "A"}])).unwrap();
        assert!(out.contains("<div class=\"biomed-ner-note\">fev<mark") && out.contains(">er&#13;\nc</mark>ough&#13;\u{fffd}.</div>"), "{out}");
    }

    #[test]
    fn overlapping_and_empty_entities_are_left_out_by_the_rule() {
        let e = |s: usize, t: usize| json!({"start": s, "end": t, "entity_group": format!("T{s}-{t}")});
        let text = "0123456789abcdef";
        let got = marks(text, &json!([e(2, 7), e(0, 5), e(0, 9), e(9, 9), e(9, 12), e(11, 14), e(14, 16), e(10, 11)])).unwrap();
        let spans: Vec<(usize, usize)> = got.shown.iter().map(|m| (m.start, m.end)).collect();
        // The longest at a start wins; later overlapping spans go; touching spans stay.
        assert_eq!(spans, [(0, 9), (9, 12), (14, 16)]);
        assert_eq!(got.left_out, 5);
        let out = fragment(text, &json!([e(0, 5), e(2, 7)])).unwrap();
        assert!(out.contains(">01234</mark>56789abcdef</div>"), "{out}");
    }

    #[test]
    fn bad_entities_are_refused_with_the_reason() {
        for (entities, says) in [
            (json!({"start": 0}), "entities must be a JSON array, not an object"),
            (json!([1]), "entity 0 must be an object, not a number"),
            (json!([{"end": 1, "entity_group": "A"}]), "entity 0 has no \"start\""),
            (json!([{"start": -1, "end": 1, "entity_group": "A"}]), "\"start\" must be a non-negative integer, not -1"),
            (json!([{"start": 0, "end": 9, "entity_group": "A"}]), "entity 0: \"end\" 9 is past the end of the text (3 characters)"),
            (json!([{"start": 2, "end": 1, "entity_group": "A"}]), "entity 0: \"start\" 2 is after \"end\" 1"),
            (json!([{"start": 0, "end": 1}]), "entity 0 has no \"entity_group\""),
            (json!([{"start": 0, "end": 1, "entity_group": 3}]), "\"entity_group\" must be a string, not a number"),
            (json!([{"start": 0, "end": 1, "entity_group": "A", "score": "high"}]), "\"score\" must be a number, not a string"),
            (json!([{"start": 0, "end": 1, "entity_group": "A", "assertion": false}]), "\"assertion\" must be a string, not a boolean"),
        ] {
            let err = fragment("abc", &entities).unwrap_err();
            assert!(err.contains(says), "{entities}: {err}");
        }
        let good = json!([]);
        let bad = json!([{"start": 0, "end": 5, "entity_group": "A"}]);
        let err = page(&[("abc", &good), ("abc", &bad)]).unwrap_err();
        assert!(err.starts_with("note 2: entity 0: \"end\" 5 is past the end"), "{err}");
    }

    #[test]
    fn a_page_has_the_legend_counts_filters_and_an_index_of_many_notes() {
        let one = json!([{"start": 0, "end": 5, "entity_group": "Sign_symptom"}, {"start": 6, "end": 11, "entity_group": "Other<type>"}]);
        let two = json!([{"start": 0, "end": 5, "entity_group": "Sign_symptom"}, {"start": 0, "end": 3, "entity_group": "Age"}]);
        let out = page(&[("fever cough", &one), ("fever", &two)]).unwrap();
        assert!(out.contains("<p class=\"summary\">2 notes, 3 entities (1 entity not shown: empty or overlapping another).</p>"), "{out}");
        let row = |group: &str, width: &str, n: usize| {
            format!("<input type=\"checkbox\" checked data-group=\"{}\"> <span class=\"biomed-ner-swatch\" style=\"background-color:{c}\"></span>{}</label></td><td class=\"bar\"><div style=\"width:{width}%;background-color:{c}\"></div></td><td class=\"count\">{n}</td>",
                group.replace('<', "&lt;").replace('>', "&gt;"), group.replace('<', "&lt;").replace('>', "&gt;"), c = colour(group))
        };
        assert!(out.contains(&row("Sign_symptom", "100.0", 2)), "{out}");
        assert!(out.contains(&row("Other<type>", "50.0", 1)), "{out}");
        assert!(out.find("data-group=\"Sign_symptom\"").unwrap() < out.find("data-group=\"Other&lt;type&gt;\"").unwrap());
        assert_eq!(out.matches("<mark ").count(), 3);
        assert!(!out.contains("<nav"));
        // Self-contained: nothing fetched from elsewhere.
        for outside in ["http:", "https:", "src=", "href=\"/", "@import", "url("] {
            assert!(!out.contains(outside), "{outside}");
        }
        let empty = json!([]);
        let notes: Vec<(&str, &Value)> = (0..=INDEX_FROM).map(|_| ("a note", &empty)).collect();
        let out = page(&notes).unwrap();
        assert!(out.contains("<nav class=\"index\">") && out.contains(&format!("<li><a href=\"#note-{0}\">Note {0}</a> (0): a note</li>", INDEX_FROM + 1)));
        assert!(out.contains(&format!("id=\"note-{}\"", INDEX_FROM + 1)));
        assert!(page(&notes[..INDEX_FROM]).unwrap().find("<nav").is_none());
    }
}
