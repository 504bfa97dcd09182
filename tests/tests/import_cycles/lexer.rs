//! Just enough of Rust's lexical grammar to find paths: identifiers, `::`,
//! braces, `;`, `,` and `*`, each with its line. Comments, strings (raw,
//! byte), chars and numbers are skipped, so a `{` in a format string or a
//! path in a doc comment is not taken for code.

/// One token that matters to paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    PathSep,
    LBrace,
    RBrace,
    Semi,
    Comma,
    Star,
    /// Any other punctuation (it ends a path).
    Other(char),
}

/// A token and the line (from 1) it starts on.
#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The tokens of `src`.
pub fn lex(src: &str) -> Vec<Token> {
    let s: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |k: usize| s.get(k).copied().unwrap_or('\0');
    while i < s.len() {
        let c = s[i];
        let start_line = line;
        let mut push = |tok: Tok| out.push(Token { tok, line: start_line });
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '/' if at(i + 1) == '/' => {
                while i < s.len() && s[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => i = skip_block_comment(&s, i, &mut line),
            '"' => i = skip_string(&s, i + 1, &mut line),
            '\'' => i = skip_char_or_lifetime(&s, i),
            'r' | 'b' if raw_string_hashes(&s, i).is_some() => i = skip_raw_string(&s, i, &mut line),
            'b' if at(i + 1) == '"' => i = skip_string(&s, i + 2, &mut line),
            'b' if at(i + 1) == '\'' => i = skip_char_or_lifetime(&s, i + 1),
            c if is_ident_start(c) => {
                // A raw identifier (`r#type`) is the identifier after `r#`.
                if c == 'r' && at(i + 1) == '#' && is_ident_start(at(i + 2)) {
                    i += 2;
                }
                let from = i;
                while i < s.len() && is_ident_char(s[i]) {
                    i += 1;
                }
                push(Tok::Ident(s[from..i].iter().collect()));
            }
            c if c.is_ascii_digit() => {
                while i < s.len() && is_ident_char(s[i]) {
                    i += 1;
                }
            }
            ':' if at(i + 1) == ':' => {
                push(Tok::PathSep);
                i += 2;
            }
            '{' | '}' | ';' | ',' | '*' => {
                push(match c {
                    '{' => Tok::LBrace,
                    '}' => Tok::RBrace,
                    ';' => Tok::Semi,
                    ',' => Tok::Comma,
                    _ => Tok::Star,
                });
                i += 1;
            }
            c => {
                push(Tok::Other(c));
                i += 1;
            }
        }
    }
    out
}

/// Past a (nested) block comment starting at `i`.
fn skip_block_comment(s: &[char], mut i: usize, line: &mut usize) -> usize {
    let mut depth = 0;
    while i < s.len() {
        if s[i] == '/' && s.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            if s[i] == '\n' {
                *line += 1;
            }
            i += 1;
        }
    }
    i
}

/// Past a string whose body starts at `i` (after the opening quote).
fn skip_string(s: &[char], mut i: usize, line: &mut usize) -> usize {
    while i < s.len() {
        match s[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            c => {
                if c == '\n' {
                    *line += 1;
                }
                i += 1;
            }
        }
    }
    i
}

/// The number of `#` of a raw string (`r"`, `r#"`, `br##"`...) at `i`.
fn raw_string_hashes(s: &[char], i: usize) -> Option<usize> {
    let mut k = i;
    if s.get(k) == Some(&'b') {
        k += 1;
    }
    if s.get(k) != Some(&'r') || (i > 0 && is_ident_char(s[i - 1])) {
        return None;
    }
    k += 1;
    let hashes = s[k..].iter().take_while(|c| **c == '#').count();
    (s.get(k + hashes) == Some(&'"')).then_some(hashes)
}

fn skip_raw_string(s: &[char], i: usize, line: &mut usize) -> usize {
    let hashes = raw_string_hashes(s, i).unwrap_or(0);
    let mut k = i + s[i..].iter().position(|c| *c == '"').unwrap_or(0) + 1;
    while k < s.len() {
        if s[k] == '"' && s[k + 1..].iter().take(hashes).filter(|c| **c == '#').count() == hashes {
            return k + 1 + hashes;
        }
        if s[k] == '\n' {
            *line += 1;
        }
        k += 1;
    }
    k
}

/// Past a char literal (`'x'`, `'\n'`, `'{'`) at `i`, or past the quote of
/// a lifetime or label (its name then lexes as an identifier, harmlessly).
fn skip_char_or_lifetime(s: &[char], i: usize) -> usize {
    match (s.get(i + 1), s.get(i + 2)) {
        (Some('\\'), _) => {
            let mut k = i + 3;
            while k < s.len() && s[k] != '\'' {
                k += 1;
            }
            k + 1
        }
        (Some(_), Some('\'')) => i + 3,
        _ => i + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idents(src: &str) -> Vec<String> {
        lex(src)
            .into_iter()
            .filter_map(|t| match t.tok {
                Tok::Ident(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn comments_strings_and_chars_hide_their_contents() {
        let src = r####"
            // crate::h1::h2
            /* crate::h3 /* nested */ crate::h4 */
            let x = "crate::h5 { \" }";
            let y = r#"crate::h6 " { "#;
            let z = b"crate::h7";
            let w = '{';
            let v = '\'';
            fn f<'a>(x: &'a str) {}
            real
        "####;
        let ids = idents(src);
        for hidden in ["h1", "h2", "h3", "h4", "h5", "h6", "h7"] {
            assert!(!ids.contains(&hidden.to_string()), "{hidden} leaked: {ids:?}");
        }
        assert!(ids.ends_with(&["real".to_string()]), "{ids:?}");
        let braces = lex(src).iter().filter(|t| matches!(t.tok, Tok::LBrace | Tok::RBrace)).count();
        assert_eq!(braces, 2, "only the fn body's braces");
    }

    #[test]
    fn lines_are_counted_through_everything_skipped() {
        let toks = lex("/*\n\n*/ \"a\nb\" r#\"\n\"# x");
        assert_eq!(toks.last().map(|t| t.line), Some(5));
    }
}
