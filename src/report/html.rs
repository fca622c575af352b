//! One self-contained HTML page: inline CSS, inline SVG, and the data it was drawn from
//! embedded once as JSON. Nothing is fetched: the page's Content-Security-Policy forbids
//! every request and every script, so a page opened from a mail attachment or an air-gapped
//! share looks the same, and a name that slipped past escaping could still not run.
//!
//! Every piece of text that reaches the page goes through [`escape`] (text nodes and
//! attribute values alike); the data block goes through [`script_json`], which leaves no
//! `<` in it, so neither `</script>` nor `<!--` in a name can end the block early.

use serde_json::Value;
use std::fmt::Write;

/// `s` safe in a text node and in a quoted attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `v` as JSON text for a `<script type="application/json">` block: `<`, `>` and `&` as
/// `\u003c`, `\u003e`, `\u0026` (they occur only inside strings, where the escapes mean the
/// same characters), so the HTML parser sees no end tag and no comment in it.
pub fn script_json(v: &Value) -> String {
    let text = serde_json::to_string(v).unwrap_or_else(|_| "null".into());
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The `id` of the data block, for readers of the page.
pub const DATA_ID: &str = "modelwatch-data";

/// A page being built: a title, a line under it, and sections in order.
pub struct Page {
    title: String,
    lead: Vec<String>,
    toc: Vec<(String, String)>,
    body: String,
}

impl Page {
    /// An empty page titled `title`.
    pub fn new(title: &str) -> Page {
        Page { title: title.to_string(), lead: Vec::new(), toc: Vec::new(), body: String::new() }
    }

    /// A line of plain text under the title.
    pub fn lead(&mut self, text: &str) -> &mut Page {
        self.lead.push(escape(text));
        self
    }

    /// A section: `id` for its anchor, `title` as plain text, `content` as HTML the caller
    /// built from escaped text and charts.
    pub fn section(&mut self, id: &str, title: &str, content: &str) -> &mut Page {
        self.add(id, title, content, "")
    }

    /// A section across the page's whole width (timelines, matrices, long tables).
    pub fn wide_section(&mut self, id: &str, title: &str, content: &str) -> &mut Page {
        self.add(id, title, content, " class=\"wide\"")
    }

    fn add(&mut self, id: &str, title: &str, content: &str, class: &str) -> &mut Page {
        let (id, title) = (escape(id), escape(title));
        let _ = write!(self.body, "<section id=\"{id}\"{class}><h2>{title}</h2>\n{content}</section>\n");
        self.toc.push((id, title));
        self
    }

    /// The whole page, with `data` embedded once.
    pub fn finish(&self, data: &Value) -> String {
        let mut out = String::with_capacity(self.body.len() + 8_192);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"generator\" content=\"modelwatch {}\">\n<title>{}</title>\n<style>{STYLE}</style></head>\n<body>\n<header><h1>{}</h1>\n",
            env!("CARGO_PKG_VERSION"),
            escape(&self.title),
            escape(&self.title)
        );
        for l in &self.lead {
            let _ = writeln!(out, "<p class=\"lead\">{l}</p>");
        }
        out.push_str("<nav>");
        for (id, title) in &self.toc {
            let _ = write!(out, "<a href=\"#{id}\">{title}</a> ");
        }
        out.push_str("</nav></header>\n<main>\n");
        out.push_str(&self.body);
        let _ = write!(
            out,
            "</main>\n<script type=\"application/json\" id=\"{DATA_ID}\">{}</script>\n</body></html>\n",
            script_json(data)
        );
        out
    }
}

/// A table of plain-text cells, each escaped here.
pub fn table(class: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table class=\"{}\"><thead><tr>", escape(class));
    for h in header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>\n");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", escape(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
    out
}

/// A paragraph of plain text with a class (`note`, `nodata`).
pub fn para(class: &str, text: &str) -> String {
    format!("<p class=\"{}\">{}</p>\n", escape(class), escape(text))
}

const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}\
header{background:#1f2937;color:#f9fafb;padding:14px 24px}header h1{margin:0 0 4px;font-size:22px}\
.lead{margin:2px 0;color:#d1d5db}nav{margin-top:8px}nav a{color:#93c5fd;margin-right:12px;text-decoration:none;font-size:13px}\
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:16px;padding:16px 24px}\
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px 16px;overflow:auto}\
section.wide{grid-column:1/-1}h2{font-size:16px;margin:0 0 8px}\
figure{margin:0}figcaption{font-size:12px;color:#57606a;margin:4px 0}svg{display:block;max-width:100%;height:auto}\
svg text{font:11px system-ui,sans-serif;fill:#57606a}svg .title{font-size:12px;fill:#1f2328}\
.legend{display:flex;flex-wrap:wrap;gap:4px 12px;font-size:12px;margin:4px 0}.legend span i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}\
table{border-collapse:collapse;font-size:12px;width:100%;margin:6px 0}th,td{border-bottom:1px solid #eaeef2;padding:3px 6px;text-align:left;vertical-align:top}\
th{background:#f6f8fa}td{overflow-wrap:break-word}.note{font-size:12px;color:#57606a}.nodata{color:#8c959f;font-style:italic}\
code{font-size:12px;background:#f6f8fa;padding:1px 3px;border-radius:3px;word-break:break-all}";
