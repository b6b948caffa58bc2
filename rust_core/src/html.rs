//! HTML to Markdown, shaped by what LIMA keeps: code (fenced and inline, text
//! untouched), lists (nested), paragraphs, line breaks, block quotes and
//! headings survive; links become their text, images vanish, every other tag
//! is dropped and its text kept. html5ever's tokenizer does the HTML lexing
//! and entity decoding; this module only decides what each token becomes.
//!
//! Besides the Markdown, the converter returns the "prose": the text outside
//! code, which is what the style filters look at.

use std::cell::RefCell;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Converted {
    pub markdown: String,
    /// Text outside code blocks and inline code, blocks separated by newlines.
    pub prose: String,
}

/// Convert one post body.
pub fn html_to_markdown(html: &str) -> Converted {
    let tokenizer = Tokenizer::new(Sink::default(), TokenizerOpts::default());
    let queue = BufferQueue::default();
    queue.push_back(StrTendril::from_slice(html));
    let _ = tokenizer.feed(&queue);
    tokenizer.end();
    let state = tokenizer.sink.state.into_inner();
    state.finish()
}

#[derive(Default)]
struct Sink {
    state: RefCell<Writer>,
}

impl TokenSink for Sink {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        let mut w = self.state.borrow_mut();
        match token {
            Token::TagToken(tag) => w.tag(&tag),
            Token::CharacterTokens(text) => w.text(&text),
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

/// What is waiting to be written before the next piece of content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Gap {
    None,
    Space,
    Line,
    Blank,
}

struct ListLevel {
    ordered: bool,
    next: u64,
    /// Width of the current item's marker, which its continuation lines indent by.
    indent: usize,
}

struct Writer {
    out: String,
    prose: String,
    gap: Gap,
    quote: usize,
    lists: Vec<ListLevel>,
    /// A list marker was just written: the item's first block follows it directly.
    after_marker: bool,
    pre: Option<Pre>,
    code: Option<String>,
    skip: usize,
}

struct Pre {
    text: String,
    lang: String,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            out: String::new(),
            prose: String::new(),
            gap: Gap::None,
            quote: 0,
            lists: Vec::new(),
            after_marker: false,
            pre: None,
            code: None,
            skip: 0,
        }
    }
}

fn attr<'t>(tag: &'t Tag, name: &str) -> Option<&'t str> {
    tag.attrs
        .iter()
        .find(|a| &*a.name.local == name)
        .map(|a| a.value.as_ref())
}

impl Writer {
    fn tag(&mut self, tag: &Tag) {
        let name = tag.name.as_ref();
        let start = tag.kind == TagKind::StartTag;
        if matches!(name, "script" | "style" | "template") {
            if start && !tag.self_closing {
                self.skip += 1;
            } else if !start {
                self.skip = self.skip.saturating_sub(1);
            }
            return;
        }
        if self.skip > 0 {
            return;
        }
        if let Some(pre) = self.pre.as_mut() {
            // Inside <pre> only its own end matters; <code> and friends are markup noise.
            if name == "pre" && !start {
                let pre = self.pre.take();
                if let Some(pre) = pre {
                    self.emit_fence(pre);
                }
            } else if name == "br" {
                pre.text.push('\n');
            }
            return;
        }
        match (name, start) {
            ("pre", true) => {
                self.block(Gap::Blank);
                let lang = attr(tag, "class")
                    .and_then(|c| {
                        c.split_whitespace()
                            .find_map(|cls| cls.strip_prefix("lang-"))
                            .filter(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_graphic()))
                    })
                    .unwrap_or("")
                    .to_string();
                self.pre = Some(Pre {
                    text: String::new(),
                    lang,
                });
            }
            ("code", true) if self.code.is_none() => self.code = Some(String::new()),
            ("code", false) => {
                if let Some(code) = self.code.take() {
                    self.emit_inline_code(&code);
                }
            }
            ("p" | "div" | "table" | "dl" | "figure" | "details", _) => self.block(Gap::Blank),
            ("h1" | "h2" | "h3" | "h4" | "h5" | "h6", true) => {
                self.block(Gap::Blank);
                let level = name[1..].parse::<usize>().unwrap_or(1);
                self.write_raw(&"#".repeat(level));
                self.gap = Gap::Space;
            }
            ("h1" | "h2" | "h3" | "h4" | "h5" | "h6", false) => self.block(Gap::Blank),
            ("hr", true) => {
                self.block(Gap::Blank);
                self.write_raw("---");
                self.block(Gap::Blank);
            }
            ("br", _) => self.block(Gap::Line),
            ("blockquote", true) => {
                self.block(Gap::Blank);
                self.quote += 1;
            }
            ("blockquote", false) => {
                self.block(Gap::Blank);
                self.quote = self.quote.saturating_sub(1);
            }
            ("ul" | "ol", true) => {
                if self.lists.is_empty() {
                    self.block(Gap::Blank);
                } else if !self.after_marker {
                    // A nested list hangs right under its item's text.
                    self.gap = Gap::Line;
                }
                let next = attr(tag, "start")
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(1);
                self.lists.push(ListLevel {
                    ordered: name == "ol",
                    next,
                    indent: 0,
                });
            }
            ("ul" | "ol", false) => {
                self.lists.pop();
                self.block(if self.lists.is_empty() {
                    Gap::Blank
                } else {
                    Gap::Line
                });
            }
            ("li", true) => self.start_item(),
            ("li", false) => self.block(Gap::Line),
            ("tr" | "dt" | "dd" | "caption", _) => self.block(Gap::Line),
            ("td" | "th", true) => self.space(),
            _ => {}
        }
    }

    fn text(&mut self, text: &str) {
        if self.skip > 0 {
            return;
        }
        if let Some(pre) = self.pre.as_mut() {
            if pre.text.is_empty() {
                // HTML drops one newline right after <pre>.
                pre.text.push_str(text.strip_prefix('\n').unwrap_or(text));
            } else {
                pre.text.push_str(text);
            }
            return;
        }
        if let Some(code) = self.code.as_mut() {
            code.push_str(text);
            return;
        }
        for (i, word) in text.split(|c: char| c.is_whitespace()).enumerate() {
            if i > 0 {
                self.space();
            }
            if !word.is_empty() {
                self.write_raw(word);
                self.prose.push_str(word);
            }
        }
    }

    fn space(&mut self) {
        if self.gap == Gap::None && !self.at_line_start() {
            self.gap = Gap::Space;
        }
    }

    fn at_line_start(&self) -> bool {
        self.out.is_empty() || self.out.ends_with('\n') || self.after_marker
    }

    /// Ask for at least this much separation before the next content.
    fn block(&mut self, gap: Gap) {
        if self.after_marker {
            return;
        }
        if gap > self.gap {
            self.gap = gap;
        }
    }

    fn prefix(&self, levels: usize) -> String {
        let mut p = "> ".repeat(self.quote);
        for level in self.lists.iter().take(levels) {
            p.push_str(&" ".repeat(level.indent));
        }
        p
    }

    /// Write pending separation, then `s` verbatim.
    fn write_raw(&mut self, s: &str) {
        self.flush_gap(self.lists.len());
        self.after_marker = false;
        self.out.push_str(s);
    }

    fn flush_gap(&mut self, levels: usize) {
        let gap = std::mem::replace(&mut self.gap, Gap::None);
        if self.out.is_empty() {
            if self.quote > 0 || levels > 0 {
                self.out.push_str(&self.prefix(levels));
            }
            return;
        }
        match gap {
            Gap::None => {}
            Gap::Space => {
                self.out.push(' ');
                self.prose.push(' ');
            }
            Gap::Line | Gap::Blank => {
                trim_trailing_spaces(&mut self.out);
                self.out.push('\n');
                if gap == Gap::Blank {
                    self.out.push_str(">".repeat(self.quote).as_str());
                    self.out.push('\n');
                }
                self.out.push_str(&self.prefix(levels));
                self.prose.push('\n');
            }
        }
    }

    fn start_item(&mut self) {
        if self.lists.is_empty() {
            // A stray <li>: treat it as an unordered item of its own list.
            self.lists.push(ListLevel {
                ordered: false,
                next: 1,
                indent: 0,
            });
        }
        self.after_marker = false;
        let has_prior_item = self.lists.last().is_some_and(|l| l.indent > 0);
        if has_prior_item {
            // Items of one list stay tight even when they hold paragraphs.
            self.gap = Gap::Line;
        } else {
            self.block(Gap::Line);
        }
        let depth = self.lists.len();
        self.flush_gap(depth - 1);
        let marker = match self.lists.last_mut() {
            Some(level) if level.ordered => {
                let m = format!("{}. ", level.next);
                level.next += 1;
                m
            }
            _ => "- ".to_string(),
        };
        if let Some(level) = self.lists.last_mut() {
            level.indent = marker.len();
        }
        self.out.push_str(&marker);
        self.after_marker = true;
    }

    fn emit_inline_code(&mut self, code: &str) {
        let code = code.replace('\n', " ");
        if code.is_empty() {
            return;
        }
        let ticks = "`".repeat(longest_run(&code, '`') + 1);
        let pad = if code.starts_with('`') || code.ends_with('`') {
            " "
        } else {
            ""
        };
        self.write_raw(&format!("{ticks}{pad}{code}{pad}{ticks}"));
    }

    fn emit_fence(&mut self, pre: Pre) {
        let mut body = pre.text;
        if !body.ends_with('\n') {
            body.push('\n');
        }
        let fence = "`".repeat(longest_run(&body, '`').max(2) + 1);
        self.block(Gap::Blank);
        self.write_raw(&fence);
        self.out.push_str(&pre.lang);
        let prefix = self.prefix(self.lists.len());
        for line in body.split_inclusive('\n') {
            self.out.push('\n');
            self.out.push_str(&prefix);
            self.out.push_str(line.strip_suffix('\n').unwrap_or(line));
        }
        self.out.push('\n');
        self.out.push_str(&prefix);
        self.out.push_str(&fence);
        self.block(Gap::Blank);
    }

    fn finish(mut self) -> Converted {
        if let Some(code) = self.code.take() {
            self.emit_inline_code(&code);
        }
        if let Some(pre) = self.pre.take() {
            self.emit_fence(pre);
        }
        let markdown = self.out.trim().to_string();
        let prose = self.prose.trim().to_string();
        Converted { markdown, prose }
    }
}

fn trim_trailing_spaces(s: &mut String) {
    let len = s.trim_end_matches([' ', '\t']).len();
    s.truncate(len);
}

fn longest_run(s: &str, ch: char) -> usize {
    let mut best = 0;
    let mut run = 0;
    for c in s.chars() {
        if c == ch {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per case: HTML in, Markdown out. Snippets are cut from the
    /// real dumps under shared/data (beer, coffee, quantumcomputing).
    const CASES: &[(&str, &str)] = &[
        // paragraphs and entities
        ("<p>Coffee &amp; tea</p>\n\n<p>Second &lt;para&gt;</p>", "Coffee & tea\n\nSecond <para>"),
        // links become their text, images disappear
        (
            "<p>See <a href=\"https://en.wikipedia.org/wiki/Hops\" rel=\"nofollow\">hops</a> here <img src=\"https://i.stack.imgur.com/x.png\" alt=\"hop\"></p>",
            "See hops here",
        ),
        // emphasis and other tags: text kept, markup dropped
        ("<p><strong>Short answer:</strong> <em>yes</em>.</p>", "Short answer: yes."),
        // inline code keeps its text exactly
        ("<p>Use <code>a &lt; b  &amp;&amp; c</code> now</p>", "Use `a < b  && c` now"),
        ("<p><code>x`y</code></p>", "``x`y``"),
        // fenced code keeps its text exactly, blank lines and indentation included
        (
            "<p>Try:</p>\n\n<pre><code>def f(x):\n    return x &gt; 1\n\n\nprint(f(2))\n</code></pre>\n\n<p>Done.</p>",
            "Try:\n\n```\ndef f(x):\n    return x > 1\n\n\nprint(f(2))\n```\n\nDone.",
        ),
        (
            "<pre class=\"lang-py prettyprint-override\"><code>import qiskit\n</code></pre>",
            "```py\nimport qiskit\n```",
        ),
        // a fence inside code gets a longer fence
        ("<pre><code>```\nx\n```\n</code></pre>", "````\n```\nx\n```\n````"),
        // unordered and ordered lists, nested
        (
            "<ul>\n<li>Stout</li>\n<li>Porter\n<ul>\n<li>Baltic</li>\n</ul></li>\n<li>Lager</li>\n</ul>",
            "- Stout\n- Porter\n  - Baltic\n- Lager",
        ),
        (
            "<ol>\n<li><p>Grind.</p></li>\n<li><p>Brew:</p>\n\n<ol>\n<li>heat</li>\n<li>pour</li>\n</ol></li>\n</ol>",
            "1. Grind.\n2. Brew:\n   1. heat\n   2. pour",
        ),
        ("<ol start=\"3\"><li>three</li><li>four</li></ol>", "3. three\n4. four"),
        // line breaks, headings, block quotes, rules
        ("<p>line one<br>line two<br/>three</p>", "line one\nline two\nthree"),
        ("<h2>Setup</h2>\n<p>Text</p>", "## Setup\n\nText"),
        (
            "<blockquote>\n  <p>Quoted one.</p>\n  <p>Quoted two.</p>\n</blockquote>\n<p>After.</p>",
            "> Quoted one.\n>\n> Quoted two.\n\nAfter.",
        ),
        ("<p>a</p><hr><p>b</p>", "a\n\n---\n\nb"),
        // whitespace collapses outside code
        ("<p>  many   \n spaces\there </p>", "many spaces here"),
        // script content is not text
        ("<p>x</p><script>alert(1)</script><p>y</p>", "x\n\ny"),
        // code inside a list item is indented with the item
        (
            "<ul><li>Run:<pre><code>make\n</code></pre></li></ul>",
            "- Run:\n\n  ```\n  make\n  ```",
        ),
        ("", ""),
    ];

    #[test]
    fn converter_table() {
        for (i, (html, want)) in CASES.iter().enumerate() {
            let got = html_to_markdown(html).markdown;
            assert_eq!(&got, want, "case {i}: {html:?}");
        }
    }

    #[test]
    fn prose_excludes_code() {
        let c = html_to_markdown(
            "<p>My point</p><pre><code>I = 1 # my var</code></pre><p>see <code>my_fn</code> too</p>",
        );
        assert!(c.prose.contains("My point"));
        assert!(c.prose.contains("see"));
        assert!(!c.prose.contains("my var"));
        assert!(!c.prose.contains("my_fn"));
    }
}
