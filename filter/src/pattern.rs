//! kubectl's regex lists (`--accept-paths`, `--reject-paths`, `--accept-hosts`,
//! `--reject-methods`) on `regex-lite`: unanchored, case-sensitive `MatchString`, an empty list
//! matches nothing.
//!
//! Go's RE2 and `regex-lite` disagree on a few constructs; a pattern whose meaning would differ
//! is rejected with a message, never rewritten. This module knows nothing about requests.

use regex_lite::Regex;

/// Why a pattern cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternError {
    /// `regex-lite` cannot parse or compile the pattern.
    Parse(String),
    /// The pattern parses but would not behave as Go's RE2 does.
    Unsupported(&'static str),
}

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Parse(msg) => write!(f, "regex parse error: {msg}"),
            Self::Unsupported(msg) => write!(f, "unsupported regex: {msg}"),
        }
    }
}

impl std::error::Error for PatternError {}

/// One compiled pattern and its source text.
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    regex: Regex,
    shortcut: Shortcut,
}

/// A match without the regex engine for the simple shapes kubectl's defaults use (the regex
/// engine is the largest part of the filter's per-request cost). Decided once per pattern; the
/// regex stays the reference and the fallback for every other shape.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Shortcut {
    /// Use the regex.
    None,
    /// `""`, `^`, `.*`, `^.*`: an unanchored search always finds the empty match.
    Always,
    /// `^$`: only the empty text (`$` is the end of text: no multi-line flag).
    Empty,
    /// `^literal$`.
    Exact(String),
    /// Literals joined by `.*`, optionally anchored at the start, never at the end:
    /// `^/api/.*/pods/.*/exec`.
    Glob {
        /// Starts with `^`.
        anchored: bool,
        /// The literals between the `.*`s (some may be empty).
        parts: Vec<String>,
    },
}

impl Shortcut {
    fn of(source: &str) -> Self {
        match source {
            "" | "^" | ".*" | "^.*" => return Self::Always,
            "^$" => return Self::Empty,
            _ => {}
        }
        if let Some(lit) = source
            .strip_prefix('^')
            .and_then(|s| s.strip_suffix('$'))
            .and_then(literal)
        {
            return Self::Exact(lit);
        }
        let (anchored, rest) = match source.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, source),
        };
        if rest.ends_with('$') {
            return Self::None;
        }
        match rest.split(".*").map(literal).collect::<Option<Vec<_>>>() {
            Some(parts) => Self::Glob { anchored, parts },
            None => Self::None,
        }
    }

    /// The answer, or `None` to ask the regex.
    fn is_match(&self, text: &str) -> Option<bool> {
        match self {
            Self::None => None,
            Self::Always => Some(true),
            Self::Empty => Some(text.is_empty()),
            Self::Exact(lit) => Some(text == lit),
            Self::Glob { anchored, parts } => glob_match(*anchored, parts, text),
        }
    }
}

/// The text a regex denotes when it is a plain literal (escaped metacharacters allowed); `None`
/// for anything else (classes, `\d`, groups, repetition …).
fn literal(s: &str) -> Option<String> {
    let mut lit = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) if r"\.+*?()|[]{}^$-/".contains(e) => lit.push(e),
                _ => return None,
            },
            '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$' => {
                return None;
            }
            c => lit.push(c),
        }
    }
    Some(lit)
}

/// Literals in order with only non-newline text between them (`.*` without the `s` flag).
/// Taking the leftmost occurrence of each next literal is always best, so one pass decides.
/// Unanchored globs on text with a newline are left to the regex (a later line may match).
fn glob_match(anchored: bool, parts: &[String], text: &str) -> Option<bool> {
    if !anchored && text.contains('\n') {
        return None;
    }
    let mut pos = 0;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 && anchored {
            if !text.starts_with(part.as_str()) {
                return Some(false);
            }
            pos = part.len();
            continue;
        }
        let Some(offset) = text[pos..].find(part.as_str()) else {
            return Some(false);
        };
        if i > 0 && text[pos..pos + offset].contains('\n') {
            return Some(false);
        }
        pos += offset + part.len();
    }
    Some(true)
}

/// An ordered list of patterns; a text matches the list when it matches any pattern.
#[derive(Clone, Debug, Default)]
pub struct PatternList {
    patterns: Vec<Pattern>,
}

/// Splits a kubectl flag value into patterns like `MakeRegexpArray`: every `,` separates (no
/// escaping), and the empty string is the empty list.
pub fn split_flag(value: &str) -> Vec<String> {
    if value.is_empty() {
        Vec::new()
    } else {
        value.split(',').map(str::to_owned).collect()
    }
}

// === impl Pattern ===

impl Pattern {
    /// Compiles `source`, rejecting what `regex-lite` cannot honour as Go would.
    pub fn new(source: &str) -> Result<Self, PatternError> {
        check_go_compatible(source)?;
        let regex = Regex::new(source).map_err(|e| PatternError::Parse(e.to_string()))?;
        Ok(Self {
            source: source.to_owned(),
            regex,
            shortcut: Shortcut::of(source),
        })
    }

    /// The pattern as configured.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Unanchored match, like Go's `MatchString`.
    pub fn is_match(&self, text: &str) -> bool {
        self.shortcut
            .is_match(text)
            .unwrap_or_else(|| self.regex.is_match(text))
    }
}

// === impl PatternList ===

impl PatternList {
    /// Compiles every pattern; the error carries the index of the first bad one.
    pub fn new<S: AsRef<str>>(sources: &[S]) -> Result<Self, (usize, PatternError)> {
        let patterns = sources
            .iter()
            .enumerate()
            .map(|(i, s)| Pattern::new(s.as_ref()).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { patterns })
    }

    /// The first pattern matching `text`, if any (kubectl logs it at `-v=6`).
    pub fn find(&self, text: &str) -> Option<&Pattern> {
        self.patterns.iter().find(|p| p.is_match(text))
    }

    /// Whether any pattern matches; always false for the empty list.
    pub fn is_match(&self, text: &str) -> bool {
        self.find(text).is_some()
    }

    /// The pattern sources, in order.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(Pattern::as_str)
    }

    /// Whether the list has no patterns (matches nothing).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Rejects the constructs `regex-lite` accepts but Go's RE2 treats differently (or rejects):
/// the inline flags `x`, `R` and `u`, the word-boundary escapes `\<`, `\>` and `\b{…}`, and
/// case-insensitive matching of non-ASCII text (Go folds Unicode, `regex-lite` only ASCII).
/// Unicode classes (`\p{L}`, `\pL`) are rejected by `regex-lite` itself.
fn check_go_compatible(source: &str) -> Result<(), PatternError> {
    let bytes = source.as_bytes();
    let mut case_insensitive = false;
    let mut in_class = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (Some(b'<' | b'>'), _) => {
                        return Err(PatternError::Unsupported(
                            "the word-boundary escapes \\< and \\> are not supported by Go's RE2",
                        ));
                    }
                    (Some(b'b'), Some(b'{')) if !in_class => {
                        return Err(PatternError::Unsupported(
                            "\\b{...} word boundaries are not supported by Go's RE2",
                        ));
                    }
                    _ => {}
                }
                i += 2;
                continue;
            }
            b'[' if !in_class => {
                in_class = true;
                // A `]` right after `[` or `[^` is a literal.
                i += 1;
                if bytes.get(i) == Some(&b'^') {
                    i += 1;
                }
                if bytes.get(i) == Some(&b']') {
                    i += 1;
                }
                continue;
            }
            b']' if in_class => in_class = false,
            b'(' if !in_class && bytes.get(i + 1) == Some(&b'?') => {
                let flags: Vec<u8> = bytes[i + 2..]
                    .iter()
                    .copied()
                    .take_while(|b| b.is_ascii_alphabetic() || *b == b'-')
                    .collect();
                let mut negated = false;
                for flag in flags {
                    match flag {
                        b'-' => negated = true,
                        b'x' | b'R' | b'u' => {
                            return Err(PatternError::Unsupported(
                                "inline flags x, R and u are not supported by Go's RE2",
                            ));
                        }
                        b'i' if !negated => case_insensitive = true,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    if case_insensitive && !source.is_ascii() {
        return Err(PatternError::Unsupported(
            "case-insensitive matching of non-ASCII text is not supported (Go folds Unicode, regex-lite only ASCII)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The shapes the shortcut takes, and some it must leave to the regex.
    const SHAPES: &[&str] = &[
        "",
        "^",
        ".*",
        "^.*",
        "^$",
        "^localhost$",
        r"^127\.0\.0\.1$",
        r"^\[::1\]$",
        "^/api/.*/pods/.*/exec",
        "^/api/.*/pods/.*/attach",
        "exec",
        "a.*b",
        "^.*x",
        "x.*",
        ".*a.*",
        r"^a\.b.*c",
        "^ab$",
        "^a.b$",
        "^(a)$",
        r"^\d$",
        "a$",
        "^a.*$",
    ];

    #[test]
    fn shortcuts_cover_kubectl_defaults() {
        for (source, expected) in [
            ("^.*", Shortcut::Always),
            ("^$", Shortcut::Empty),
            (r"^127\.0\.0\.1$", Shortcut::Exact("127.0.0.1".into())),
            (r"^\[::1\]$", Shortcut::Exact("[::1]".into())),
            ("^a.b$", Shortcut::None),
            ("^a.*$", Shortcut::None),
            (r"^\d", Shortcut::None),
        ] {
            assert_eq!(Shortcut::of(source), expected, "{source}");
        }
        assert!(matches!(
            Shortcut::of("^/api/.*/pods/.*/exec"),
            Shortcut::Glob { anchored: true, .. }
        ));
    }

    proptest! {
        /// The shortcut answers exactly as the regex does, newlines included.
        #[test]
        fn shortcut_agrees_with_the_regex(
            shape in proptest::sample::select(SHAPES),
            text in "[ab/x.\n]{0,6}(/api/[a-z/]{0,6}/pods/[a-z\n]{0,4}/(exec|attach))?[ab\n]{0,3}|localhost|127\\.0\\.0\\.1|\\[::1\\]",
        ) {
            let regex = Regex::new(shape).expect("compiles");
            let p = Pattern::new(shape).expect("compiles");
            prop_assert_eq!(p.is_match(&text), regex.is_match(&text), "{:?} on {:?}", shape, text);
        }
    }

    #[track_caller]
    fn check_match(pattern: &str, text: &str, expected: bool) {
        let p = Pattern::new(pattern).expect("pattern compiles");
        assert_eq!(p.is_match(text), expected, "{pattern:?} on {text:?}");
    }

    #[test]
    fn go_match_semantics() {
        // kubectl defaults.
        check_match("^.*", "", true);
        check_match(
            "^/api/.*/pods/.*/exec",
            "/api/v1/namespaces/d/pods/foo/exec",
            true,
        );
        check_match(
            "^/api/.*/pods/.*/exec",
            "/api/v1/namespaces/d/pods/foo/execx",
            true,
        );
        check_match(
            "^/api/.*/pods/.*/exec",
            "/api/v1/namespaces/d/pods/execfoo",
            false,
        );
        check_match("^localhost$", "localhost", true);
        check_match("^localhost$", "LOCALHOST", false);
        check_match(r"^127\.0\.0\.1$", "127a0b0c1", false);
        check_match(r"^\[::1\]$", "[::1]", true);
        check_match("^$", "", true);
        check_match("^$", "GET", false);
        // Unanchored: `POST` rejects `XPOSTX`.
        check_match("POST", "XPOSTX", true);
        check_match("^(POST|PUT)$", "XPOSTX", false);
        // ASCII (?i) works.
        check_match("(?i)^LOCALHOST$", "localhost", true);
        check_match(r"\d", "٣", false);
    }

    #[track_caller]
    fn check_rejected(pattern: &str, expected: &str) {
        let err = Pattern::new(pattern).expect_err("pattern rejected");
        assert_eq!(err.to_string(), expected, "{pattern:?}");
    }

    #[test]
    fn patterns_go_would_read_differently_are_rejected() {
        check_rejected(
            "(bad",
            "regex parse error: found open group without closing ')'",
        );
        check_rejected(
            r"\p{L}",
            "regex parse error: Unicode character classes are not supported",
        );
        check_rejected(
            r"\pL",
            "regex parse error: Unicode character classes are not supported",
        );
        check_rejected(
            "(?x) a b",
            "unsupported regex: inline flags x, R and u are not supported by Go's RE2",
        );
        check_rejected(
            r"\<word",
            "unsupported regex: the word-boundary escapes \\< and \\> are not supported by Go's RE2",
        );
        check_rejected(
            "(?i)été",
            "unsupported regex: case-insensitive matching of non-ASCII text is not supported (Go folds Unicode, regex-lite only ASCII)",
        );
        // Go accepts these, regex-lite refuses them: an error, never a different meaning.
        for go_only in [r"a{", r"\Qa.b\E", "[a[b]]"] {
            assert!(Pattern::new(go_only).is_err(), "{go_only:?}");
        }
        // Not flags: inside a class, or escaped.
        assert!(Pattern::new(r"[(?x)]").is_ok());
        assert!(Pattern::new(r"\(?x").is_ok());
        assert!(Pattern::new("(?-i)été").is_ok());
        assert!(Pattern::new("(?s:a.b)").is_ok());
    }

    #[test]
    fn flag_values_split_like_make_regexp_array() {
        assert!(split_flag("").is_empty());
        assert_eq!(split_flag("POST,PUT,PATCH"), ["POST", "PUT", "PATCH"]);
        // No escaping: `a{1,2}` is cut in two.
        assert_eq!(split_flag("a{1,2}"), ["a{1", "2}"]);
        assert_eq!(split_flag(","), ["", ""]);
    }

    #[test]
    fn empty_list_matches_nothing() {
        let empty = PatternList::new::<&str>(&[]).expect("empty list");
        assert!(!empty.is_match(""));
        assert!(!empty.is_match("localhost"));
        let list = PatternList::new(&["^a$", "b"]).expect("list");
        assert_eq!(list.find("xbx").map(Pattern::as_str), Some("b"));
        let err = PatternList::new(&["ok", "(bad"]).expect_err("bad pattern");
        assert_eq!(err.0, 1);
    }
}
