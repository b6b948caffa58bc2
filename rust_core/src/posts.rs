//! Stack Exchange `Posts.xml`: one `<row .../>` element per line, every
//! attribute optional except the few the join cannot do without. Lines are
//! split by hand (so a bad row can be skipped and the next one read); each
//! row's attributes are scanned in place (a memchr to each value's closing
//! quote, no map, nothing copied) and unescaped only when the caller asks for
//! a value. What is accepted, and every value, is what quick-xml's attribute
//! reader with its checks on gives; tests and the fuzz targets compare the two.

use std::borrow::Cow;

/// Attributes the toolkit uses, as raw (still XML-escaped) text.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawRow<'a> {
    pub id: Option<&'a str>,
    pub post_type: Option<&'a str>,
    pub parent_id: Option<&'a str>,
    pub accepted_answer_id: Option<&'a str>,
    pub score: Option<&'a str>,
    pub title: Option<&'a str>,
    pub body: Option<&'a str>,
    pub tags: Option<&'a str>,
    pub creation_date: Option<&'a str>,
    pub owner_user_id: Option<&'a str>,
    pub owner_display_name: Option<&'a str>,
    pub content_license: Option<&'a str>,
}

/// What one line of the file is.
#[derive(Debug)]
pub enum Line<'a> {
    Row(RawRow<'a>),
    /// Blank, the XML declaration, or the root element's tags.
    Frame,
    RootEnd,
}

/// Classify and parse one line; the error is a message without position,
/// which the caller adds.
pub fn parse_line(line: &str) -> Result<Line<'_>, String> {
    parse_line_until(line, |_| false)
}

/// Like [`parse_line`], but stop reading attributes as soon as `enough` says
/// the row is decided: an answer that cannot become a top answer needs
/// nothing after its Score, and its Body is most of the bytes of a dump.
pub fn parse_line_until<'l>(
    line: &'l str,
    enough: impl Fn(&RawRow<'l>) -> bool,
) -> Result<Line<'l>, String> {
    let mut row = RawRow::default();
    let kind = for_each_attribute(line, "posts", |key, value| {
        let slot = match key {
            "Id" => &mut row.id,
            "PostTypeId" => &mut row.post_type,
            "ParentId" => &mut row.parent_id,
            "AcceptedAnswerId" => &mut row.accepted_answer_id,
            "Score" => &mut row.score,
            "Title" => &mut row.title,
            "Body" => &mut row.body,
            "Tags" => &mut row.tags,
            "CreationDate" => &mut row.creation_date,
            "OwnerUserId" => &mut row.owner_user_id,
            "OwnerDisplayName" => &mut row.owner_display_name,
            "ContentLicense" => &mut row.content_license,
            _ => return true,
        };
        *slot = Some(value);
        !enough(&row)
    })?;
    Ok(match kind {
        RowKind::Row => Line::Row(row),
        RowKind::Frame => Line::Frame,
        RowKind::RootEnd => Line::RootEnd,
    })
}

/// What a line of any Stack Exchange dump table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Row,
    Frame,
    RootEnd,
}

/// Walk the attributes of one `<row .../>` line of a dump table whose root
/// element is `root` (`posts`, `comments`, ...), handing each raw (still
/// escaped) value to `each`, which returns false to stop early.
pub fn for_each_attribute<'l>(
    line: &'l str,
    root: &str,
    each: impl FnMut(&str, &'l str) -> bool,
) -> Result<RowKind, String> {
    let t = line.trim_start_matches('\u{feff}').trim();
    if t.is_empty()
        || t.starts_with("<?xml")
        || t.get(..9)
            .is_some_and(|d| d.eq_ignore_ascii_case("<!DOCTYPE"))
        || t.strip_prefix('<').and_then(|r| r.strip_suffix('>')) == Some(root)
    {
        return Ok(RowKind::Frame);
    }
    if t.strip_prefix("</").and_then(|r| r.strip_suffix('>')) == Some(root) {
        return Ok(RowKind::RootEnd);
    }
    if !t.starts_with("<row") {
        return Err(format!(
            "expected a <row .../> element, found {:?}",
            preview(t)
        ));
    }
    let inner = t
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix("/>"))
        .ok_or_else(|| format!("row element is not closed with '/>': {:?}", preview(t)))?;
    let name_len = inner
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(inner.len());
    if &inner[..name_len] != "row" {
        return Err(format!(
            "expected a <row .../> element, found {:?}",
            preview(t)
        ));
    }
    scan_attributes(inner, name_len, each)?;
    Ok(RowKind::Row)
}

fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\r' | b'\n' | b'\t')
}

/// Keys seen in one row, for the duplicate check: a 64-bit mask of cheap
/// hashes, and a full comparison only when the hash bit is already set.
struct SeenKeys {
    mask: u64,
    spans: [(u32, u32); 48],
    n: usize,
    more: Vec<(u32, u32)>,
}

impl SeenKeys {
    fn new() -> Self {
        SeenKeys {
            mask: 0,
            spans: [(0, 0); 48],
            n: 0,
            more: Vec::new(),
        }
    }

    /// Record `key` (bytes a..b of `text`); false if it was seen before.
    fn insert(&mut self, text: &[u8], a: usize, b: usize) -> bool {
        let key = &text[a..b];
        let h = (key.len() as u32)
            .wrapping_mul(31)
            .wrapping_add(u32::from(key[0]))
            .wrapping_mul(31)
            .wrapping_add(u32::from(key[key.len() - 1]));
        let bit = 1u64 << (h & 63);
        if self.mask & bit != 0 {
            let dup = self.spans[..self.n]
                .iter()
                .chain(self.more.iter())
                .any(|&(x, y)| &text[x as usize..y as usize] == key);
            if dup {
                return false;
            }
        }
        self.mask |= bit;
        if self.n < self.spans.len() {
            self.spans[self.n] = (a as u32, b as u32);
            self.n += 1;
        } else {
            self.more.push((a as u32, b as u32));
        }
        true
    }
}

/// The attributes of `inner` (a start tag's content without `<` and `/>`)
/// from byte `from`, with quick-xml's rules: whitespace is space, tab, CR and
/// LF; a key runs to `=` or whitespace; `=` may have whitespace around it; the
/// value is quoted with `"` or `'` and ends at the same quote; no whitespace
/// is needed between attributes; a repeated key is an error.
fn scan_attributes<'l>(
    inner: &'l str,
    from: usize,
    mut each: impl FnMut(&str, &'l str) -> bool,
) -> Result<(), String> {
    let b = inner.as_bytes();
    let len = b.len();
    let mut seen = SeenKeys::new();
    let mut i = from;
    loop {
        while i < len && is_xml_space(b[i]) {
            i += 1;
        }
        if i >= len {
            return Ok(());
        }
        let key_start = i;
        i += 1;
        while i < len && b[i] != b'=' && !is_xml_space(b[i]) {
            i += 1;
        }
        let key_end = i;
        if i < len && b[i] != b'=' {
            while i < len && is_xml_space(b[i]) {
                i += 1;
            }
        }
        if i >= len || b[i] != b'=' {
            return Err(format!(
                "bad attribute: position {}: attribute {:?} has no value",
                i.min(len),
                &inner[key_start..key_end]
            ));
        }
        if !seen.insert(b, key_start, key_end) {
            return Err(format!(
                "bad attribute: position {key_start}: duplicated attribute {:?}",
                &inner[key_start..key_end]
            ));
        }
        i += 1;
        while i < len && is_xml_space(b[i]) {
            i += 1;
        }
        if i >= len {
            return Err(format!("bad attribute: position {len}: expected a value"));
        }
        let quote = b[i];
        if quote != b'"' && quote != b'\'' {
            return Err(format!(
                "bad attribute: position {i}: the value is not quoted"
            ));
        }
        let value_start = i + 1;
        let Some(q) = memchr::memchr(quote, &b[value_start..]) else {
            return Err(format!(
                "bad attribute: position {len}: the value is not closed with {}",
                quote as char
            ));
        };
        let value_end = value_start + q;
        i = value_end + 1;
        if !each(&inner[key_start..key_end], &inner[value_start..value_end]) {
            return Ok(());
        }
    }
}

fn preview(s: &str) -> String {
    s.chars().take(60).collect()
}

/// XML-unescape an attribute value: the five predefined entities and
/// character references (decimal or `x` hex, not 0, a valid char). A `&`
/// with no `;` before the next `&` is an error, as in quick-xml.
pub fn unescape(raw: &str) -> Result<Cow<'_, str>, String> {
    let Some(first) = memchr::memchr(b'&', raw.as_bytes()) else {
        return Ok(Cow::Borrowed(raw));
    };
    let mut out = String::with_capacity(raw.len());
    walk_escapes(raw, first, &mut out)?;
    Ok(Cow::Owned(out))
}

/// Whether [`unescape`] would accept `raw` (the same error if not), with
/// nothing built: for a value read again later.
pub fn check_escapes(raw: &str) -> Result<(), String> {
    match memchr::memchr(b'&', raw.as_bytes()) {
        Some(first) => walk_escapes(raw, first, &mut ()),
        None => Ok(()),
    }
}

/// Where [`walk_escapes`] puts the text: a `String`, or nowhere.
trait Unescaped {
    fn text(&mut self, s: &str);
    fn char(&mut self, c: char);
}

impl Unescaped for String {
    fn text(&mut self, s: &str) {
        self.push_str(s);
    }
    fn char(&mut self, c: char) {
        self.push(c);
    }
}

impl Unescaped for () {
    fn text(&mut self, _: &str) {}
    fn char(&mut self, _: char) {}
}

fn walk_escapes(raw: &str, first: usize, out: &mut impl Unescaped) -> Result<(), String> {
    let b = raw.as_bytes();
    let mut last = 0;
    let mut amp = first;
    loop {
        // the entity ends at the first ';' or '&' after it, which must be ';'
        let end = memchr::memchr2(b';', b'&', &b[amp + 1..])
            .map(|k| amp + 1 + k)
            .filter(|&k| b[k] == b';')
            .ok_or_else(|| {
                format!(
                    "bad escape in attribute: unterminated entity at {amp}: {:?}",
                    preview(&raw[amp..])
                )
            })?;
        out.text(&raw[last..amp]);
        let name = &raw[amp + 1..end];
        match name {
            "lt" => out.char('<'),
            "gt" => out.char('>'),
            "amp" => out.char('&'),
            "apos" => out.char('\''),
            "quot" => out.char('"'),
            _ => match name.strip_prefix('#') {
                Some(num) => out.char(char_ref(num)?),
                None => return Err(format!("bad escape in attribute: unknown entity &{name};")),
            },
        }
        last = end + 1;
        match memchr::memchr(b'&', &b[last..]) {
            Some(k) => amp = last + k,
            None => break,
        }
    }
    out.text(&raw[last..]);
    Ok(())
}

fn char_ref(num: &str) -> Result<char, String> {
    let (digits, radix) = match num.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (num, 10),
    };
    let code = match digits.as_bytes().first() {
        Some(b'+' | b'-') | None => None,
        _ => u32::from_str_radix(digits, radix).ok(),
    };
    code.filter(|&c| c != 0)
        .and_then(char::from_u32)
        .ok_or_else(|| format!("bad escape in attribute: bad character reference &#{num};"))
}

pub fn required<'a>(value: Option<&'a str>, name: &str) -> Result<&'a str, String> {
    value.ok_or_else(|| format!("row has no {name} attribute"))
}

/// Post ids are 32-bit in every Stack Exchange schema.
pub fn parse_id(value: &str, name: &str) -> Result<u32, String> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("{name}={value:?} is not a post id"))
}

pub fn parse_int(value: &str, name: &str) -> Result<i64, String> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("{name}={value:?} is not an integer"))
}

/// Tags come as `<a><b>` (older dumps) or `|a|b|` (newer ones).
pub fn parse_tags(unescaped: &str) -> Vec<String> {
    unescaped
        .split(['<', '>', '|'])
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per case: line, expected Id (or error fragment).
    #[test]
    fn line_table() {
        let cases: &[(&str, Result<Option<&str>, &str>)] = &[
            ("<?xml version=\"1.0\" encoding=\"utf-8\"?>", Ok(None)),
            ("<posts>", Ok(None)),
            ("\u{feff}<?xml version=\"1.0\"?>", Ok(None)),
            ("<!DOCTYPE posts>", Ok(None)),
            ("<!doctype posts SYSTEM \"posts.dtd\">", Ok(None)),
            ("  <row Id=\"7\" PostTypeId=\"1\" />", Ok(Some("7"))),
            ("  <row PostTypeId=\"2\" Id=\"8\"/>", Ok(Some("8"))),
            ("  <row Id=\"7\" Id=\"8\" />", Err("bad attribute")),
            ("  <row Id=\"7\" PostTypeId=\"1\">", Err("not closed")),
            ("  <rowx Id=\"7\" />", Err("expected a <row")),
            ("  <user Id=\"7\" />", Err("expected a <row")),
            ("  <row Id=\"7 />", Err("bad attribute")),
        ];
        for (line, want) in cases {
            match (parse_line(line), want) {
                (Ok(Line::Row(r)), Ok(Some(id))) => assert_eq!(r.id, Some(*id), "{line}"),
                (Ok(Line::Frame), Ok(None)) => {}
                (Err(e), Err(frag)) => assert!(e.contains(frag), "{line}: {e}"),
                (got, _) => panic!("{line}: unexpected {got:?}"),
            }
        }
    }

    /// The reader this one replaced: quick-xml's attribute iterator with its
    /// checks on, and its unescape. Accepted lines and every value must agree.
    fn quick_xml_attributes(line: &str, root: &str) -> Result<Option<Vec<(String, String)>>, ()> {
        use quick_xml::events::BytesStart;
        let t = line.trim_start_matches('\u{feff}').trim();
        if t.is_empty()
            || t.starts_with("<?xml")
            || t.strip_prefix('<').and_then(|r| r.strip_suffix('>')) == Some(root)
            || t.strip_prefix("</").and_then(|r| r.strip_suffix('>')) == Some(root)
        {
            return Ok(None);
        }
        let inner = t
            .strip_prefix('<')
            .and_then(|s| s.strip_suffix("/>"))
            .ok_or(())?;
        let name_len = inner
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(inner.len());
        if !t.starts_with("<row") || &inner[..name_len] != "row" {
            return Err(());
        }
        let mut out = Vec::new();
        for attr in BytesStart::from_content(inner, name_len)
            .attributes()
            .with_checks(true)
        {
            let attr = attr.map_err(|_| ())?;
            let key: &str = attr.key.as_ref();
            let raw: &str = &attr.value;
            out.push((key.to_string(), raw.to_string()));
        }
        Ok(Some(out))
    }

    fn ours(line: &str, root: &str) -> Result<Option<Vec<(String, String)>>, ()> {
        let mut out = Vec::new();
        match for_each_attribute(line, root, |k, v| {
            out.push((k.to_string(), v.to_string()));
            true
        }) {
            Ok(RowKind::Row) => Ok(Some(out)),
            Ok(_) => Ok(None),
            Err(_) => Err(()),
        }
    }

    fn agree(line: &str) {
        assert_eq!(
            ours(line, "posts"),
            quick_xml_attributes(line, "posts"),
            "{line:?}"
        );
        if let Ok(Some(attrs)) = ours(line, "posts") {
            for (_, v) in attrs {
                let mine = unescape(&v).map_err(|_| ());
                let theirs = quick_xml::escape::unescape(&v)
                    .map(|c| c.into_owned())
                    .map_err(|_| ());
                assert_eq!(mine.map(|c| c.into_owned()), theirs, "{v:?}");
            }
        }
    }

    #[test]
    fn same_as_quick_xml_on_tricky_rows() {
        for line in [
            "<row Id=\"1\"Score=\"2\" />",
            "<row Id = \"1\"\tScore\n=\r'2' />",
            "<row Id=\"1\" Body=\"a > b < c / d\" />",
            "<row Id=\"1\" Body='say \"hi\"' />",
            "<row =\"1\" />",
            "<row Id />",
            "<row Id= />",
            "<row Id=1 />",
            "<row Id=\"1\" Id=\"1\" />",
            "<row Id=\"1\" ID=\"1\" />",
            "<row a=\"1\" b=\"2\" c=\"3\" d=\"4\" e=\"5\" f=\"6\" g=\"7\" h=\"8\" i=\"9\" a=\"0\" />",
            "<row Body=\"&lt;p&gt;&amp;amp;&#65;&#x42;&#x;&#0;&#-1;&#+1;&#xD800;&#1114112;\" />",
            "<row Body=\"&lt;p&gt; &amp\" />",
            "<row Body=\"a & b; c\" />",
            "<row Body=\"&&lt;\" />",
            "<row Body=\"&#X41;&#065;&#x0041;&LT;\" />",
            "<row/>",
            "<row />",
            "<row\tId=\"1\"/>",
            "<row\u{c}Id=\"1\"/>",
            "<rowId=\"1\"/>",
            "<row Id=\"é\" Tïtle=\"ü\" />",
        ] {
            agree(line);
        }
        // every attribute of a row with one 'a=' among many keys
        let many: String = (0..100).map(|i| format!(" k{i}=\"{i}\"")).collect();
        agree(&format!("<row{many} />"));
        agree(&format!("<row{many} k7=\"x\" />"));
    }

    #[test]
    fn same_as_quick_xml_on_the_real_dumps() {
        let root = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../lima/samples/stackexchange/"
        );
        for site in [
            "coffee.stackexchange.com",
            "quantumcomputing.stackexchange.com",
        ] {
            let text = std::fs::read_to_string(format!("{root}{site}/Posts.xml")).expect("dump");
            for line in text.lines() {
                agree(line);
                // and cut short at a few places
                for cut in [line.len() / 3, line.len() / 2, line.len().saturating_sub(3)] {
                    if line.is_char_boundary(cut) {
                        agree(&format!("{}/>", &line[..cut]));
                    }
                }
            }
        }
    }

    #[test]
    fn tags_both_forms() {
        assert_eq!(parse_tags("<beer><hops>"), vec!["beer", "hops"]);
        assert_eq!(parse_tags("|beer|hops|"), vec!["beer", "hops"]);
        assert!(parse_tags("").is_empty());
    }

    #[test]
    fn escapes_decode() {
        assert_eq!(
            unescape("&lt;p&gt;a &amp;amp; b&#xA;").expect("ok"),
            "<p>a &amp; b\n"
        );
        assert!(unescape("&bogus;").is_err());
    }
}
