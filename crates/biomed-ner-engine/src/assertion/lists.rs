//! The rules' phrases: triggers of absence and possibility with their direction, pseudo-
//! triggers that look like triggers and are not, and words that end a trigger's scope; and
//! where they occur in a note's tokens. Where phrases overlap, the longest one starting at a
//! token wins; a pseudo-trigger hides the triggers that start inside it.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::text::Text;

const ABSENT_FORWARD: &str = "no|not|without|denied|denies|deny|denying|negative for|free of|absence of|absent|\
no evidence of|no signs of|no sign of|no history of|never|neither|nor|none|lack of|lacked|lacking|did not|does not|\
do not|was not|were not|had not|has not|have not|is not|are not|cannot|could not|failed to|refused|declined|quit|\
stopped|no further|ruled out|rules out|excluded|unremarkable for|exclusion of|not have|not show|no longer|free from|\
absent of|nil|nothing|cessation of|withdrawal of|resolution of|removal of|weaned from|weaned off|discontinued|\
discontinuation of|ruling out|off|unable to|instead of|rather than|withholding|withheld|recovered from|relief of|\
not detected|not detect|denied any|without any|refusing|refuses|refuse|stopping|discontinuing|holding|\
held|avoided|avoiding|no more|interruption of|interrupted|tapered off|withdrew|ceasing|suspension of|suspended";
const ABSENT_BACKWARD: &str = "was negative|were negative|negative|was excluded|were excluded|excluded|\
was ruled out|were ruled out|ruled out|were absent|was absent|absent|not seen|not detected|not found|not observed|\
not identified|not present|were not|was not|unremarkable|not noted|not evident|not revealed|did not|free|\
disappeared|resolved|subsided|vanished|not performed|not undertaken|unavailable|not considered|not done|\
not obtained|discontinued|removed|terminated|withdrawn|stopped|ceased|not administered|not given|not required|\
not needed|deferred|cancelled|canceled|abandoned|relieved|cleared|cured|absorbed|suspended|weaned off|refused|\
was changed|were changed|not reveal|were not observed|resolved completely";
const POSSIBLE_FORWARD: &str = "possible|possibly|probable|probably|suspected|suspect|suspicion of|\
suspicious for|suspicious of|suggestive of|suggesting|suggested|may|might|likely|presumed|presumptive|presumably|\
questionable|concern for|concerning for|differential diagnosis|differential|rule out|r / o|to exclude|to rule out|\
uncertain|unclear|equivocal|possibility of|potential|thought to be|considered|consider|versus|vs|whether|query|\
impression of|compatible with|indicative of|doubtful|cannot exclude|could not exclude|can not exclude|not exclude|\
presumptive diagnosis of|evaluate for|evaluation for|investigate|investigation for|screening for|to evaluate|\
assess for|risk of|risk for|prophylactic|prophylaxis";
const POSSIBLE_BACKWARD: &str = "was suspected|were suspected|suspected|was considered|was possible|\
could not be excluded|cannot be excluded|can not be excluded|could not be ruled out|cannot be ruled out|\
not excluded|not ruled out|unlikely|was likely|likely|was questionable|questionable|possible|probable|\
could not be ruled|was not excluded|?";
const PSEUDO: &str = "no increase|no change|no significant change|not only|no further change|not necessarily|\
without difficulty|not certain whether|not cause|no interval change|gram negative|gram - negative|not extend|\
not drain|without any change|not improve|did not improve|no improvement|not respond|did not respond|\
failed to respond|not tolerate|no response|not resolve|did not resolve|not significant|not well|not until|\
no sooner|not responsive|despite|whether or not|not adequately|not shown|data not shown";
const TERMINATION: &str = "but|however|although|though|except|aside|apart|which|who|yet|whereas|nevertheless|\
still|while|presented|presents|presenting|revealed|showed|shows|demonstrated|confirmed|developed|complained|\
complaining|reported|underwent|admitted|started|began|diagnosed|treated|given|received|;|:|because|since|due|\
secondary|after|later|then|therefore|thus|so|until";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Absent,
    Possible,
    Pseudo,
    Termination,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Forward,
    Backward,
    Neither,
}

struct Rule {
    phrase: Vec<String>,
    kind: Kind,
    direction: Direction,
}

struct Rules {
    /// Longest phrase first.
    rules: Vec<Rule>,
    /// The rules whose phrase begins with a word, in the order of `rules`.
    by_first: HashMap<String, Vec<usize>>,
}

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let lists = [
            (ABSENT_FORWARD, Kind::Absent, Direction::Forward),
            (ABSENT_BACKWARD, Kind::Absent, Direction::Backward),
            (POSSIBLE_FORWARD, Kind::Possible, Direction::Forward),
            (POSSIBLE_BACKWARD, Kind::Possible, Direction::Backward),
            (PSEUDO, Kind::Pseudo, Direction::Neither),
            (TERMINATION, Kind::Termination, Direction::Neither),
        ];
        let mut rules: Vec<Rule> = lists
            .iter()
            .flat_map(|&(list, kind, direction)| {
                list.split('|').map(move |p| {
                    let t = Text::new(p);
                    Rule { phrase: (0..t.tokens()).map(|i| t.word(i).to_string()).collect(), kind, direction }
                })
            })
            .filter(|r| !r.phrase.is_empty())
            .collect();
        rules.sort_by_key(|r| std::cmp::Reverse(r.phrase.len()));
        let mut by_first: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, r) in rules.iter().enumerate() {
            by_first.entry(r.phrase[0].clone()).or_default().push(i);
        }
        Rules { rules, by_first }
    })
}

/// The most tokens in a phrase.
pub(super) fn longest() -> usize {
    rules().rules.first().map_or(1, |r| r.phrase.len())
}

/// A phrase found in the note: its first token, its length in tokens, what it is.
#[derive(Clone, Copy)]
pub(super) struct Match {
    pub first: u32,
    pub len: u8,
    pub kind: Kind,
    pub direction: Direction,
}

impl Match {
    pub fn end(&self) -> usize {
        self.first as usize + self.len as usize
    }
}

/// The phrases in `text`, in order of their first token.
pub(super) fn matches(text: &Text) -> Vec<Match> {
    let Rules { rules, by_first } = rules();
    let mut out = Vec::new();
    let mut blocked_until = 0;
    let mut i = 0;
    while i < text.tokens() {
        let Some(candidates) = by_first.get(text.word(i)) else {
            i += 1;
            continue;
        };
        let fits = |r: &Rule| i + r.phrase.len() <= text.tokens() && r.phrase.iter().enumerate().all(|(k, p)| p == text.word(i + k));
        if let Some(hit) = candidates.iter().map(|&k| &rules[k]).find(|r| fits(r)) {
            let n = hit.phrase.len();
            let same = candidates.iter().map(|&k| &rules[k]).filter(|r| r.phrase == hit.phrase);
            if same.clone().any(|r| r.kind == Kind::Pseudo) {
                blocked_until = i + n;
                i += n;
                continue;
            }
            if i >= blocked_until {
                out.extend(same.map(|r| Match { first: i as u32, len: n as u8, kind: r.kind, direction: r.direction }));
            }
        }
        i += 1;
    }
    out
}

/// The phrase of `m`, its words joined by spaces.
pub(super) fn phrase(text: &Text, m: &Match) -> String {
    (m.first as usize..m.end()).map(|t| text.word(t)).collect::<Vec<_>>().join(" ")
}
