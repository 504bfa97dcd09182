//! Inline SVG line charts of the last hour (no external assets). The page
//! script redraws them from `/v1/dashboard/history` with the same geometry
//! (`dashChart` in dashboard.js).

use dfs_server_kit::http::html::{bytes, escape};

use crate::history::Sample;

pub const WIDTH: f64 = 640.0;
pub const HEIGHT: f64 = 170.0;
/// Room for the axis labels on the left and below.
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 10.0;
const HOUR_MS: f64 = 3_600_000.0;

/// One line: its name, colour and the value it takes from each sample.
pub struct Line {
    pub name: &'static str,
    pub color: &'static str,
    pub value: fn(&Sample) -> f64,
}

/// "rate" (bytes/s) or "bytes": how the scale is labelled.
fn label(v: f64, format: &str) -> String {
    let b = bytes(v.round() as u64);
    if format == "rate" {
        format!("{b}/s")
    } else {
        b
    }
}

/// The polyline points of one line, x over the hour before `now_ms`.
pub fn points(samples: &[Sample], now_ms: u64, max: f64, value: fn(&Sample) -> f64) -> String {
    let span_y = HEIGHT - BOTTOM - TOP;
    samples
        .iter()
        .map(|s| {
            let age = now_ms.saturating_sub(s.unix_ms) as f64;
            let x = LEFT + (WIDTH - LEFT) * (1.0 - (age / HOUR_MS).min(1.0));
            let y = TOP + span_y * (1.0 - if max > 0.0 { value(s) / max } else { 0.0 });
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A chart with an id (the script finds it by `id`), a title and lines.
pub fn chart(id: &str, title: &str, format: &str, samples: &[Sample], now_ms: u64, lines: &[Line]) -> String {
    let max = samples.iter().flat_map(|s| lines.iter().map(move |l| (l.value)(s))).fold(0.0, f64::max);
    let mut svg = format!(
        r##"<figure><figcaption>{t}</figcaption><svg class="chart" id="{id}" data-format="{format}" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{t}">
<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{yb}" stroke="#999"/><line x1="{LEFT}" y1="{yb}" x2="{WIDTH}" y2="{yb}" stroke="#999"/>
<text x="4" y="{ty}" class="max">{m}</text><text x="4" y="{yb}">0</text><text x="{LEFT}" y="{HEIGHT}">−60 min</text><text x="{xr}" y="{HEIGHT}">now</text>"##,
        t = escape(title),
        id = escape(id),
        yb = HEIGHT - BOTTOM,
        ty = TOP + 10.0,
        m = escape(&label(max, format)),
        xr = WIDTH - 26.0,
    );
    for (i, l) in lines.iter().enumerate() {
        svg += &format!(
            r##"<polyline class="line{i}" fill="none" stroke="{c}" stroke-width="1.5" points="{p}"/><text x="{x}" y="{ty}" fill="{c}">{n}</text>"##,
            c = l.color,
            p = points(samples, now_ms, max, l.value),
            x = LEFT + 10.0 + 130.0 * i as f64,
            ty = TOP + 10.0,
            n = l.name,
        );
    }
    svg + "</svg></figure>"
}

/// The throughput and capacity charts.
pub fn both(samples: &[Sample], now_ms: u64) -> String {
    let throughput =
        [Line { name: "read", color: "#2a7", value: |s| s.read_bytes_per_sec }, Line { name: "write", color: "#c52", value: |s| s.write_bytes_per_sec }];
    let capacity =
        [Line { name: "used", color: "#c52", value: |s| s.used_bytes as f64 }, Line { name: "capacity", color: "#48a", value: |s| s.capacity_bytes as f64 }];
    format!(
        r#"<div class="cards">{}{}</div>"#,
        chart("chart-throughput", "Cluster throughput, last hour", "rate", samples, now_ms, &throughput),
        chart("chart-capacity", "Capacity, last hour", "bytes", samples, now_ms, &capacity)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_sample_is_at_the_right_edge_and_the_max_at_the_top() {
        let s = [Sample { unix_ms: 1000, read_bytes_per_sec: 10.0, ..Default::default() }];
        assert_eq!(points(&s, 1000, 10.0, |s| s.read_bytes_per_sec), format!("{WIDTH:.1},{TOP:.1}"));
        let svg = both(&s, 1000);
        assert!(svg.contains(r#"id="chart-throughput""#) && svg.contains("10 B/s"), "{svg}");
    }
}
