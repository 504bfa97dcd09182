//! Server-rendered HTML shared by the daemons' pages: one `escape` for
//! every string that comes from outside (names, paths, addresses), URL
//! encoding for query values, the page frame (inline CSS, no external
//! assets: pages work offline) and the HTML 404 page.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

/// Percent-encodes a query value or path segment (everything but
/// unreserved characters), so it can go into a URL unchanged.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A byte count for people: `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A horizontal bar showing `used` of `total`; `key` names the figure the
/// page's script keeps current (`data-bar`; none when empty).
pub fn bar(used: u64, total: u64, key: &str) -> String {
    let pct = if total == 0 { 0.0 } else { (used as f64 * 100.0 / total as f64).min(100.0) };
    let live = if key.is_empty() { String::new() } else { format!(r#" data-bar="{}""#, escape(key)) };
    format!(r#"<span class="bar"><span{live} style="width:{pct:.1}%"></span></span>"#)
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#234;color:#fff;padding:.6em 1.5em;display:flex;gap:1.5em;align-items:baseline;flex-wrap:wrap}
header a{color:#cde;text-decoration:none}header a:hover{color:#fff}header b{font-size:1.2em}
main{padding:1em 1.5em}h2{margin:1.2em 0 .4em;font-size:1.15em}
table{border-collapse:collapse;background:#fff}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
th{background:#eef}.num{text-align:right;font-variant-numeric:tabular-nums}
.live,.current,.healthy{color:#070}.dead,.missing,.corrupt{color:#b00;font-weight:bold}
.decommissioning,.decommissioned,.stale,.draining,.copying,.under-replicated{color:#a60}
.bar{display:inline-block;width:12em;height:.8em;background:#ddd;border-radius:.3em;overflow:hidden;vertical-align:middle;margin-right:.5em}
.bar span{display:block;height:100%;background:#48a}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{background:#fff;border:1px solid #ddd;border-radius:.4em;padding:.6em 1em;min-width:14em}
.card p{margin:.3em 0}.muted{color:#777}code{font-size:.95em}svg{background:#fff;border:1px solid #ddd}
.chart text{font-size:11px;fill:#555}";

/// The shared page script: `dfsPoll(url, fn)` polls JSON every 2 s,
/// `dfsFill(root, data)` fills `[data-k]` and `[data-bar]` elements with
/// textContent and widths, `dfsCell` builds table cells from text.
pub const LIVE_JS: &str = include_str!("live.js");

/// A whole page: the daemon's title, its navigation links (href, label),
/// the body and, when given, an inline script.
pub fn page(title: &str, nav: &[(&str, &str)], body: &str, script: &str) -> String {
    let links: String = nav.iter().map(|(href, label)| format!(r#"<a href="{}">{}</a>"#, escape(href), escape(label))).collect();
    let script = if script.is_empty() { String::new() } else { format!("<script>{script}</script>") };
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{t}</title><style>{CSS}</style></head><body>
<header><b>{t}</b>{links}</header><main>{body}</main>{script}</body></html>"#,
        t = escape(title)
    )
}

/// The HTML 404 page for an unknown page.
pub fn not_found(title: &str, nav: &[(&str, &str)], path: &str) -> Response {
    let body = format!("<h2>Page not found</h2><p>There is no page <code>{}</code>.</p>", escape(path));
    (StatusCode::NOT_FOUND, Html(page(title, nav, &body, ""))).into_response()
}

/// An HTML error page with a status.
pub fn error_page(status: StatusCode, title: &str, nav: &[(&str, &str)], message: &str) -> Response {
    let body = format!("<h2>{}</h2><p>{}</p>", escape(status.canonical_reason().unwrap_or("Error")), escape(message));
    (status, Html(page(title, nav, &body, ""))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_urls_are_escaped() {
        assert_eq!(escape(r#"<script>"a"&'b'</script>"#), "&lt;script&gt;&quot;a&quot;&amp;&#39;b&#39;&lt;/script&gt;");
        assert_eq!(url_encode("/a b/ü&x=\"'<"), "/a%20b/%C3%BC%26x%3D%22%27%3C");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 29), "1.5 GiB");
        assert!(page("t<", &[("/x?a=\"", "<b>")], "", "").contains(r#"<a href="/x?a=&quot;">&lt;b&gt;</a>"#));
    }
}
