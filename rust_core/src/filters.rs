//! LIMA's answer filters. Each returns keep or the reason for the drop, so the
//! caller can count every rejection by name.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::error::{CoreError, Result};
use crate::html::Converted;

/// Why a top answer was not kept. The names are the keys of the funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    ScoreBelowMin,
    TooShort,
    TooLong,
    FirstPerson,
    RefersToOtherAnswers,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Reason::ScoreBelowMin,
        Reason::TooShort,
        Reason::TooLong,
        Reason::FirstPerson,
        Reason::RefersToOtherAnswers,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ScoreBelowMin => "score_below_min",
            Reason::TooShort => "too_short",
            Reason::TooLong => "too_long",
            Reason::FirstPerson => "first_person",
            Reason::RefersToOtherAnswers => "refers_to_other_answers",
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
    pub reference_phrases: Vec<String>,
}

pub const DEFAULT_REFERENCE_PHRASES: &[&str] = &[
    "as mentioned",
    "stack exchange",
    "stackexchange",
    "other answer",
    "another answer",
    "above answer",
    "answer above",
    "answer below",
    "previous answer",
    "as others have",
    "as pointed out",
    "accepted answer",
    "this answer",
];

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            enabled: true,
            min_score: 10,
            min_chars: 1200,
            max_chars: 4096,
            first_person_words: vec!["I".into(), "my".into()],
            reference_phrases: DEFAULT_REFERENCE_PHRASES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// A validated, ready-to-run filter set.
pub struct Filters {
    pub config: FilterConfig,
    /// Each word in the exact form given and with its first letter upper-cased:
    /// "my" also catches "My", while "I" does not catch the lowercase "i" that
    /// STEM answers use for an index or the imaginary unit.
    words: Vec<String>,
    phrases: Option<AhoCorasick>,
}

impl Filters {
    pub fn new(config: FilterConfig) -> Result<Self> {
        if config.min_chars > config.max_chars {
            return Err(CoreError::Config(format!(
                "min_chars ({}) is larger than max_chars ({})",
                config.min_chars, config.max_chars
            )));
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
        let phrases: Vec<String> = config
            .reference_phrases
            .iter()
            .map(|p| normalise_space(&p.to_lowercase()))
            .filter(|p| !p.is_empty())
            .collect();
        let phrases = if phrases.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(&phrases)
                    .map_err(|e| CoreError::Config(format!("reference phrases: {e}")))?,
            )
        };
        Ok(Filters {
            config,
            words,
            phrases,
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
        if let Some(ac) = &self.phrases {
            if ac.is_match(&normalise_space(&answer.prose)) {
                return Some(Reason::RefersToOtherAnswers);
            }
        }
        None
    }

    fn first_person(&self, prose: &str) -> bool {
        prose
            .split(|c: char| !c.is_alphanumeric())
            .any(|tok| self.words.iter().any(|w| w == tok))
    }
}

fn normalise_space(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
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
            (filled("<p>I think so.</p>"), Some(Reason::FirstPerson)),
            (
                filled("<p>In my experience.</p>"),
                Some(Reason::FirstPerson),
            ),
            (filled("<p>My favourite.</p>"), Some(Reason::FirstPerson)),
            (filled("<p>I'd say yes.</p>"), Some(Reason::FirstPerson)),
            // lowercase i is the imaginary unit, not the narrator
            (filled("<p>Multiply by i to rotate.</p>"), None),
            // words inside code do not count
            (filled("<pre><code>I = my_list[i]\n</code></pre>"), None),
            (filled("<p>Use <code>my</code> keyword.</p>"), None),
            // words that merely contain the letters do not count
            (filled("<p>Myriad items and Iceland.</p>"), None),
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
                prose: String::new(),
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
    }
}
