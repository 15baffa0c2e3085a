//! The module paths a file's code writes: `use` trees and paths in code.

/// A path as written (its first segment `crate`, `super`, `self` or a
/// name), with the line it is on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Written {
    pub(crate) segments: Vec<String>,
    pub(crate) line: usize,
    /// The name a `use` binds it to (`None` for a path in code or a glob).
    pub(crate) bound_as: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    PathSep,
    Punct(char),
}

/// The code of a file without comments, string and char literals, and
/// its unit-test module, as tokens with their lines.
fn tokens(text: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut at, mut line) = (0, 1);
    while at < chars.len() {
        let c = chars[at];
        let next = chars.get(at + 1).copied();
        match c {
            '\n' => {
                line += 1;
                at += 1;
            }
            '/' if next == Some('/') => {
                while at < chars.len() && chars[at] != '\n' {
                    at += 1;
                }
            }
            '/' if next == Some('*') => {
                let mut depth = 0;
                while at < chars.len() {
                    if chars[at] == '/' && chars.get(at + 1) == Some(&'*') {
                        depth += 1;
                        at += 2;
                    } else if chars[at] == '*' && chars.get(at + 1) == Some(&'/') {
                        depth -= 1;
                        at += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        line += usize::from(chars[at] == '\n');
                        at += 1;
                    }
                }
            }
            '"' => at = skip_string(&chars, at + 1, 0, &mut line),
            'r' if matches!(next, Some('"') | Some('#')) && raw_string_start(&chars, at) => {
                let mut hashes = 0;
                at += 1;
                while chars.get(at) == Some(&'#') {
                    hashes += 1;
                    at += 1;
                }
                at = skip_string(&chars, at + 1, hashes, &mut line);
            }
            'b' if next == Some('"') => at = skip_string(&chars, at + 2, 0, &mut line),
            '\'' => {
                // A char literal ('x', '\n', '\u{..}'), or a lifetime.
                if next == Some('\\') {
                    // Past the quote, the backslash and the escaped char.
                    at += 3;
                    while at < chars.len() && chars[at] != '\'' {
                        at += 1;
                    }
                    at += 1;
                } else if chars.get(at + 2) == Some(&'\'') {
                    at += 3;
                } else {
                    at += 1;
                }
            }
            ':' if next == Some(':') => {
                out.push((Token::PathSep, line));
                at += 2;
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = at;
                while at < chars.len() && (chars[at].is_alphanumeric() || chars[at] == '_') {
                    at += 1;
                }
                out.push((Token::Word(chars[start..at].iter().collect()), line));
            }
            c if c.is_whitespace() => at += 1,
            c => {
                out.push((Token::Punct(c), line));
                at += 1;
            }
        }
    }
    without_test_module(out)
}

fn raw_string_start(chars: &[char], at: usize) -> bool {
    let before_is_word = at > 0 && (chars[at - 1].is_alphanumeric() || chars[at - 1] == '_');
    let mut after = at + 1;
    while chars.get(after) == Some(&'#') {
        after += 1;
    }
    !before_is_word && chars.get(after) == Some(&'"')
}

/// Past the end of a string whose content starts at `at`.
fn skip_string(chars: &[char], mut at: usize, hashes: usize, line: &mut usize) -> usize {
    while at < chars.len() {
        match chars[at] {
            '\\' if hashes == 0 => at += 2,
            '"' if (1..=hashes).all(|n| chars.get(at + n) == Some(&'#')) => return at + 1 + hashes,
            '\n' => {
                *line += 1;
                at += 1;
            }
            _ => at += 1,
        }
    }
    at
}

/// Drop `#[cfg(test)] mod NAME { ... }`: a test may reach anywhere.
fn without_test_module(tokens: Vec<(Token, usize)>) -> Vec<(Token, usize)> {
    let word =
        |at: usize, text: &str| matches!(tokens.get(at), Some((Token::Word(w), _)) if w == text);
    let punct = |at: usize, c: char| tokens.get(at).map(|(t, _)| t) == Some(&Token::Punct(c));
    let mut out = Vec::with_capacity(tokens.len());
    let mut at = 0;
    while at < tokens.len() {
        let is_test_module = punct(at, '#')
            && punct(at + 1, '[')
            && word(at + 2, "cfg")
            && punct(at + 3, '(')
            && word(at + 4, "test")
            && punct(at + 5, ')')
            && punct(at + 6, ']')
            && word(at + 7, "mod")
            && punct(at + 9, '{');
        if is_test_module {
            let mut depth = 0;
            at += 9;
            while at < tokens.len() {
                if punct(at, '{') {
                    depth += 1;
                } else if punct(at, '}') {
                    depth -= 1;
                    if depth == 0 {
                        at += 1;
                        break;
                    }
                }
                at += 1;
            }
            continue;
        }
        out.push(tokens[at].clone());
        at += 1;
    }
    out
}

/// Every path the code writes: each leaf of each `use` tree, and each
/// path in code that starts with `crate`, `super` or `self`, or with a
/// word in `children` (the module's own child modules).
pub(crate) fn written_paths(text: &str, children: &[String]) -> Vec<Written> {
    let tokens = tokens(text);
    let mut out = Vec::new();
    let mut at = 0;
    while at < tokens.len() {
        let (token, line) = &tokens[at];
        let after_dollar = at > 0 && tokens[at - 1].0 == Token::Punct('$');
        match token {
            Token::Word(word)
                if word == "use"
                    && tokens.get(at + 1).map(|t| &t.0) != Some(&Token::Punct('<')) =>
            {
                at = use_tree(&tokens, at + 1, &[], &mut out);
                continue;
            }
            Token::Word(word)
                if !after_dollar
                    && (word == "crate"
                        || word == "super"
                        || word == "self"
                        || children.contains(word))
                    && tokens.get(at + 1).map(|t| &t.0) == Some(&Token::PathSep)
                    && (at == 0 || tokens[at - 1].0 != Token::PathSep) =>
            {
                let mut segments = vec![word.clone()];
                let mut next = at + 1;
                while tokens.get(next).map(|t| &t.0) == Some(&Token::PathSep) {
                    match tokens.get(next + 1) {
                        Some((Token::Word(segment), _)) => {
                            segments.push(segment.clone());
                            next += 2;
                        }
                        _ => break,
                    }
                }
                out.push(Written {
                    segments,
                    line: *line,
                    bound_as: None,
                });
                at = next;
                continue;
            }
            _ => {}
        }
        at += 1;
    }
    out
}

/// Read a use tree starting at `at` under `prefix`; where it ends.
fn use_tree(
    tokens: &[(Token, usize)],
    mut at: usize,
    prefix: &[String],
    out: &mut Vec<Written>,
) -> usize {
    let mut segments = prefix.to_vec();
    let line = tokens.get(at).map_or(0, |t| t.1);
    loop {
        match tokens.get(at).map(|t| &t.0) {
            Some(Token::Word(word)) => {
                segments.push(word.clone());
                at += 1;
                if tokens.get(at).map(|t| &t.0) == Some(&Token::PathSep) {
                    at += 1;
                    continue;
                }
                let mut bound = word.clone();
                if matches!(tokens.get(at).map(|t| &t.0), Some(Token::Word(w)) if w == "as") {
                    if let Some((Token::Word(alias), _)) = tokens.get(at + 1) {
                        bound = alias.clone();
                    }
                    at += 2;
                }
                if bound == "self" {
                    segments.pop();
                    bound = segments.last().cloned().unwrap_or_default();
                }
                out.push(Written {
                    segments,
                    line,
                    bound_as: Some(bound),
                });
                return at;
            }
            Some(Token::Punct('*')) => {
                out.push(Written {
                    segments,
                    line,
                    bound_as: None,
                });
                return at + 1;
            }
            Some(Token::Punct('{')) => {
                at += 1;
                loop {
                    match tokens.get(at).map(|t| &t.0) {
                        Some(Token::Punct('}')) => return at + 1,
                        Some(Token::Punct(',')) => at += 1,
                        None => return at,
                        Some(_) => {
                            let before = at;
                            at = use_tree(tokens, at, &segments, out);
                            if at == before {
                                at += 1;
                            }
                        }
                    }
                }
            }
            _ => return at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(text: &str) -> Vec<String> {
        written_paths(text, &["child".to_owned()])
            .into_iter()
            .map(|written| written.segments.join("::"))
            .collect()
    }

    #[test]
    fn use_trees_are_expanded_to_their_leaves() {
        let text = "pub(crate) use super::{a::{B, c as d}, self, e::*};\nuse std::x;";
        assert_eq!(
            paths(text),
            ["super::a::B", "super::a::c", "super", "super::e", "std::x"]
        );
    }

    #[test]
    fn paths_in_code_count_but_not_in_comments_strings_or_tests() {
        let text = r##"
            // crate::commented::Out
            fn f() { let s = "crate::in_string"; let r = r#"super::raw"#; crate::a::b(); child::c(); '\''; }
            fn g<'a>(x: &'a str) { super::d::E::new(); $crate::macro_path(); }
            #[cfg(test)]
            mod tests { use crate::only_tests; }
        "##;
        assert_eq!(paths(text), ["crate::a::b", "child::c", "super::d::E::new"]);
    }
}
