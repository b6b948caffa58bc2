//! Line-level clean-up after HTML conversion: what a reader of the answer
//! without its links and footnotes should not see. A link whose text was its
//! URL leaves a private-use mark where it stood; footnote markers (`[1]`) and
//! reference lines (`[1] Author, Title`) have no target once links are gone.
//! Only lines where something was removed are re-spaced, so other text stays
//! byte for byte; code (fenced or inline) is never touched.

/// Where a link whose text was its URL stood.
pub const DROPPED: &str = "\u{E000}";
const DROPPED_CHAR: char = '\u{E000}';

/// Clean the Markdown; returns it with the count of footnote markers and
/// reference lines removed.
pub fn markdown(md: &str) -> (String, u32) {
    if !md.contains(DROPPED_CHAR) && !md.contains('[') {
        return (md.trim().to_string(), 0);
    }
    let mut out: Vec<String> = Vec::new();
    let mut removed = 0u32;
    let mut fence: Option<usize> = None;
    let mut dropped_line = false;
    for line in md.split('\n') {
        let (prefix, content) = split_prefix(line);
        let ticks = content.chars().take_while(|&c| c == '`').count();
        if let Some(n) = fence {
            if ticks == n && content[ticks..].trim().is_empty() {
                fence = None;
            }
            out.push(line.to_string());
            continue;
        }
        if ticks >= 3 {
            fence = Some(ticks);
            out.push(line.to_string());
            continue;
        }
        if footnote_at(content, 0).is_some() {
            removed += 1;
            dropped_line = true;
            continue;
        }
        let (cleaned, n, touched) = strip_marks(content);
        removed += n;
        if !touched {
            out.push(line.to_string());
            continue;
        }
        let cleaned = respace(&cleaned);
        if is_leftover(&cleaned) {
            dropped_line = true;
            // A "see" or "Sources:" line that led into it goes too.
            let lead = out.iter().rposition(|l| !is_blank(l));
            if let Some(at) = lead {
                let (_, text) = split_prefix(&out[at]);
                if is_leftover(text.trim()) {
                    out.truncate(at);
                }
            }
            continue;
        }
        let mut l = prefix.to_string();
        l.push_str(&cleaned);
        out.push(l);
    }
    if dropped_line {
        // Removed lines must not leave two blank lines (or an empty item) behind.
        let mut kept: Vec<String> = Vec::with_capacity(out.len());
        for l in out {
            let blank = is_blank(&l);
            if blank && kept.last().is_some_and(|p| is_blank(p)) {
                continue;
            }
            kept.push(l);
        }
        out = kept;
    }
    (out.join("\n").trim().to_string(), removed)
}

/// The prose the filters read, with footnote markers and reference lines gone.
pub fn prose(p: &str) -> String {
    if !p.contains('[') && !p.contains(DROPPED_CHAR) {
        return p.trim().to_string();
    }
    let mut out = String::with_capacity(p.len());
    for line in p.split('\n') {
        if footnote_at(line.trim_start(), 0).is_some() {
            continue;
        }
        let (cleaned, _, _) = strip_marks(line);
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&cleaned);
    }
    out.trim().to_string()
}

fn is_blank(l: &str) -> bool {
    l.chars().all(|c| c == '>' || c.is_whitespace())
}

/// Container prefix and list marker, then the line's text.
fn split_prefix(line: &str) -> (&str, &str) {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && (b[i] == b' ' || b[i] == b'>') {
        i += 1;
    }
    let rest = &line[i..];
    let marker = if rest.starts_with("* ") || rest.starts_with("- ") || rest.starts_with("+ ") {
        2
    } else {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && digits < 10 && rest[digits..].starts_with(". ") {
            digits + 2
        } else {
            0
        }
    };
    line.split_at(i + marker)
}

/// A footnote marker `[n]` (1 to 3 digits) at byte `at`, not glued to a word
/// before it (`q[1]` is an index); returns its length.
fn footnote_at(s: &str, at: usize) -> Option<usize> {
    let rest = s.get(at..)?;
    let b = rest.as_bytes();
    if b.first() != Some(&b'[') {
        return None;
    }
    let digits = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 3 || b.get(1 + digits) != Some(&b']') {
        return None;
    }
    let before = s[..at].chars().last();
    if before.is_some_and(|c| c.is_alphanumeric() || c == '\\' || c == '$' || c == '_') {
        return None;
    }
    // `[1](...)` or `[1][...]` would be link syntax, `[1]:` a definition: all go.
    Some(digits + 2)
}

/// Remove drop marks and footnote markers outside inline code; returns the
/// text, the footnote count and whether anything was removed.
fn strip_marks(s: &str) -> (String, u32, bool) {
    let mut out = String::with_capacity(s.len());
    let mut n = 0;
    let mut touched = false;
    let mut i = 0;
    let b = s.as_bytes();
    while i < s.len() {
        let c = b[i];
        if c == b'\\' && i + 1 < s.len() {
            // An escaped character is text: copy both.
            let len = s[i + 1..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&s[i..i + 1 + len]);
            i += 1 + len;
            continue;
        }
        if c == b'`' {
            let run = b[i..].iter().take_while(|&&x| x == b'`').count();
            let ticks = &s[i..i + run];
            if let Some(end) = s[i + run..].find(ticks) {
                let close = i + run + end + run;
                out.push_str(&s[i..close]);
                i = close;
                continue;
            }
            out.push_str(ticks);
            i += run;
            continue;
        }
        if let Some(len) = footnote_at(s, i) {
            n += 1;
            touched = true;
            i += len;
            continue;
        }
        let Some(ch) = s[i..].chars().next() else {
            break;
        };
        if ch == DROPPED_CHAR {
            touched = true;
        } else {
            out.push(ch);
        }
        i += ch.len_utf8();
    }
    (out, n, touched)
}

/// Re-space a line that lost pieces: no doubled spaces, no space before
/// punctuation, no empty brackets or separators left dangling.
fn respace(s: &str) -> String {
    let mut t = s.to_string();
    for _ in 0..8 {
        let before = t.clone();
        for (from, to) in [
            ("()", ""),
            ("( )", ""),
            ("[]", ""),
            ("  ", " "),
            (" ,", ","),
            (" .", "."),
            (" ;", ";"),
            (" :", ":"),
            (" )", ")"),
            ("( ", "("),
            (",,", ","),
            (", or,", ","),
            (", and,", ","),
            ("- -", "-"),
            ("– –", "–"),
            ("— —", "—"),
            (",.", "."),
            (":.", "."),
        ] {
            if t.contains(from) {
                t = t.replace(from, to);
            }
        }
        if t == before {
            break;
        }
    }
    let mut t = t.trim().to_string();
    // Separators left at either end.
    loop {
        let trimmed = t
            .trim_end_matches([' ', '-', '–', '—', ','])
            .trim_end()
            .to_string();
        let trimmed = trimmed
            .trim_start_matches([',', '.', ';', ':', '-', '–', '—', ' '])
            .to_string();
        if trimmed == t {
            break;
        }
        t = trimmed;
    }
    // "Look at this page:" with the page gone ends the sentence.
    if let Some(stripped) = t.strip_suffix(':') {
        if stripped.split_whitespace().count() > 4 {
            t = format!("{stripped}.");
        }
    }
    t
}

/// What is left of a line that was only a pointer at a removed link.
fn is_leftover(s: &str) -> bool {
    let words = s.split_whitespace().count();
    if words == 0 {
        return true;
    }
    if s.ends_with(':') && words <= 4 {
        return true;
    }
    let bare = s
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase();
    matches!(
        bare.as_str(),
        "see"
            | "source"
            | "sources"
            | "link"
            | "links"
            | "reference"
            | "references"
            | "via"
            | "here"
            | "see also"
            | "more info"
            | "more information"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per case: Markdown with marks in, cleaned Markdown out.
    #[test]
    fn tidy_table() {
        let d = DROPPED;
        let cases: Vec<(String, &str)> = vec![
            (format!("Source: {d}"), ""),
            (format!("see\n\n* {d}"), ""),
            (format!("Viva ({d}).\nNext"), "Viva.\nNext"),
            (
                format!("in episode 127 - {d} - the rate"),
                "in episode 127 - the rate",
            ),
            (
                format!("To see which beer is available, look at this page: {d}"),
                "To see which beer is available, look at this page.",
            ),
            (
                "as pointed out in a comment,[1] it has".into(),
                "as pointed out in a comment, it has",
            ),
            (
                "Registers q[0] and q[1] are added".into(),
                "Registers q[0] and q[1] are added",
            ),
            ("Text.\n\n[1] Thanks to Sebastian.".into(), "Text."),
            ("`a [1] b` and [2]".into(), "`a [1] b` and"),
            ("```\n[1] in code\n```".into(), "```\n[1] in code\n```"),
            (
                "> as described in [1], [2], or [3], this".into(),
                "> as described in, this",
            ),
        ];
        for (md, want) in cases {
            assert_eq!(markdown(&md).0, want, "{md:?}");
        }
    }

    #[test]
    fn prose_loses_markers() {
        assert_eq!(prose("so complex [1]?\n[1] Hawking"), "so complex ?");
    }
}
