//! Web pages: the main content as headings, paragraphs, list items and table rows, without
//! navigation, scripts, cookie banners, footers and other page furniture.

use ego_tree::NodeRef;
use scraper::{ElementRef, Html, Node, Selector};

use crate::detect::Format;
use crate::document::{squash_whitespace, Block, BlockKind, Extracted};
use crate::limits::pages_for_chars;

use super::sheet::row_text;

/// Elements that never hold the page's content.
const SKIPPED_TAGS: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "nav", "footer", "aside", "form", "iframe",
    "button", "select", "dialog", "canvas", "object", "embed", "head", "menu",
];
/// ARIA roles of page furniture.
const SKIPPED_ROLES: &[&str] = &[
    "navigation",
    "contentinfo",
    "complementary",
    "dialog",
    "alertdialog",
    "search",
    "menu",
    "menubar",
];
/// Words in a class or id that mark page furniture.
const SKIPPED_NAMES: &[&str] = &[
    "cookie",
    "cookies",
    "consent",
    "gdpr",
    "newsletter",
    "breadcrumb",
    "breadcrumbs",
    "sidebar",
    "menu",
    "navbar",
    "nav",
    "navigation",
    "footer",
    "popup",
    "modal",
    "share",
    "social",
    "advert",
    "advertisement",
    "ads",
    "subscribe",
];
const BLOCK_TAGS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "blockquote",
    "pre",
    "dd",
    "dt",
    "dl",
    "figcaption",
    "figure",
    "address",
    "ul",
    "ol",
    "details",
    "summary",
    "header",
    "hr",
    "br",
    "body",
];

pub fn extract(text: &str) -> Extracted {
    let html = Html::parse_document(text);
    let title = Selector::parse("title")
        .ok()
        .and_then(|s| html.select(&s).next())
        .map(|t| squash_whitespace(&t.text().collect::<String>()))
        .filter(|t| !t.is_empty());
    let root = ["main", "article", "[role=main]", "body"]
        .iter()
        .filter_map(|s| Selector::parse(s).ok())
        .find_map(|s| html.select(&s).next())
        .unwrap_or_else(|| html.root_element());
    let mut walker = Walker::default();
    walker.walk(*root);
    walker.flush();
    let chars = walker.blocks.iter().map(|b| b.text.chars().count()).sum();
    Extracted {
        format: Format::Html,
        pages: pages_for_chars(chars),
        blocks: walker.blocks,
        warnings: Vec::new(),
        title,
    }
}

fn skipped(element: &scraper::node::Element, node: NodeRef<Node>) -> bool {
    let name = element.name();
    if SKIPPED_TAGS.contains(&name) {
        return true;
    }
    if name == "header" {
        // A site header carries the menu; an article's header carries its title.
        let has_nav = node.descendants().any(|d| {
            d.value()
                .as_element()
                .is_some_and(|e| e.name() == "nav" || e.attr("role") == Some("navigation"))
        });
        if has_nav {
            return true;
        }
    }
    if element.attr("hidden").is_some() || element.attr("aria-hidden") == Some("true") {
        return true;
    }
    if element
        .attr("role")
        .is_some_and(|r| SKIPPED_ROLES.contains(&r.to_ascii_lowercase().as_str()))
    {
        return true;
    }
    let names = element
        .attr("class")
        .into_iter()
        .chain(element.attr("id"))
        .flat_map(|v| v.split(|c: char| !c.is_ascii_alphanumeric()))
        .map(str::to_ascii_lowercase);
    for word in names {
        if SKIPPED_NAMES.contains(&word.as_str()) {
            return true;
        }
    }
    false
}

fn text_of(node: NodeRef<Node>) -> String {
    let mut out = String::new();
    collect_text(node, &mut out);
    squash_whitespace(&out)
}

fn collect_text(node: NodeRef<Node>, out: &mut String) {
    for child in node.children() {
        match child.value() {
            Node::Text(t) => out.push_str(t),
            Node::Element(e) if !skipped(e, child) => {
                if e.name() == "br" || BLOCK_TAGS.contains(&e.name()) {
                    out.push(' ');
                }
                collect_text(child, out);
                if BLOCK_TAGS.contains(&e.name()) || matches!(e.name(), "td" | "th" | "li") {
                    out.push(' ');
                }
            }
            _ => {}
        }
    }
}

#[derive(Default)]
struct Walker {
    blocks: Vec<Block>,
    inline: String,
    list_depth: usize,
}

impl Walker {
    fn flush(&mut self) {
        let text = squash_whitespace(&self.inline);
        self.inline.clear();
        if text.is_empty() {
            return;
        }
        let kind = if self.list_depth > 0 {
            BlockKind::ListItem
        } else {
            BlockKind::Paragraph
        };
        self.blocks.push(Block::new(kind, text));
    }

    fn walk(&mut self, node: NodeRef<Node>) {
        for child in node.children() {
            match child.value() {
                Node::Text(t) => self.inline.push_str(t),
                Node::Element(e) => {
                    if skipped(e, child) {
                        continue;
                    }
                    match e.name() {
                        h @ ("h1" | "h2" | "h3" | "h4" | "h5" | "h6") => {
                            self.flush();
                            let level = h[1..].parse::<u8>().unwrap_or(1);
                            let text = text_of(child);
                            if !text.is_empty() {
                                self.blocks
                                    .push(Block::new(BlockKind::Heading(level), text));
                            }
                        }
                        "li" => {
                            self.flush();
                            self.list_depth += 1;
                            self.walk(child);
                            self.flush();
                            self.list_depth -= 1;
                        }
                        "table" => {
                            self.flush();
                            self.table(child);
                        }
                        name if BLOCK_TAGS.contains(&name) => {
                            self.flush();
                            self.walk(child);
                            self.flush();
                        }
                        _ => {
                            self.inline.push(' ');
                            self.walk(child);
                            self.inline.push(' ');
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn table(&mut self, table: NodeRef<Node>) {
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut stack: Vec<NodeRef<Node>> = table.children().collect();
        stack.reverse();
        while let Some(node) = stack.pop() {
            let Some(element) = ElementRef::wrap(node) else {
                continue;
            };
            match element.value().name() {
                "tr" => rows.push(
                    node.children()
                        .filter(|c| {
                            c.value()
                                .as_element()
                                .is_some_and(|e| matches!(e.name(), "td" | "th"))
                        })
                        .map(text_of)
                        .collect(),
                ),
                "thead" | "tbody" | "tfoot" => {
                    let mut children: Vec<NodeRef<Node>> = node.children().collect();
                    children.reverse();
                    stack.extend(children);
                }
                "caption" => {
                    let text = text_of(node);
                    if !text.is_empty() {
                        self.blocks.push(Block::new(BlockKind::Paragraph, text));
                    }
                }
                _ => {}
            }
        }
        rows.retain(|r| r.iter().any(|c| !c.is_empty()));
        let mut rows = rows.into_iter();
        let Some(headers) = rows.next() else {
            return;
        };
        let mut any = false;
        for row in rows {
            if let Some(text) = row_text(&headers, &row) {
                any = true;
                self.blocks.push(Block::new(BlockKind::Row, text));
            }
        }
        if !any {
            self.blocks
                .push(Block::new(BlockKind::Paragraph, headers.join(" | ")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_content_and_drops_furniture() {
        let page = r#"<!doctype html><html><head><title>Shipping | Kopi</title>
            <script>var navmarker = 1;</script><style>.x{}</style></head><body>
            <header><nav><a href="/">Home navmarker</a></nav></header>
            <div class="cookie-banner">We use cookies cookiemarker</div>
            <main><h1>Shipping</h1><p>We ship <b>every</b> weekday.</p>
            <h2>Zones</h2><ul><li>Java: 2 days</li><li>Bali: 3 days</li></ul>
            <table><tr><th>Zone</th><th>Fee</th></tr><tr><td>Java</td><td>10k</td></tr></table>
            </main><footer>© footermarker</footer></body></html>"#;
        let doc = extract(page);
        let all: String = doc.blocks.iter().map(|b| b.text.clone() + "\n").collect();
        for gone in ["navmarker", "cookiemarker", "footermarker", "var "] {
            assert!(!all.contains(gone), "{gone} leaked into {all}");
        }
        let got: Vec<(BlockKind, &str)> = doc
            .blocks
            .iter()
            .map(|b| (b.kind, b.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (BlockKind::Heading(1), "Shipping"),
                (BlockKind::Paragraph, "We ship every weekday."),
                (BlockKind::Heading(2), "Zones"),
                (BlockKind::ListItem, "Java: 2 days"),
                (BlockKind::ListItem, "Bali: 3 days"),
                (BlockKind::Row, "Zone: Java; Fee: 10k"),
            ]
        );
        assert_eq!(doc.title.as_deref(), Some("Shipping | Kopi"));
    }
}
