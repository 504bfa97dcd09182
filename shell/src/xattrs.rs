//! Extended attributes, as `hdfs dfs -getfattr/-setfattr` (and getfattr(1)):
//! values given as "text", 0x hex or 0s base64, and printed the same way.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::{Subcommand, ValueEnum};

use crate::walk::Walk;
use crate::{absolute, Ctx, Failure};

#[derive(Subcommand)]
pub enum Verb {
    /// Show extended attributes: one (-n NAME) or all (-d).
    Getfattr {
        /// The attribute to show.
        #[arg(short = 'n', conflicts_with = "dump", required_unless_present = "dump")]
        name: Option<String>,
        /// Every attribute.
        #[arg(short = 'd')]
        dump: bool,
        /// How values are printed.
        #[arg(short = 'e', value_enum, default_value_t = Encoding::Text)]
        encoding: Encoding,
        /// Everything under directories too.
        #[arg(short = 'R')]
        recursive: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Set (-n NAME [-v VALUE]) or remove (-x NAME) an extended attribute.
    Setfattr {
        /// The attribute to set.
        #[arg(short = 'n', conflicts_with = "remove", required_unless_present = "remove")]
        name: Option<String>,
        /// Its value: "text", 0x followed by hex, 0s followed by base64, or
        /// plain text; empty when left out.
        #[arg(short = 'v', requires = "name", allow_hyphen_values = true)]
        value: Option<String>,
        /// The attribute to remove.
        #[arg(short = 'x')]
        remove: Option<String>,
        #[arg(required = true)]
        paths: Vec<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Encoding {
    Text,
    Hex,
    Base64,
}

pub async fn run(ctx: &mut Ctx, verb: Verb) -> u8 {
    match verb {
        Verb::Getfattr { name, encoding, recursive, paths, .. } => {
            ctx.verb = "getfattr";
            for p in paths.iter().map(|p| absolute(p)) {
                for path in targets(ctx, &p, recursive).await {
                    let r = getfattr(ctx, &path, name.as_deref(), encoding).await;
                    ctx.check(r);
                }
            }
        }
        Verb::Setfattr { name, value, remove, paths } => {
            ctx.verb = "setfattr";
            let change = match (name, remove) {
                (Some(n), _) => parse_value(value.as_deref().unwrap_or("")).map(|v| (n, Some(v))),
                (None, Some(n)) => Ok((n, None)),
                (None, None) => Err("give -n NAME or -x NAME".to_string()),
            };
            let (name, value) = match change {
                Ok(c) => c,
                Err(reason) => {
                    ctx.fail(Failure::new("-v", reason));
                    return 1;
                }
            };
            for p in paths.iter().map(|p| absolute(p)) {
                let r = ctx.client.set_xattr(&p, &name, value.clone()).await;
                ctx.check(r.map_err(|e| Failure::dfs(&p, e)));
            }
        }
    }
    0
}

/// The path, and with `recursive` everything under it.
async fn targets(ctx: &mut Ctx, path: &str, recursive: bool) -> Vec<String> {
    if !recursive {
        return vec![path.to_string()];
    }
    let Some(attr) = ctx.check(ctx.client.stat(path).await.map_err(|e| Failure::dfs(path, e))) else { return Vec::new() };
    let client = ctx.client.clone();
    let mut walk = Walk::new(&client, path, attr);
    let mut out = Vec::new();
    while let Some(next) = walk.next().await {
        if let Some((p, _)) = ctx.check(next) {
            out.push(p);
        }
    }
    out
}

async fn getfattr(ctx: &Ctx, path: &str, name: Option<&str>, encoding: Encoding) -> Result<(), Failure> {
    let names = match name {
        Some(n) => vec![n.to_string()],
        None => ctx.client.list_xattrs(path).await.map_err(|e| Failure::dfs(path, e))?,
    };
    let mut lines = vec![format!("# file: {path}")];
    for n in names {
        let value = ctx.client.get_xattr(path, &n).await.map_err(|e| Failure::dfs(path, e))?;
        lines.push(format!("{n}={}", format_value(&value, encoding)));
    }
    println!("{}\n", lines.join("\n"));
    Ok(())
}

/// A value as given on the command line.
pub fn parse_value(text: &str) -> Result<Vec<u8>, String> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return from_hex(hex).ok_or_else(|| format!("{text:?} is not hex after 0x"));
    }
    if let Some(b64) = text.strip_prefix("0s").or_else(|| text.strip_prefix("0S")) {
        return STANDARD.decode(b64).map_err(|e| format!("{text:?} is not base64 after 0s: {e}"));
    }
    let quoted = text.len() >= 2 && text.starts_with('"') && text.ends_with('"');
    Ok(if quoted { &text[1..text.len() - 1] } else { text }.as_bytes().to_vec())
}

/// A value for printing: quoted text (bytes that are not printable text
/// escaped in octal, as getfattr does), 0x hex or 0s base64.
pub fn format_value(v: &[u8], encoding: Encoding) -> String {
    match encoding {
        Encoding::Hex => format!("0x{}", v.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        Encoding::Base64 => format!("0s{}", STANDARD.encode(v)),
        Encoding::Text => {
            let body: String =
                v.iter().map(|&b| if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' { (b as char).to_string() } else { format!("\\{b:03o}") }).collect();
            format!("\"{body}\"")
        }
    }
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_and_print_in_every_encoding() {
        assert_eq!(parse_value("\"a b\"").unwrap(), b"a b");
        assert_eq!(parse_value("plain").unwrap(), b"plain");
        assert_eq!(parse_value("0x00ff10").unwrap(), [0, 255, 16]);
        assert_eq!(parse_value("0sAP8Q").unwrap(), [0, 255, 16]);
        assert!(parse_value("0xabc").is_err() && parse_value("0xzz").is_err() && parse_value("0s!!").is_err());
        assert_eq!(parse_value("").unwrap(), b"");
        let v = [b'h', b'i', 0, b'"'];
        assert_eq!(format_value(&v, Encoding::Text), r#""hi\000\042""#);
        assert_eq!(format_value(&v, Encoding::Hex), "0x68690022");
        assert_eq!(format_value(&v, Encoding::Base64), "0saGkAIg==");
        for e in [Encoding::Hex, Encoding::Base64] {
            assert_eq!(parse_value(&format_value(&v, e)).unwrap(), v);
        }
    }
}
