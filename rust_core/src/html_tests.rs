use super::*;

/// One row per case: HTML in, Markdown out (default style: `* ` bullets, one
/// newline between paragraphs). Snippets are cut from the real dumps under
/// shared/data (site and post id in the comment), shortened where long.
const CASES: &[(&str, &str)] = &[
    // beer a93
    ("<p>Pair it with baked, broiled, or grilled whitefish.<sup>1</sup>  Of course, how you cook it matters.</p>", "Pair it with baked, broiled, or grilled whitefish.¹ Of course, how you cook it matters."),
    // qc a1241: a citation raised after a name
    (
        "<p><a href=\"https://en.wikipedia.org/wiki/Paul_Benioff\">Paul Benioff</a> <sup><a href=\"https://doi.org/10.1007%2FBF01011339\">study</a></sup> and Yuri Manin</p>",
        "Paul Benioff study and Yuri Manin",
    ),
    ("<p>Mass<sup>kg</sup></p>", "Mass^(kg)"),
    // beer a376
    ("<p>Regular beers served only on CO<sub>2</sub>.  For stouts, the fuller head.</p>", "Regular beers served only on CO₂. For stouts, the fuller head."),
    // qc a1361
    ("<li>a member of a class called <strong>C<sub>=</sub>P</strong>.)</li>", "* a member of a class called C₌P.)"),
    // issue
    ("<p>Light travels at 3&times;10<sup>8</sup> m/s; in the 20<sup>th</sup> century x<sup>ab</sup> and x<sub>max</sub>.</p>", "Light travels at 3×10⁸ m/s; in the 20th century x^(ab) and xₘₐₓ."),
    // coffee a181
    ("<p>Burnt coffee is bitter <strike>and these coffees contain acrylamide</strike> and flat.</p>", "Burnt coffee is bitter and flat."),
    // beer a711
    ("<p>To see which beer is available at which time etc, look at this page: \n<a href=\"http://www.sintsixtus.be/bierverkoopactueel.htm\">http://www.sintsixtus.be/bierverkoopactueel.htm</a></p>\n\n<p>In addition to the 60 days you wait.</p>", "To see which beer is available at which time etc, look at this page.\nIn addition to the 60 days you wait."),
    // beer a825
    ("<p>The other notable beer local to the Canary Islands that we know of is Viva (<a href=\"http://www.cervezaviva.com/\" rel=\"nofollow\">http://www.cervezaviva.com/</a>).</p>", "The other notable beer local to the Canary Islands that we know of is Viva."),
    // beer a251
    ("<p>styles that can be served with lower volumes of carbon-dioxide. </p>\n\n<p>see</p>\n\n<ul>\n<li><a href=\"http://en.wikipedia.org/wiki/Widget_(beer)#Method\">http://en.wikipedia.org/wiki/Widget_(beer)#Method</a></li>\n</ul>\n", "styles that can be served with lower volumes of carbon-dioxide."),
    // beer a49
    ("<p>Mythbusters address this in episode 127 - <a href=\"http://mythresults.com/dirty-vs-clean-car\" rel=\"nofollow noreferrer\">http://mythresults.com/dirty-vs-clean-car</a> - the <em>rate</em> of consumption is what matters.</p>", "Mythbusters address this in episode 127 - the rate of consumption is what matters."),
    // beer a140
    ("<p>As <a href=\"http://www.professorbeer.com/articles/skunked_beer.html\">explained by George de Piro</a>, a biochemist—</p>\n\n<blockquote>\n  <p>When light hits beer, it provides the energy.</p>\n  <p>Storing beer in the dark is the simple way.</p>\n</blockquote>\n\n<p>It's actually pretty amazing.</p>", "As explained by George de Piro, a biochemist—\n\n> When light hits beer, it provides the energy.\n> Storing beer in the dark is the simple way.\n\nIt's actually pretty amazing."),
    // qc a24
    ("<ul>\n<li><a href=\"http://thegreves.com/david/QDD/qdd.html\" rel=\"noreferrer\">QDD: A Quantum Computer Emulation Library</a>\n\n<blockquote>\n  <p>QDD is a C++ library.</p>\n</blockquote></li>\n<li><a href=\"http://jquantum.sourceforge.net/\" rel=\"noreferrer\">jQuantum</a>\n\n<blockquote>\n  <p>jQuantum is a program which simulates a quantum computer.</p>\n</blockquote></li>\n</ul>", "* QDD: A Quantum Computer Emulation Library\n\n  > QDD is a C++ library.\n* jQuantum\n\n  > jQuantum is a program which simulates a quantum computer."),
    // meta q246
    ("<p>Below is a breakdown:</p>\n<div class=\"s-table-container\">\n<table class=\"s-table\">\n<thead>\n<tr>\n<th style=\"text-align: left;\">Action</th>\n<th style=\"text-align: right;\">Moderators</th>\n<th style=\"text-align: right;\">Community¹</th>\n</tr>\n</thead>\n<tbody>\n<tr>\n<td style=\"text-align: left;\">Users suspended²</td>\n<td style=\"text-align: right;\">0</td>\n<td style=\"text-align: right;\">5</td>\n</tr>\n</tbody>\n</table>\n</div>\n<p>After.</p>", "Below is a breakdown:\n\n| Action | Moderators | Community¹ |\n|---|---|---|\n| Users suspended² | 0 | 5 |\n\nAfter."),
    // qc a1805
    ("<p>Later, as pointed out in a comment,[1] it has been described as an \"<em>evolving target</em>\".</p>\n\n<p>[1] <em>Thanks to Sebastian Mach for that insight</em></p>", "Later, as pointed out in a comment, it has been described as an \"evolving target\"."),
    // qc a176
    ("<p>For applications to breaking cryptography, such as <a href=\"https://eprint.iacr.org/2017/811\">[1]</a>, <a href=\"https://cr.yp.to/papers.html#grovernfs\">[2]</a>, or <a href=\"https://blog.cr.yp.to/20171017-collisions.html\">[3]</a>, this is not actually a lookup.</p>", "For applications to breaking cryptography, such as, this is not actually a lookup."),
    // qc a1656
    ("<p>Registers q[0] and q[1] are added to get the sum in q[1].</p>", "Registers q[0] and q[1] are added to get the sum in q[1]."),
    // escape
    ("<p># of items is 5</p>\n<p>1984. A year</p>\n<p>- minus</p>\n<p>snake_case and _init_ and *stars* and &lt;div&gt;</p>", "\\# of items is 5\n1984\\. A year\n\\- minus\nsnake_case and \\_init\\_ and \\*stars\\* and \\<div>"),
    // qc a176 math
    ("<p>The function $f\\colon \\{0,1\\}^n \\to \\{0,1\\}$ with $x_1 * y_2$ and</p>\n<p>\\begin{equation*} x \\mapsto \\begin{cases} 1 \\end{cases} \\end{equation*}</p>", "The function $f\\colon \\{0,1\\}^n \\to \\{0,1\\}$ with $x_1 * y_2$ and\n\\begin{equation*} x \\mapsto \\begin{cases} 1 \\end{cases} \\end{equation*}"),
    // entities and paragraphs
    ("<p>Coffee &amp; tea</p>\n\n<p>Second &lt;para&gt;</p>", "Coffee & tea\nSecond \\<para>"),
    // links become their text, images vanish
    ("<p>See <a href=\"https://en.wikipedia.org/wiki/Hops\" rel=\"nofollow\">hops</a> here <img src=\"https://i.stack.imgur.com/x.png\" alt=\"hop\"></p>", "See hops here"),
    // emphasis dropped
    ("<p><strong>Short answer:</strong> <em>yes</em>.</p>", "Short answer: yes."),
    // inline code keeps its text
    ("<p>Use <code>a &lt; b  &amp;&amp; c</code> now</p>", "Use `a < b  && c` now"),
    // backtick in code
    ("<p><code>x`y</code></p>", "``x`y``"),
    // fenced code exact
    ("<p>Try:</p>\n\n<pre><code>def f(x):\n    return x &gt; 1\n\n\nprint(f(2))\n</code></pre>\n\n<p>Done.</p>", "Try:\n```\ndef f(x):\n    return x > 1\n\n\nprint(f(2))\n```\nDone."),
    // fence language
    ("<pre class=\"lang-py prettyprint-override\"><code>import qiskit\n</code></pre>", "```py\nimport qiskit\n```"),
    // fence inside code
    ("<pre><code>```\nx\n```\n</code></pre>", "````\n```\nx\n```\n````"),
    // nested lists
    ("<ul>\n<li>Stout</li>\n<li>Porter\n<ul>\n<li>Baltic</li>\n</ul></li>\n<li>Lager</li>\n</ul>", "* Stout\n* Porter\n  * Baltic\n* Lager"),
    // ordered nested
    ("<ol>\n<li><p>Grind.</p></li>\n<li><p>Brew:</p>\n\n<ol>\n<li>heat</li>\n<li>pour</li>\n</ol></li>\n</ol>", "1. Grind.\n2. Brew:\n   1. heat\n   2. pour"),
    // ol start
    ("<ol start=\"3\"><li>three</li><li>four</li></ol>", "3. three\n4. four"),
    // br
    ("<p>line one<br>line two<br/>three</p>", "line one\nline two\nthree"),
    // heading
    ("<h2>Setup</h2>\n<p>Text</p>", "## Setup\nText"),
    // rule
    ("<p>a</p><hr><p>b</p>", "a\n\n---\n\nb"),
    // whitespace
    ("<p>  many   \n spaces\there </p>", "many spaces here"),
    // script
    ("<p>x</p><script>alert(1)</script><p>y</p>", "x\ny"),
    // code in a list item
    ("<ul><li>Run:<pre><code>make\n</code></pre></li></ul>", "* Run:\n  ```\n  make\n  ```"),
    // quote inside a quote
    ("<blockquote><p>outer</p><blockquote><p>inner</p></blockquote><p>outer again</p></blockquote>", "> outer\n>\n> > inner\n>\n> outer again"),
    // empty
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
fn style_is_configurable() {
    let style = Style {
        bullet: "- ".into(),
        blank_line_between_paragraphs: true,
        inline_code_backticks: false,
        escape: false,
        max_depth: 8,
    };
    let c = convert(
        "<p>Use <code>make</code> # now</p><ul><li>a</li><li>b</li></ul><p>end</p>",
        &style,
    );
    assert_eq!(c.markdown, "Use make # now\n\n- a\n- b\n\nend");
}

#[test]
fn prose_excludes_code_math_and_quotes() {
    let c = html_to_markdown(
        "<p>My point $I_0$</p><pre><code>I = 1 # my var</code></pre>\
         <p>see <code>my_fn</code> too</p><blockquote><p>I asked this</p></blockquote>",
    );
    assert_eq!(c.prose, "My point\nsee too");
    assert_eq!(c.quoted, "I asked this");
}

#[test]
fn counts_for_the_filters() {
    // coffee a166: "The graph below shows ..." then the image
    let c = html_to_markdown(
        "<p>The graph below shows the drop in quality:</p>\n\n<p><img src=\"https://i.stack.imgur.com/a.png\"></p>",
    );
    assert_eq!((c.images, c.dangling_image), (1, true));
    let c = html_to_markdown(
        "<ul><li><a href=\"https://qiskit.org\">Qiskit textbook</a></li><li>Run it <a href=\"https://x.org\">here</a> on a simulator or a device</li></ul>",
    );
    assert_eq!(c.link_list_chars, "Qiskittextbook".len());
    let c = html_to_markdown("<p>see <a href=\"https://a.org/x\">https://a.org/x</a> now</p>");
    assert_eq!((c.url_links, c.markdown.as_str()), (1, "see now"));
}

/// Hostile nesting (issue 16): the output stays linear in the input and the
/// levels past the cap are flattened and counted, not indented further.
#[test]
fn deep_nesting_is_flattened() {
    for depth in [20_000usize, 40_000] {
        let html = format!(
            "{}x{}",
            "<ul><li>".repeat(depth),
            "</li></ul>".repeat(depth)
        );
        let c = html_to_markdown(&html);
        let style = Style::default();
        assert_eq!(c.flattened as usize, depth - style.max_depth, "{depth}");
        assert!(
            c.markdown.len() < html.len(),
            "{depth}: {} bytes",
            c.markdown.len()
        );
        assert!(c
            .markdown
            .lines()
            .all(|l| l.len() <= 4 * style.max_depth + 8));
        let quotes = format!(
            "{}q{}",
            "<blockquote>".repeat(depth),
            "</blockquote>".repeat(depth)
        );
        let c = html_to_markdown(&quotes);
        assert_eq!(c.markdown, format!("{}q", "> ".repeat(style.max_depth)));
        assert_eq!(c.quoted, "q");
    }
    // Text after the deep part is back at the top level.
    let html = format!(
        "{}x{}<p>after</p>",
        "<ol><li>".repeat(50),
        "</li></ol>".repeat(50)
    );
    assert!(html_to_markdown(&html).markdown.ends_with("\nafter"));
}

#[test]
fn unbalanced_markup_does_not_panic() {
    for html in [
        "</ul></li><li>x</blockquote>",
        "<table><td>a<table><td>b</td></table>c</td></table>",
        "<a href=x><table><td><a href=y>y</a></td></table></a>",
        "<sup><sup>2</sup>",
        "$$ x <p> $ y",
        "\\begin{x} <p>\\end{x}",
        "<pre><code>unclosed",
        "\u{e000}<a href=\"http://a\">http://a</a>",
    ] {
        let _ = html_to_markdown(html);
    }
}

/// Runs of plain words after one space each are written at once; words
/// parted by tabs take the word-by-word path. Both must give the same
/// Markdown, prose and counts, in prose, quotes, lists and links.
#[test]
fn a_run_of_plain_words_converts_like_the_words_one_by_one() {
    let cases = [
        "<p>one two  three four five*six seven_eight nine\u{a0}ten\u{b}eleven <b>bold</b> end </p>",
        "<blockquote><p>quoted words run on and on</p></blockquote><p>own words $x$ here and more</p>",
        "<ul><li>item one two three</li><li>1. not a list but words</li></ul>",
        "<p>see <a href=\"https://a.org/x\">the linked page text</a> for more words</p>",
        "<p>I think we agree.</p><p>Second paragraph, with commas; and (brackets) too.</p>",
        "<table><tr><td>cell words stay apart</td><td>two more</td></tr></table><p>after the table</p>",
    ];
    for html in cases {
        let tabs = html.replace(' ', "\t").replace("<a\thref", "<a href");
        let (run, one_by_one) = (html_to_markdown(html), html_to_markdown(&tabs));
        assert_eq!(run, one_by_one, "{html}");
    }
    let c = html_to_markdown(cases[0]);
    assert_eq!(
        c.markdown,
        "one two three four five\\*six seven_eight nine ten eleven bold end"
    );
    assert_eq!(
        c.prose,
        "one two three four five*six seven_eight nine ten eleven bold end"
    );
}
