//! LIMA's answer filters. Each returns keep or the reason for the drop, so the
//! caller can count every rejection by name.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::error::{CoreError, Result};
use crate::html::{Converted, Style};

/// Why a top answer was not kept. The names are the keys of the funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    ScoreBelowMin,
    TooShort,
    TooLong,
    FirstPerson,
    RefersToOtherAnswers,
    RefersToRemovedImage,
    MostlyLinks,
}

impl Reason {
    pub const ALL: [Reason; 7] = [
        Reason::ScoreBelowMin,
        Reason::TooShort,
        Reason::TooLong,
        Reason::FirstPerson,
        Reason::RefersToOtherAnswers,
        Reason::RefersToRemovedImage,
        Reason::MostlyLinks,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ScoreBelowMin => "score_below_min",
            Reason::TooShort => "too_short",
            Reason::TooLong => "too_long",
            Reason::FirstPerson => "first_person",
            Reason::RefersToOtherAnswers => "refers_to_other_answers",
            Reason::RefersToRemovedImage => "refers_to_removed_image",
            Reason::MostlyLinks => "mostly_links",
        }
    }
}

/// The paper's defaults; every field is a config value on the Python side.
#[derive(Debug, Clone)]
pub struct FilterConfig {
    /// Off for the unfiltered ablation: every top answer is kept.
    pub enabled: bool,
    pub min_score: i64,
    pub min_chars: usize,
    pub max_chars: usize,
    pub first_person_words: Vec<String>,
    /// Words after which a capital "I" is a numeral ("World War I").
    pub numeral_words: Vec<String>,
    /// Matched case-insensitively at word boundaries; `@` alone stands for
    /// any @-mention of a user.
    pub reference_phrases: Vec<String>,
    /// Drop answers that still point at an image that was removed.
    pub image_references: bool,
    pub image_phrases: Vec<String>,
    /// Drop answers whose text is mostly list items that are only links;
    /// this share of the text (0 disables).
    pub max_link_list_share: f64,
    /// How the Markdown is written.
    pub style: Style,
}

pub const DEFAULT_REFERENCE_PHRASES: &[&str] = &[
    "as mentioned",
    "stack exchange",
    "stackexchange",
    "stack overflow",
    "other answer",
    "other answers",
    "another answer",
    "above answer",
    "answer above",
    "answer below",
    "answers above",
    "answers below",
    "previous answer",
    "previous answers",
    "'s answer",
    "'s answers",
    "the answers to",
    "accepted answer",
    "see this answer",
    "this answer by",
    "as others have",
    "as others said",
    "as others mentioned",
    "others have said",
    "others have mentioned",
    "others have pointed out",
    "as pointed out",
    "as noted in comments",
    "in the comments",
    "edit:",
    "update:",
    "@",
];

pub const DEFAULT_NUMERAL_WORDS: &[&str] = &[
    "war",
    "type",
    "part",
    "phase",
    "class",
    "stage",
    "chapter",
    "section",
    "book",
    "volume",
    "act",
    "grade",
    "level",
    "category",
    "schedule",
    "article",
    "appendix",
    "series",
    "model",
    "mark",
    "henry",
    "elizabeth",
    "charles",
    "george",
    "james",
    "william",
    "edward",
    "louis",
    "richard",
    "mary",
    "peter",
    "napoleon",
    "alexander",
    "frederick",
    "leo",
    "john",
    "pope",
    "king",
    "queen",
    "emperor",
    "tsar",
    "world",
];

pub const DEFAULT_IMAGE_PHRASES: &[&str] = &[
    "image below",
    "image above",
    "picture below",
    "picture above",
    "figure below",
    "figure above",
    "diagram below",
    "diagram above",
    "graph below",
    "graph above",
    "chart below",
    "shown below",
    "shown above",
    "the following image",
    "the following picture",
    "the following figure",
    "the following diagram",
    "the following graph",
    "this image",
    "this picture",
    "this photo",
    "this diagram",
    "this graph",
    "this chart",
    "this plot",
    "this screenshot",
    "the screenshot",
    "in the image",
    "in the picture",
    "see image",
    "see figure",
    "see the image",
    "see the picture",
    "looks like this",
];

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            enabled: true,
            min_score: 10,
            min_chars: 1200,
            max_chars: 4096,
            first_person_words: vec!["I".into(), "my".into()],
            numeral_words: owned(DEFAULT_NUMERAL_WORDS),
            reference_phrases: owned(DEFAULT_REFERENCE_PHRASES),
            image_references: true,
            image_phrases: owned(DEFAULT_IMAGE_PHRASES),
            max_link_list_share: 0.5,
            style: Style::default(),
        }
    }
}

/// Phrases matched case-insensitively, each end on a word boundary where the
/// phrase has a word character there.
struct Phrases {
    ac: Option<AhoCorasick>,
    phrases: Vec<String>,
    mentions: bool,
}

impl Phrases {
    fn new(list: &[String], what: &str) -> Result<Self> {
        let mut mentions = false;
        let mut phrases = Vec::new();
        for p in list {
            let p = normalise(p);
            if p == "@" {
                mentions = true;
            } else if !p.is_empty() {
                phrases.push(p);
            }
        }
        let ac = if phrases.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(&phrases)
                    .map_err(|e| CoreError::Config(format!("{what}: {e}")))?,
            )
        };
        Ok(Phrases {
            ac,
            phrases,
            mentions,
        })
    }

    fn find(&self, text: &str) -> bool {
        let text = normalise(text);
        let b = text.as_bytes();
        let word = |i: usize| -> bool {
            text.get(i..)
                .and_then(|s| s.chars().next())
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        };
        let word_before = |i: usize| -> bool {
            text.get(..i)
                .and_then(|s| s.chars().next_back())
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        };
        if let Some(ac) = &self.ac {
            for m in ac.find_overlapping_iter(&text) {
                let p = self.phrases[m.pattern().as_usize()].as_bytes();
                let starts_word = p.first().is_some_and(|c| c.is_ascii_alphanumeric());
                let ends_word = p.last().is_some_and(|c| c.is_ascii_alphanumeric());
                if (starts_word && word_before(m.start())) || (ends_word && word(m.end())) {
                    continue;
                }
                return true;
            }
        }
        if self.mentions {
            for (i, _) in text.match_indices('@') {
                if !word_before(i) && word(i + 1) && b.get(i + 1) != Some(&b'_') {
                    return true;
                }
            }
        }
        false
    }
}

/// A validated, ready-to-run filter set.
pub struct Filters {
    pub config: FilterConfig,
    /// Each word in the exact form given and with its first letter upper-cased:
    /// "my" also catches "My", while "I" does not catch the lowercase "i" that
    /// STEM answers use for an index or the imaginary unit.
    words: Vec<String>,
    numerals: Vec<String>,
    references: Phrases,
    images: Phrases,
}

impl Filters {
    pub fn new(config: FilterConfig) -> Result<Self> {
        if config.min_chars > config.max_chars {
            return Err(CoreError::Config(format!(
                "min_chars ({}) is larger than max_chars ({})",
                config.min_chars, config.max_chars
            )));
        }
        if !(0.0..=1.0).contains(&config.max_link_list_share) {
            return Err(CoreError::Config(format!(
                "max_link_list_share ({}) must be between 0 and 1",
                config.max_link_list_share
            )));
        }
        if config.style.max_depth == 0 {
            return Err(CoreError::Config("max_depth must be at least 1".into()));
        }
        let mut words = Vec::new();
        for w in &config.first_person_words {
            if w.is_empty() || w.chars().any(|c| !c.is_alphanumeric()) {
                return Err(CoreError::Config(format!(
                    "first-person word {w:?} must be one word of letters"
                )));
            }
            words.push(w.clone());
            let mut cap: String = w.chars().take(1).flat_map(char::to_uppercase).collect();
            cap.extend(w.chars().skip(1));
            if &cap != w {
                words.push(cap);
            }
        }
        let numerals = config
            .numeral_words
            .iter()
            .map(|w| w.to_lowercase())
            .collect();
        let references = Phrases::new(&config.reference_phrases, "reference phrases")?;
        let images = Phrases::new(&config.image_phrases, "image phrases")?;
        Ok(Filters {
            config,
            words,
            numerals,
            references,
            images,
        })
    }

    pub fn score_ok(&self, score: i64) -> bool {
        !self.config.enabled || score >= self.config.min_score
    }

    /// The style filters, in the order they are counted.
    pub fn check(&self, answer: &Converted) -> Option<Reason> {
        if !self.config.enabled {
            return None;
        }
        let chars = answer.markdown.chars().count();
        if chars < self.config.min_chars {
            return Some(Reason::TooShort);
        }
        if chars > self.config.max_chars {
            return Some(Reason::TooLong);
        }
        if self.first_person(&answer.prose) {
            return Some(Reason::FirstPerson);
        }
        if self.references.find(&answer.prose) {
            return Some(Reason::RefersToOtherAnswers);
        }
        if self.config.image_references
            && answer.images > 0
            && (answer.dangling_image || self.images.find(&answer.prose))
        {
            return Some(Reason::RefersToRemovedImage);
        }
        let share = self.config.max_link_list_share;
        if share > 0.0
            && answer.link_list_chars > 0
            && answer.link_list_chars as f64 >= share * answer.text_chars.max(1) as f64
        {
            return Some(Reason::MostlyLinks);
        }
        None
    }

    /// Whether the prose speaks in the first person. Math is not in the
    /// prose (the converter keeps it out); a capital "I" next to an operator
    /// or a digit, after a numeral word ("Type I") or as a letter ("I's") is
    /// not the narrator.
    fn first_person(&self, prose: &str) -> bool {
        let mut prev_word: &str = "";
        let mut prev_end = 0;
        for (start, tok) in tokens(prose) {
            let end = start + tok.len();
            let hit = self.words.iter().any(|w| w == tok);
            if hit && !(tok == "I" && self.symbol_i(prose, start, end, prev_word, prev_end)) {
                return true;
            }
            prev_word = tok;
            prev_end = end;
        }
        false
    }

    fn symbol_i(&self, text: &str, start: usize, end: usize, prev: &str, prev_end: usize) -> bool {
        let before = text[..start].trim_end_matches([' ', '\t']);
        let after = text[end..].trim_start_matches([' ', '\t']);
        let op = |c: char| c.is_ascii_digit() || "=+*/^<>|×·⊗⊕≠≈≤≥−∝→∈±_".contains(c);
        if before.chars().next_back().is_some_and(op) || after.chars().next().is_some_and(op) {
            return true;
        }
        // Glued to a hyphen ("I-beam") or enclosed like an argument ("f(I)", "(I, J)").
        let left = text[..start].chars().next_back();
        let right = text[end..].chars().next();
        if left == Some('-') || right == Some('-') {
            return true;
        }
        if matches!(left, Some('(' | ',' | '[')) && matches!(right, Some(')' | ',' | ']')) {
            return true;
        }
        // The letter, not the pronoun: "I's", "an I", "capital I".
        let rest = &text[end..];
        if rest.starts_with("'s") || rest.starts_with("’s") {
            return true;
        }
        // "World War I", "Type I error": a numeral word right before, in the same sentence.
        let gap = &text[prev_end..start];
        if !prev.is_empty()
            && gap.chars().all(|c| c == ' ')
            && self.numerals.iter().any(|n| n.eq_ignore_ascii_case(prev))
        {
            return true;
        }
        // "I" next to another Roman numeral letter ("I V", "II") is a numeral.
        let roman = |s: &str| !s.is_empty() && s.chars().all(|c| "IVXLC".contains(c));
        let next_word = after
            .split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or("");
        roman(next_word) && next_word != "I"
    }
}

/// Alphanumeric tokens with their byte offsets.
fn tokens(s: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        if c.is_alphanumeric() {
            start.get_or_insert(i);
        } else if let Some(st) = start.take() {
            out.push((st, &s[st..i]));
        }
    }
    if let Some(st) = start {
        out.push((st, &s[st..]));
    }
    out.into_iter()
}

/// Lower-case, one space between words, straight apostrophes.
fn normalise(s: &str) -> String {
    let s = s.replace(['’', '‘'], "'");
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::html::html_to_markdown;

    fn filled(prose_html: &str) -> String {
        // Pad to a length the length filter accepts, with neutral text.
        let pad = "<p>".to_string() + &"Hops add bitterness to beer. ".repeat(50) + "</p>";
        format!("{prose_html}{pad}")
    }

    /// One row per case: answer HTML, expected rejection (None = kept).
    /// The sentences are cut from real answers (site/answer id in the comment).
    #[test]
    fn filter_table() {
        let f = Filters::new(FilterConfig::default()).expect("default config is valid");
        let cases: Vec<(String, Option<Reason>)> = vec![
            ("<p>Too short.</p>".into(), Some(Reason::TooShort)),
            (
                format!("<p>{}</p>", "x".repeat(4097)),
                Some(Reason::TooLong),
            ),
            (filled("<p>Neutral text.</p>"), None),
            // beer a216: "but I don't know if there is"
            (
                filled("<p>Diacetyl is reabsorbed, but I don't know if there is more.</p>"),
                Some(Reason::FirstPerson),
            ),
            // beer a591: "In my opinion it's a novelty"
            (
                filled("<p>In my opinion it's a novelty.</p>"),
                Some(Reason::FirstPerson),
            ),
            (filled("<p>My favourite.</p>"), Some(Reason::FirstPerson)),
            (filled("<p>I'd say yes.</p>"), Some(Reason::FirstPerson)),
            // qc a2300: "(I had no idea how to scale)"
            (
                filled("<p>Scaling (I had no idea how) confused me.</p>"),
                Some(Reason::FirstPerson),
            ),
            // lowercase i is the imaginary unit, not the narrator
            (filled("<p>Multiply by i to rotate.</p>"), None),
            // words inside code do not count
            (filled("<pre><code>I = my_list[i]\n</code></pre>"), None),
            (filled("<p>Use <code>my</code> keyword.</p>"), None),
            // words that merely contain the letters do not count
            (filled("<p>Myriad items and Iceland.</p>"), None),
            // qc a1810: the identity inside math
            (
                filled("<p>Assume Alice and Bob share $(\\mathbb{I}\\otimes U)|\\Psi\\rangle$ instead.</p>"),
                None,
            ),
            (filled("<p>The display $$I = \\int f$$ holds.</p>"), None),
            (filled("<p>Inline \\(I_0\\) works too.</p>"), None),
            // a symbol next to an operator or a digit
            (filled("<p>Ohm's law reads V = I R for a resistor.</p>"), None),
            (filled("<p>Take I-beam steel.</p>"), None),
            // numerals after a numeral word
            (filled("<p>Rationing in World War I cut the strength of beer.</p>"), None),
            // qc a93: "Type I SPDC only produces"
            (filled("<p>Type I SPDC only produces one pair.</p>"), None),
            (filled("<p>A Type I error, see Part I and Phase I.</p>"), None),
            // beer a136: the letter, "the two letter I's"
            (filled("<p>It is referring to the two letter I's in the name.</p>"), None),
            // qc a119: a quoted question is someone else's first person
            (
                filled("<blockquote><p>I was looking for what the Hadamard does.</p></blockquote>"),
                None,
            ),
            // currency is not math: the "I" between prices counts
            (
                filled("<p>It costs $5 and I paid $10 for it.</p>"),
                Some(Reason::FirstPerson),
            ),
            (
                filled("<p>As mentioned in the other answer, yes.</p>"),
                Some(Reason::RefersToOtherAnswers),
            ),
            (
                filled("<p>Welcome to Stack\nExchange.</p>"),
                Some(Reason::RefersToOtherAnswers),
            ),
            (
                filled("<p>See the ACCEPTED ANSWER.</p>"),
                Some(Reason::RefersToOtherAnswers),
            ),
            (filled("<p>See <code>this answer</code>.</p>"), None),
            // qc a51: the answer speaking of itself is not another answer
            (
                filled("<p>For the purposes of this answer, the time complexity is of little importance.</p>"),
                None,
            ),
            (
                filled("<p>Per Jon’s and Ann's answers, it works.</p>"),
                Some(Reason::RefersToOtherAnswers),
            ),
            (
                filled("<p>See the answers to the related questions.</p>"),
                Some(Reason::RefersToOtherAnswers),
            ),
            (
                filled("<p>As others said, it is stale.</p>"),
                Some(Reason::RefersToOtherAnswers),
            ),
            // beer a471: "Edit: I failed to find"
            (
                filled("<p>Edit: the brewery closed.</p>"),
                Some(Reason::RefersToOtherAnswers),
            ),
            (filled("<p>A credit: none.</p>"), None),
            // qc a24: "thanks @Pavel"
            (
                filled("<p>(Q# only works with MS's QDK, thanks @Pavel)</p>"),
                Some(Reason::RefersToOtherAnswers),
            ),
            (filled("<p>Write to brewer@example.com.</p>"), None),
            // qc a132: "Notice, carefully in the above picture"
            (
                filled("<p><a href=\"https://i.stack.imgur.com/hSnaX.png\"><img src=\"https://i.stack.imgur.com/hSnaX.png\" alt=\"enter image description here\"></a></p><p>Notice in this image that the lines match.</p>"),
                Some(Reason::RefersToRemovedImage),
            ),
            // qc a1186: "a circuit like this one:" then the image
            (
                filled("<p>when using a circuit like this one:</p><p><img src=\"https://i.stack.imgur.com/3gwhz.png\"></p>"),
                Some(Reason::RefersToRemovedImage),
            ),
            // an image no sentence leans on
            (
                filled("<p><img src=\"https://i.stack.imgur.com/x.png\"></p><p>The tamp is cylindrical.</p>"),
                None,
            ),
            // a list of bare links
            (
                format!(
                    "<p>Some resources.</p><ul>{}</ul>",
                    "<li><a href=\"https://example.org/a\">Quantum Computing for the Very Curious by Matuschak</a></li>".repeat(30)
                ),
                Some(Reason::MostlyLinks),
            ),
        ];
        for (i, (html, want)) in cases.iter().enumerate() {
            let c = html_to_markdown(html);
            assert_eq!(f.check(&c), *want, "case {i}: {html:.80}");
        }
    }

    #[test]
    fn boundaries_are_inclusive() {
        let f = Filters::new(FilterConfig::default()).expect("valid");
        for (n, want) in [
            (1199, Some(Reason::TooShort)),
            (1200, None),
            (4096, None),
            (4097, Some(Reason::TooLong)),
        ] {
            let c = Converted {
                markdown: "é".repeat(n),
                ..Converted::default()
            };
            assert_eq!(f.check(&c), want, "{n} chars");
        }
    }

    #[test]
    fn disabled_keeps_everything() {
        let f = Filters::new(FilterConfig {
            enabled: false,
            ..FilterConfig::default()
        })
        .expect("valid");
        assert!(f.score_ok(-5));
        assert_eq!(f.check(&html_to_markdown("<p>I</p>")), None);
    }

    #[test]
    fn bad_config_is_refused() {
        let bad = FilterConfig {
            min_chars: 10,
            max_chars: 5,
            ..FilterConfig::default()
        };
        assert!(Filters::new(bad).is_err());
        let bad = FilterConfig {
            first_person_words: vec!["two words".into()],
            ..FilterConfig::default()
        };
        assert!(Filters::new(bad).is_err());
        let bad = FilterConfig {
            max_link_list_share: 1.5,
            ..FilterConfig::default()
        };
        assert!(Filters::new(bad).is_err());
    }
}
