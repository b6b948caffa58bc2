//! HTML to Markdown, shaped by what LIMA keeps: code (fenced and inline, text
//! untouched), lists (nested), tables, paragraphs, line breaks, block quotes
//! and headings survive; links become their text (a link whose text is its URL
//! goes, see [`crate::tidy`]), images and struck-out text vanish, `<sup>` and
//! `<sub>` become Unicode or `^`/`_`, every other tag is dropped and its text
//! kept. Characters Markdown would read as markup are escaped in prose.
//! html5ever's tokenizer does the HTML lexing and entity decoding; this module
//! only decides what each token becomes.
//!
//! The work is linear in the input: containers (lists and quotes) nest at most
//! [`Style::max_depth`] deep, deeper ones are flattened into the deepest and
//! counted, so no line prefix grows with hostile nesting.
//!
//! Besides the Markdown, the converter returns what the style filters read:
//! the author's own prose (outside code, math and quotes), the quoted text, and
//! counts of removed images and of list items that are only a link.

use std::cell::RefCell;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};

use crate::tidy;

/// Markdown conventions. The defaults match LIMA's released train set:
/// `* ` bullets, one newline between paragraphs, inline code in backticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Style {
    /// Marker of an unordered list item, with its trailing space.
    pub bullet: String,
    /// A blank line between paragraphs (true) or a single newline (false).
    /// Block quotes, tables and rules always get blank lines around them,
    /// so that they do not run into the text next to them.
    pub blank_line_between_paragraphs: bool,
    /// Inline code in backticks (true) or as its plain text (false).
    pub inline_code_backticks: bool,
    /// Escape `#`, `*`, `_`, `` ` ``, `<` and line-start markers in prose.
    pub escape: bool,
    /// Deepest nesting of lists and quotes kept; deeper is flattened.
    pub max_depth: usize,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            bullet: "* ".into(),
            blank_line_between_paragraphs: false,
            inline_code_backticks: true,
            escape: true,
            max_depth: 8,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Converted {
    pub markdown: String,
    /// The author's own text: outside code, math and block quotes; blocks
    /// separated by newlines.
    pub prose: String,
    /// Text inside block quotes (someone else's words).
    pub quoted: String,
    /// Images removed.
    pub images: u32,
    /// An image was removed right after text ending in ':' ("like this:").
    pub dangling_image: bool,
    /// Characters of list items that are (almost) only a link's text.
    pub link_list_chars: usize,
    /// Characters of prose and quoted text.
    pub text_chars: usize,
    /// Container openings beyond `max_depth` that were flattened.
    pub flattened: u32,
    /// Links whose text was their URL, dropped.
    pub url_links: u32,
    /// Footnote markers and reference lines removed.
    pub footnotes: u32,
}

/// Convert one post body with the default style.
pub fn html_to_markdown(html: &str) -> Converted {
    convert(html, &Style::default())
}

/// Convert one post body.
pub fn convert(html: &str, style: &Style) -> Converted {
    // The private-use character marks dropped links; a body never needs it.
    let cleaned;
    let html = if html.contains(tidy::DROPPED) {
        cleaned = html.replace(tidy::DROPPED, "");
        &cleaned
    } else {
        html
    };
    let tokenizer = Tokenizer::new(
        Sink {
            state: RefCell::new(Writer::new(style.clone())),
        },
        TokenizerOpts::default(),
    );
    let queue = BufferQueue::default();
    queue.push_back(StrTendril::from_slice(html));
    let _ = tokenizer.feed(&queue);
    tokenizer.end();
    let state = tokenizer.sink.state.into_inner();
    state.finish()
}

struct Sink {
    state: RefCell<Writer>,
}

impl TokenSink for Sink {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        let mut w = self.state.borrow_mut();
        match token {
            Token::TagToken(tag) => {
                w.flush_text();
                w.tag(&tag);
            }
            // Entities split text into several tokens: words are whole only
            // once the run of text is.
            Token::CharacterTokens(text) => w.pending_text.push_str(&text),
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
    /// A paragraph break, as the style says.
    Para,
    /// Always a blank line (around quotes, tables, rules).
    Blank,
}

#[derive(Debug, Clone)]
enum Container {
    Quote,
    List {
        ordered: bool,
        next: u64,
        /// Width of the open item's marker (0 before the first item).
        indent: usize,
        item_text: usize,
        item_link: usize,
    },
}

struct Link {
    href: String,
    out_at: usize,
    prose_at: usize,
    quoted_at: usize,
    gap: Gap,
    text_chars: usize,
    in_cell: bool,
}

struct Table {
    rows: Vec<Vec<String>>,
    /// The Markdown being written when the cell started.
    saved: Option<(String, Gap)>,
    /// Tables opened inside this one: their cells are text of the outer cell.
    nested: usize,
}

struct Writer {
    style: Style,
    out: String,
    prose: String,
    quoted: String,
    gap: Gap,
    containers: Vec<Container>,
    /// Quote/list openings beyond the depth cap, still open.
    over_quotes: usize,
    over_lists: usize,
    prefix: String,
    /// Container serials at the last written content, for blank-line prefixes.
    chain: Vec<u64>,
    written_chain: Vec<u64>,
    /// Bumped on every change of `chain`; `written_rev` is its value when
    /// `written_chain` was copied. Comparing the two, not the chains, keeps
    /// a slice comparison out of the per-word path.
    chain_rev: u64,
    written_rev: u64,
    /// `word`'s buffers (Markdown, prose, characters), reused.
    scratch: (String, String, Vec<char>),
    serial: u64,
    /// A list marker was just written: the item's first block follows it directly.
    after_marker: bool,
    pre: Option<Pre>,
    code: Option<String>,
    skip: usize,
    struck: usize,
    sup: Vec<(bool, usize)>,
    link: Option<Link>,
    table: Option<Table>,
    math: Math,
    /// Prose held while a `$` may open math, given back if it never closes.
    math_pending: String,
    last_char: char,
    pending_text: String,
    env_depth: u32,
    conv: Converted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Math {
    Off,
    Dollar,
    Double,
    Paren,
    Bracket,
    /// `\begin{...}` up to its `\end{...}`.
    Env,
}

struct Pre {
    text: String,
    lang: String,
}

fn attr<'t>(tag: &'t Tag, name: &str) -> Option<&'t str> {
    tag.attrs
        .iter()
        .find(|a| &*a.name.local == name)
        .map(|a| a.value.as_ref())
}

impl Writer {
    fn new(style: Style) -> Self {
        Writer {
            style,
            out: String::new(),
            prose: String::new(),
            quoted: String::new(),
            gap: Gap::None,
            containers: Vec::new(),
            over_quotes: 0,
            over_lists: 0,
            prefix: String::new(),
            chain: Vec::new(),
            written_chain: Vec::new(),
            chain_rev: 0,
            written_rev: 0,
            scratch: Default::default(),
            serial: 0,
            after_marker: false,
            pre: None,
            code: None,
            skip: 0,
            struck: 0,
            sup: Vec::new(),
            link: None,
            table: None,
            math: Math::Off,
            math_pending: String::new(),
            last_char: ' ',
            pending_text: String::new(),
            env_depth: 0,
            conv: Converted::default(),
        }
    }

    fn in_quote(&self) -> bool {
        self.over_quotes > 0
            || self
                .containers
                .iter()
                .any(|c| matches!(c, Container::Quote))
    }

    fn in_cell(&self) -> bool {
        self.table.as_ref().is_some_and(|t| t.saved.is_some())
    }

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
        if matches!(name, "s" | "strike" | "del") {
            if start && !tag.self_closing {
                self.struck += 1;
            } else if !start {
                self.struck = self.struck.saturating_sub(1);
            }
            return;
        }
        if self.struck > 0 {
            return;
        }
        if let Some(pre) = self.pre.as_mut() {
            // Inside <pre> only its own end matters; <code> and friends are markup noise.
            if name == "pre" && !start {
                if let Some(pre) = self.pre.take() {
                    self.emit_fence(pre);
                }
            } else if name == "br" {
                pre.text.push('\n');
            }
            return;
        }
        if self.table.is_some() && self.table_tag(name, start) {
            return;
        }
        match (name, start) {
            ("pre", true) => {
                self.end_math();
                self.block(Gap::Para);
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
            ("a", true) if self.link.is_none() && self.code.is_none() => {
                self.link = Some(Link {
                    href: attr(tag, "href").unwrap_or("").trim().to_string(),
                    out_at: self.out.len(),
                    prose_at: self.prose.len(),
                    quoted_at: self.quoted.len(),
                    gap: self.gap,
                    text_chars: 0,
                    in_cell: self.in_cell(),
                });
            }
            ("a", false) => self.end_link(),
            ("img", _) => {
                self.conv.images += 1;
                if self.last_char == ':' {
                    self.conv.dangling_image = true;
                }
            }
            ("sup" | "sub", true) if !tag.self_closing => {
                self.sup.push((name == "sup", self.out.len()));
            }
            ("sup" | "sub", false) => self.end_sup(),
            ("table", true) => {
                self.end_math();
                self.block(Gap::Blank);
                self.table = Some(Table {
                    rows: Vec::new(),
                    saved: None,
                    nested: 0,
                });
            }
            ("p" | "div" | "dl" | "figure" | "details" | "table", _) => self.block(Gap::Para),
            ("h1" | "h2" | "h3" | "h4" | "h5" | "h6", true) => {
                self.block(Gap::Para);
                let level = name[1..].parse::<usize>().unwrap_or(1);
                self.write_raw(&"#".repeat(level));
                self.gap = Gap::Space;
            }
            ("h1" | "h2" | "h3" | "h4" | "h5" | "h6", false) => self.block(Gap::Para),
            ("hr", true) => {
                self.block(Gap::Blank);
                self.write_raw("---");
                self.block(Gap::Blank);
            }
            ("br", _) => self.block(Gap::Line),
            ("blockquote", true) => {
                self.block(Gap::Blank);
                self.push(Container::Quote);
            }
            ("blockquote", false) => {
                self.block(Gap::Blank);
                self.pop(true);
                self.block(Gap::Blank);
            }
            ("ul" | "ol", true) => {
                if !self
                    .containers
                    .iter()
                    .any(|c| matches!(c, Container::List { .. }))
                {
                    self.block(Gap::Para);
                } else if !self.after_marker {
                    // A nested list hangs right under its item's text.
                    self.block(Gap::Line);
                }
                let next = attr(tag, "start")
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(1);
                self.push(Container::List {
                    ordered: name == "ol",
                    next,
                    indent: 0,
                    item_text: 0,
                    item_link: 0,
                });
            }
            ("ul" | "ol", false) => {
                self.pop(false);
                let in_list = self
                    .containers
                    .iter()
                    .any(|c| matches!(c, Container::List { .. }));
                self.block(if in_list { Gap::Line } else { Gap::Para });
            }
            ("li", true) => self.start_item(),
            ("li", false) => self.block(Gap::Line),
            ("tr" | "dt" | "dd" | "caption", _) => self.block(Gap::Line),
            _ => {}
        }
    }

    /// Table structure; returns true when the tag was consumed.
    fn table_tag(&mut self, name: &str, start: bool) -> bool {
        let Some(t) = self.table.as_mut() else {
            return false;
        };
        if t.nested > 0 {
            match (name, start) {
                ("table", true) => t.nested += 1,
                ("table", false) => t.nested -= 1,
                ("td" | "th" | "tr" | "br" | "p" | "li", _) => self.space(),
                _ => return false,
            }
            return true;
        }
        match (name, start) {
            ("table", true) => {
                if t.saved.is_some() {
                    t.nested += 1;
                } else {
                    // A table outside any cell (stray markup): keep the outer one.
                }
                true
            }
            ("table", false) => {
                self.end_cell();
                self.end_row();
                if let Some(t) = self.table.take() {
                    self.emit_table(t);
                }
                true
            }
            ("tr", true) => {
                self.end_cell();
                self.end_row();
                true
            }
            ("tr", false) => {
                self.end_cell();
                self.end_row();
                true
            }
            ("td" | "th", true) => {
                self.end_cell();
                let Some(t) = self.table.as_mut() else {
                    return true;
                };
                if t.rows.is_empty() {
                    t.rows.push(Vec::new());
                }
                let saved = (std::mem::take(&mut self.out), self.gap);
                if let Some(t) = self.table.as_mut() {
                    t.saved = Some(saved);
                }
                self.gap = Gap::None;
                true
            }
            ("td" | "th", false) => {
                self.end_cell();
                true
            }
            ("thead" | "tbody" | "tfoot" | "caption", _) => true,
            (
                "p" | "div" | "br" | "li" | "ul" | "ol" | "blockquote" | "h1" | "h2" | "h3" | "h4"
                | "h5" | "h6" | "hr" | "pre",
                _,
            ) if self.in_cell() => {
                // Blocks inside a cell are words of one line.
                self.space();
                true
            }
            _ => false,
        }
    }

    fn end_cell(&mut self) {
        self.end_link();
        let Some(t) = self.table.as_mut() else {
            return;
        };
        let Some((saved, gap)) = t.saved.take() else {
            return;
        };
        let cell = std::mem::replace(&mut self.out, saved);
        self.gap = gap;
        let text = cell.split_whitespace().collect::<Vec<_>>().join(" ");
        let text = text.replace('|', "\\|");
        if t.rows.is_empty() {
            t.rows.push(Vec::new());
        }
        if let Some(row) = t.rows.last_mut() {
            row.push(text);
        }
    }

    fn end_row(&mut self) {
        let Some(t) = self.table.as_mut() else {
            return;
        };
        if t.rows.last().is_some_and(|r| !r.is_empty()) {
            t.rows.push(Vec::new());
        }
    }

    fn emit_table(&mut self, t: Table) {
        let rows: Vec<Vec<String>> = t.rows.into_iter().filter(|r| !r.is_empty()).collect();
        if rows.is_empty() {
            return;
        }
        let width = rows.iter().map(Vec::len).max().unwrap_or(0);
        self.block(Gap::Blank);
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for i in 0..width {
                s.push(' ');
                s.push_str(cells.get(i).map(String::as_str).unwrap_or(""));
                s.push_str(" |");
            }
            s
        };
        let rule = format!("|{}", "---|".repeat(width));
        // Markdown tables have one header row: the first.
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                self.block(Gap::Line);
            }
            self.write_raw(&line(row));
            if i == 0 {
                self.block(Gap::Line);
                self.write_raw(&rule);
            }
        }
        self.block(Gap::Blank);
    }

    fn push(&mut self, c: Container) {
        let is_quote = matches!(c, Container::Quote);
        if self.containers.len() >= self.style.max_depth {
            self.conv.flattened += 1;
            if is_quote {
                self.over_quotes += 1;
            } else {
                self.over_lists += 1;
            }
            return;
        }
        self.serial += 1;
        self.chain.push(self.serial);
        self.chain_rev += 1;
        self.containers.push(c);
        self.rebuild_prefix();
    }

    /// Close the innermost quote (or list).
    fn pop(&mut self, quote: bool) {
        if quote && self.over_quotes > 0 {
            self.over_quotes -= 1;
            return;
        }
        if !quote && self.over_lists > 0 {
            self.over_lists -= 1;
            return;
        }
        let Some(at) = self
            .containers
            .iter()
            .rposition(|c| matches!(c, Container::Quote) == quote)
        else {
            return;
        };
        for c in self.containers.drain(at..) {
            if let Container::List {
                item_text,
                item_link,
                ..
            } = c
            {
                Self::judge_item(&mut self.conv, item_text, item_link);
            }
        }
        self.chain.truncate(at);
        self.chain_rev += 1;
        self.rebuild_prefix();
    }

    fn judge_item(conv: &mut Converted, text: usize, link: usize) {
        // An item that is a link and at most a few words besides.
        if link > 0 && link * 10 >= text * 7 {
            conv.link_list_chars += text;
        }
    }

    fn rebuild_prefix(&mut self) {
        self.prefix = Self::prefix_of(&self.containers);
    }

    fn prefix_of(containers: &[Container]) -> String {
        let mut p = String::new();
        for c in containers {
            match c {
                Container::Quote => p.push_str("> "),
                Container::List { indent, .. } => {
                    p.extend(std::iter::repeat_n(' ', *indent));
                }
            }
        }
        p
    }

    fn flush_text(&mut self) {
        if !self.pending_text.is_empty() {
            let text = std::mem::take(&mut self.pending_text);
            self.text(&text);
        }
    }

    fn text(&mut self, text: &str) {
        if self.skip > 0 || self.struck > 0 {
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
        // The words between whitespace, as `text.split(char::is_whitespace)`
        // gives them: a space between each two, each written on its own,
        // except that after a plain word a run of plain words parted by
        // single spaces is written at once (most prose).
        let b = text.as_bytes();
        let mut at = 0;
        let mut first = true;
        loop {
            let (end, ws) = match text[at..].char_indices().find(|(_, c)| c.is_whitespace()) {
                Some((i, c)) => (at + i, c.len_utf8()),
                None => (text.len(), 0),
            };
            if !first {
                self.space();
            }
            first = false;
            let word = &text[at..end];
            let mut next = end;
            if !word.is_empty() && !self.plain_word(word) {
                self.escaped_word(word);
            } else if !word.is_empty() && self.math == Math::Off && !self.in_cell() {
                next = plain_run(b, end);
                if next > end {
                    self.plain_words(&text[end..next]);
                }
            }
            if next == text.len() {
                break;
            }
            // `next` is at whitespace: the word after it starts past it.
            at = if next == end {
                end + ws
            } else {
                next + text[next..].chars().next().map_or(1, char::len_utf8)
            };
        }
    }

    /// Whether the next word opens a line, where block markers are read.
    fn at_word_line_start(&self) -> bool {
        !self.in_cell() && (self.gap >= Gap::Line || self.out.is_empty() || self.after_marker)
    }

    /// A word with nothing to track or escape (see [`is_plain_word`]) is
    /// its own Markdown: written, and true; else false, nothing done.
    fn plain_word(&mut self, word: &str) -> bool {
        if self.math != Math::Off || !is_plain_word(word, self.at_word_line_start()) {
            return false;
        }
        self.write_raw(word);
        let target = if self.in_quote() {
            &mut self.quoted
        } else {
            &mut self.prose
        };
        target.push_str(word);
        self.after_word(word.as_bytes()[word.len() - 1] as char, word.len());
        true
    }

    /// Right after a plain word, outside math and tables: `run` is
    /// `" w2 w3 ... wn"`, plain words each after one space. Written as
    /// [`Writer::space`] and [`Writer::plain_word`] would write them one by
    /// one: a space, then the word, in the Markdown and in the prose (which
    /// ends with the word before, so the space goes there too).
    fn plain_words(&mut self, run: &str) {
        self.out.push_str(run);
        let target = if self.in_quote() {
            &mut self.quoted
        } else {
            &mut self.prose
        };
        target.push_str(run);
        let spaces = run.bytes().filter(|&c| c == b' ').count();
        let last = run.as_bytes()[run.len() - 1] as char;
        self.after_word(last, run.len() - spaces);
    }

    /// One whitespace-free piece of prose that is not plain: math tracked,
    /// Markdown escaped.
    fn escaped_word(&mut self, word: &str) {
        let line_start = self.at_word_line_start();
        // Scratch buffers kept across words: no allocation per word.
        let (mut md, mut own, mut chars) = std::mem::take(&mut self.scratch);
        md.clear();
        own.clear();
        chars.clear();
        chars.extend(word.chars());
        // A TeX command word: MathJax reads it, escapes would break it.
        let tex_word = chars.contains(&'\\');
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            let prev = if i == 0 { None } else { Some(chars[i - 1]) };
            // Math delimiters ($...$, $$...$$, \(...\), \[...\]).
            match (self.math, c, next) {
                (Math::Off, '$', Some('$')) => {
                    self.math = Math::Double;
                    md.push_str("$$");
                    i += 2;
                    continue;
                }
                (Math::Off, '$', Some(n)) if !n.is_whitespace() => {
                    self.math = Math::Dollar;
                    self.flush_own(&mut own);
                    self.math_pending.push('$');
                    md.push('$');
                    i += 1;
                    continue;
                }
                (Math::Off | Math::Env, '\\', Some('b'))
                    if starts_with_at(&chars, i, "\\begin{") =>
                {
                    self.math = Math::Env;
                    self.env_depth += 1;
                    md.push(c);
                    i += 1;
                    continue;
                }
                (Math::Env, '\\', Some('e')) if starts_with_at(&chars, i, "\\end{") => {
                    self.env_depth -= 1;
                    if self.env_depth == 0 {
                        self.math = Math::Off;
                    }
                    // The environment's name is math too.
                    while i < chars.len() {
                        md.push(chars[i]);
                        i += 1;
                        if chars[i - 1] == '}' {
                            break;
                        }
                    }
                    continue;
                }
                (Math::Off, '\\', Some('(')) | (Math::Off, '\\', Some('[')) => {
                    self.math = if next == Some('(') {
                        Math::Paren
                    } else {
                        Math::Bracket
                    };
                    md.push(c);
                    md.extend(next);
                    i += 2;
                    continue;
                }
                (Math::Double, '$', Some('$')) => {
                    self.math = Math::Off;
                    md.push_str("$$");
                    i += 2;
                    continue;
                }
                (Math::Dollar, '$', n)
                    if prev.is_some_and(|p| !p.is_whitespace())
                        && !n.is_some_and(|n| n.is_ascii_digit()) =>
                {
                    self.math = Math::Off;
                    self.math_pending.clear();
                    md.push('$');
                    i += 1;
                    continue;
                }
                (Math::Paren, '\\', Some(')')) | (Math::Bracket, '\\', Some(']')) => {
                    self.math = Math::Off;
                    md.push(c);
                    md.extend(next);
                    i += 2;
                    continue;
                }
                _ => {}
            }
            if self.math != Math::Off {
                md.push(c);
                if self.math == Math::Dollar {
                    self.math_pending.push(c);
                }
                i += 1;
                continue;
            }
            if self.style.escape && !tex_word && needs_escape(&chars, i) {
                md.push('\\');
            }
            md.push(c);
            own.push(c);
            i += 1;
        }
        if self.style.escape && line_start {
            escape_line_start(&mut md, &chars);
        }
        let n = own.chars().count();
        self.write_raw(&md);
        self.flush_own(&mut own);
        let last = chars.last().copied();
        self.scratch = (md, own, chars);
        match last {
            Some(c) => self.after_word(c, n),
            None => self.count_text(n),
        }
    }

    /// Book-keeping after a word whose last character is `last`, `n` characters of prose.
    fn after_word(&mut self, last: char, n: usize) {
        self.last_char = last;
        self.count_text(n);
    }

    fn count_text(&mut self, n: usize) {
        self.conv.text_chars += n;
        if let Some(link) = self.link.as_mut() {
            link.text_chars += n;
        }
        if let Some(Container::List { item_text, .. }) = self
            .containers
            .iter_mut()
            .rev()
            .find(|c| matches!(c, Container::List { .. }))
        {
            *item_text += n;
        }
    }

    fn flush_own(&mut self, own: &mut String) {
        if own.is_empty() {
            return;
        }
        let target = if self.in_quote() {
            &mut self.quoted
        } else {
            &mut self.prose
        };
        target.push_str(own);
        own.clear();
    }

    /// A math span that never closed was prose after all.
    fn end_math(&mut self) {
        if self.math == Math::Dollar {
            let pending = std::mem::take(&mut self.math_pending);
            // Drop the '$' itself: it is not a word character anyway.
            let mut own = pending.trim_start_matches('$').to_string();
            self.flush_own(&mut own);
        }
        self.math = Math::Off;
        self.env_depth = 0;
        self.math_pending.clear();
    }

    fn end_link(&mut self) {
        let Some(link) = self.link.take() else {
            return;
        };
        if link.in_cell != self.in_cell() {
            return;
        }
        let Some(text) = self.out.get(link.out_at..) else {
            return;
        };
        let text = text.trim().replace('\\', "");
        if !text.is_empty() && !text.contains('\n') && is_url_text(&text, &link.href) {
            truncate_at(&mut self.out, link.out_at);
            truncate_at(&mut self.prose, link.prose_at);
            truncate_at(&mut self.quoted, link.quoted_at);
            self.gap = link.gap;
            self.write_raw(tidy::DROPPED);
            self.conv.url_links += 1;
            self.conv.text_chars = self.conv.text_chars.saturating_sub(link.text_chars);
            return;
        }
        if let Some(Container::List { item_link, .. }) = self
            .containers
            .iter_mut()
            .rev()
            .find(|c| matches!(c, Container::List { .. }))
        {
            *item_link += link.text_chars;
        }
    }

    fn end_sup(&mut self) {
        let Some((sup, at)) = self.sup.pop() else {
            return;
        };
        if !self.sup.is_empty() {
            return;
        }
        let Some(inner) = self.out.get(at..) else {
            return;
        };
        let leading_gap = inner.len() - inner.trim_start().len();
        let body = inner.trim().to_string();
        if body.is_empty() || body.chars().count() > 12 || body.contains(char::is_whitespace) {
            // Small print (a source line, a footnote): plain text.
            return;
        }
        if body.contains(tidy::DROPPED) || (body.starts_with('[') && body.ends_with(']')) {
            return;
        }
        let before = self.out.get(..at).and_then(|s| s.chars().last());
        let attached = leading_gap == 0 && before.is_some_and(|c| !c.is_whitespace());
        if sup && attached && before.is_some_and(|c| c.is_ascii_digit()) && is_ordinal(&body) {
            return; // 20<sup>th</sup>: plain "20th"
        }
        if body.chars().count() >= 3
            && body.chars().all(char::is_alphabetic)
            && !mappable(&body, sup)
        {
            // A raised word ("Benioff<sup>study</sup>", a citation): a word of the sentence.
            if attached {
                self.out.insert(at + leading_gap, ' ');
            }
            return;
        }
        let mapped: Option<String> = body
            .chars()
            .map(|c| if sup { superscript(c) } else { subscript(c) })
            .collect();
        let replacement = match mapped {
            Some(m) => m,
            None => {
                let mark = if sup { '^' } else { '_' };
                let plain = body.replace('\\', "");
                if plain.chars().count() == 1 {
                    format!("{mark}{plain}")
                } else {
                    format!("{mark}({plain})")
                }
            }
        };
        truncate_at(&mut self.out, at + leading_gap);
        self.out.push_str(&replacement);
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
        if gap >= Gap::Line {
            self.end_math();
        }
        if self.in_cell() {
            self.space();
            return;
        }
        if self.after_marker {
            return;
        }
        if gap > self.gap {
            self.gap = gap;
        }
    }

    /// Write pending separation, then `s` verbatim.
    fn write_raw(&mut self, s: &str) {
        self.flush_gap();
        self.after_marker = false;
        self.out.push_str(s);
    }

    fn mark_written(&mut self) {
        self.written_chain.clone_from(&self.chain);
        self.written_rev = self.chain_rev;
    }

    fn flush_gap(&mut self) {
        let gap = std::mem::replace(&mut self.gap, Gap::None);
        if self.in_cell() {
            if gap != Gap::None && !self.out.is_empty() {
                self.out.push(' ');
            }
            return;
        }
        if self.out.is_empty() {
            self.out.push_str(&self.prefix);
            self.mark_written();
            return;
        }
        match gap {
            Gap::None => {}
            Gap::Space => {
                self.out.push(' ');
                self.prose_sep(' ');
            }
            Gap::Line | Gap::Para | Gap::Blank => {
                trim_trailing_spaces(&mut self.out);
                self.out.push('\n');
                let blank = gap == Gap::Blank
                    || (gap == Gap::Para && self.style.blank_line_between_paragraphs);
                if blank {
                    // The blank line keeps the containers both sides share.
                    let common = self
                        .chain
                        .iter()
                        .zip(&self.written_chain)
                        .take_while(|(a, b)| a == b)
                        .count();
                    let mut p = Self::prefix_of(&self.containers[..common]);
                    trim_trailing_spaces(&mut p);
                    self.out.push_str(&p);
                    self.out.push('\n');
                }
                self.out.push_str(&self.prefix);
                self.prose_sep('\n');
            }
        }
        if self.written_rev != self.chain_rev {
            self.mark_written();
        }
    }

    fn prose_sep(&mut self, c: char) {
        match self.math {
            Math::Off => {}
            Math::Dollar => return self.math_pending.push(c),
            _ => return,
        }
        let target = if self.in_quote() {
            &mut self.quoted
        } else {
            &mut self.prose
        };
        if !target.is_empty() && !target.ends_with(['\n', ' ']) {
            target.push(c);
        } else if c == '\n' && target.ends_with(' ') {
            target.pop();
            target.push('\n');
        }
    }

    fn start_item(&mut self) {
        if !self
            .containers
            .iter()
            .any(|c| matches!(c, Container::List { .. }))
        {
            // A stray <li>: treat it as an unordered item of its own list.
            self.block(Gap::Para);
            self.push(Container::List {
                ordered: false,
                next: 1,
                indent: 0,
                item_text: 0,
                item_link: 0,
            });
        }
        self.end_math();
        self.after_marker = false;
        // Close whatever was opened inside the previous item of this list.
        let Some(at) = self
            .containers
            .iter()
            .rposition(|c| matches!(c, Container::List { .. }))
        else {
            return;
        };
        if at + 1 < self.containers.len() {
            for c in self.containers.drain(at + 1..) {
                if let Container::List {
                    item_text,
                    item_link,
                    ..
                } = c
                {
                    Self::judge_item(&mut self.conv, item_text, item_link);
                }
            }
            self.chain.truncate(at + 1);
            self.chain_rev += 1;
        }
        let bullet = self.style.bullet.clone();
        let (marker, had_item) = match &mut self.containers[at] {
            Container::List {
                ordered,
                next,
                indent,
                item_text,
                item_link,
            } => {
                let had = *indent > 0;
                if had {
                    Self::judge_item(&mut self.conv, *item_text, *item_link);
                }
                *item_text = 0;
                *item_link = 0;
                let m = if *ordered {
                    let m = format!("{next}. ");
                    *next = next.saturating_add(1);
                    m
                } else {
                    bullet
                };
                *indent = 0;
                (m, had)
            }
            Container::Quote => return,
        };
        // Items of one list stay tight even when they hold paragraphs.
        if had_item {
            self.gap = Gap::Line;
        } else {
            self.block(Gap::Line);
        }
        // The marker goes after the prefix of the containers around this list.
        self.rebuild_prefix();
        self.flush_gap();
        if let Container::List { indent, .. } = &mut self.containers[at] {
            *indent = marker.chars().count();
        }
        self.serial += 1;
        self.chain[at] = self.serial;
        self.chain_rev += 1;
        self.out.push_str(&marker);
        self.rebuild_prefix();
        self.mark_written();
        self.after_marker = true;
    }

    fn emit_inline_code(&mut self, code: &str) {
        let code = code.replace('\n', " ");
        if code.is_empty() {
            return;
        }
        if !self.style.inline_code_backticks {
            self.write_raw(&code);
            self.last_char = code.chars().last().unwrap_or(' ');
            return;
        }
        let ticks = "`".repeat(longest_run(&code, '`') + 1);
        let pad = if code.starts_with('`') || code.ends_with('`') {
            " "
        } else {
            ""
        };
        self.write_raw(&format!("{ticks}{pad}{code}{pad}{ticks}"));
        self.last_char = '`';
    }

    fn emit_fence(&mut self, pre: Pre) {
        let mut body = pre.text.replace(tidy::DROPPED, "");
        if !body.ends_with('\n') {
            body.push('\n');
        }
        let fence = "`".repeat(longest_run(&body, '`').max(2) + 1);
        self.block(Gap::Para);
        self.write_raw(&fence);
        self.out.push_str(&pre.lang);
        let prefix = self.prefix.clone();
        for line in body.split_inclusive('\n') {
            self.out.push('\n');
            self.out.push_str(&prefix);
            self.out.push_str(line.strip_suffix('\n').unwrap_or(line));
        }
        self.out.push('\n');
        self.out.push_str(&prefix);
        self.out.push_str(&fence);
        self.last_char = '`';
        self.block(Gap::Para);
    }

    fn finish(mut self) -> Converted {
        self.flush_text();
        self.end_link();
        while !self.sup.is_empty() {
            self.end_sup();
        }
        if let Some(code) = self.code.take() {
            self.emit_inline_code(&code);
        }
        if let Some(pre) = self.pre.take() {
            self.emit_fence(pre);
        }
        if self.table.is_some() {
            self.end_cell();
            self.end_row();
            if let Some(t) = self.table.take() {
                self.emit_table(t);
            }
        }
        self.end_math();
        while let Some(c) = self.containers.pop() {
            if let Container::List {
                item_text,
                item_link,
                ..
            } = c
            {
                Self::judge_item(&mut self.conv, item_text, item_link);
            }
        }
        let mut conv = self.conv;
        let (markdown, removed) = tidy::markdown(&self.out);
        conv.footnotes = removed;
        conv.markdown = markdown;
        conv.prose = tidy::prose(&self.prose);
        conv.quoted = tidy::prose(&self.quoted);
        conv
    }
}

/// The end of the run of `" word"` pieces from `b[start]` on, each word
/// plain (as [`is_plain_word`] away from a line's start) and whole (followed
/// by whitespace or the end); `start` itself if there is none. The run stops
/// before a double space, a piece whose word is not plain, and at any other
/// whitespace.
fn plain_run(b: &[u8], start: usize) -> usize {
    let plain =
        |c: u8| c.is_ascii_graphic() && !matches!(c, b'$' | b'\\' | b'`' | b'*' | b'_' | b'<');
    let mut end = start;
    let mut p = start;
    while p < b.len() && b[p] == b' ' {
        let mut q = p + 1;
        while q < b.len() && plain(b[q]) {
            q += 1;
        }
        let whole = q == b.len() || b[q].is_ascii_whitespace() || b[q] == 0x0b;
        if q == p + 1 || !whole {
            break;
        }
        end = q;
        p = q;
    }
    end
}

/// A word [`Writer::plain_word`] copies unchanged: ASCII with no math
/// delimiter and nothing Markdown reads inside a line, and at a line's start
/// opening with a letter (no block marker, no list number).
fn is_plain_word(word: &str, line_start: bool) -> bool {
    let b = word.as_bytes();
    !b.is_empty()
        && (!line_start || b[0].is_ascii_alphabetic())
        && b.iter()
            .all(|&c| c.is_ascii() && !matches!(c, b'$' | b'\\' | b'`' | b'*' | b'_' | b'<'))
}

/// Markers that would start a block when they open a line.
fn escape_line_start(md: &mut String, chars: &[char]) {
    let Some(&first) = chars.first() else {
        return;
    };
    if md.starts_with('\\') {
        return;
    }
    let all = |set: &[char]| chars.iter().all(|c| set.contains(c));
    let numbered = chars.len() >= 2
        && chars.len() <= 10
        && matches!(chars[chars.len() - 1], '.' | ')')
        && chars[..chars.len() - 1].iter().all(char::is_ascii_digit);
    if numbered {
        let at = md.len() - 1;
        md.insert(at, '\\');
        return;
    }
    let escape = match first {
        '#' | '>' => true,
        '*' => chars.len() == 1,
        '-' | '+' => chars.len() == 1 || (chars.len() >= 3 && all(&['-'])),
        '=' => all(&['=']),
        '~' => chars.len() >= 3 && all(&['~']),
        _ => false,
    };
    if escape {
        md.insert(0, '\\');
    }
}

fn starts_with_at(chars: &[char], i: usize, pat: &str) -> bool {
    let n = pat.chars().count();
    chars
        .get(i..i + n)
        .is_some_and(|s| s.iter().copied().eq(pat.chars()))
}

/// Characters Markdown would take as markup inside a line.
fn needs_escape(chars: &[char], i: usize) -> bool {
    let c = chars[i];
    let prev = if i == 0 { None } else { Some(chars[i - 1]) };
    let next = chars.get(i + 1).copied();
    let word = |x: Option<char>| x.is_some_and(char::is_alphanumeric);
    match c {
        '`' => true,
        '*' => chars.len() > 1,
        '_' => !(word(prev) && word(next)),
        '<' => next.is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?')),
        _ => false,
    }
}

/// Cut a buffer back to a position it had, if that is still a char boundary.
fn truncate_at(s: &mut String, at: usize) {
    if at <= s.len() && s.is_char_boundary(at) {
        s.truncate(at);
    }
}

fn is_ordinal(s: &str) -> bool {
    matches!(s, "st" | "nd" | "rd" | "th" | "er" | "e" | "o" | "a")
}

/// Text that is the link's own address, or any bare address.
fn is_url_text(text: &str, href: &str) -> bool {
    let norm = |s: &str| -> String {
        let s = s.trim().trim_end_matches('/').to_ascii_lowercase();
        let s = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .unwrap_or(&s)
            .to_string();
        s.strip_prefix("www.").unwrap_or(&s).to_string()
    };
    if !href.is_empty() && norm(text) == norm(href) {
        return true;
    }
    let lower = text.to_ascii_lowercase();
    !text.contains(' ')
        && (lower.starts_with("http://")
            || lower.starts_with("https://")
            || lower.starts_with("www.")
            || lower.starts_with("ftp://"))
}

/// The Unicode superscript of `c`, where there is one.
fn superscript(c: char) -> Option<char> {
    lookup(c, "0123456789+-−=()ni", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁻⁼⁽⁾ⁿⁱ")
}

/// The Unicode subscript of `c`, where there is one.
fn subscript(c: char) -> Option<char> {
    lookup(
        c,
        "0123456789+-−=()aeoxhklmnpstijruv",
        "₀₁₂₃₄₅₆₇₈₉₊₋₋₌₍₎ₐₑₒₓₕₖₗₘₙₚₛₜᵢⱼᵣᵤᵥ",
    )
}

fn mappable(body: &str, sup: bool) -> bool {
    body.chars()
        .all(|c| if sup { superscript(c) } else { subscript(c) }.is_some())
}

fn lookup(c: char, from: &str, to: &str) -> Option<char> {
    from.chars()
        .zip(to.chars())
        .find(|(f, _)| *f == c)
        .map(|(_, t)| t)
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
#[path = "html_tests.rs"]
mod tests;
