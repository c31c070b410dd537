//! The apiserver's error bodies: `metav1.Status` JSON exactly as its encoder writes it (field
//! order, Go `encoding/json` string escaping, trailing newline), and Go's `%q` quoting used in
//! the messages.
//!
//! Text only; the replies carrying these bodies are built in `direct.rs`.

/// Go `encoding/json` string escaping (with HTML escaping on, as `json.Marshal` does): `"` and
/// `\`, control characters (`\n`, `\r`, `\t`, `\b`, `\f`, else `\u00XX`), `<`, `>`, `&`, U+2028
/// and U+2029; the quotes included.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go `strconv.Quote` (`%q`) for text that is valid UTF-8: `"` and `\` escaped, `\a \b \f \n \r
/// \t \v`, other ASCII controls and DEL as `\xNN`, non-printable non-ASCII as `\uXXXX` or
/// `\UXXXXXXXX`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if !c.is_ascii() && !is_go_printable(c) => {
                let v = u32::from(c);
                if v < 0x10000 {
                    out.push_str(&format!("\\u{v:04x}"));
                } else {
                    out.push_str(&format!("\\U{v:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint` for non-ASCII: control, format, separator (other
/// than U+0020), private-use and unassigned-surrogate ranges are not printable.
fn is_go_printable(c: char) -> bool {
    let v = u32::from(c);
    !(c.is_control()
        || c.is_whitespace()
        || matches!(v, 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
            | 0x202a..=0x202e | 0x2060..=0x206f | 0xfeff | 0xfff9..=0xfffb
            | 0xe000..=0xf8ff | 0xf0000..=0x10ffff))
}

/// `metav1.Status` reasons the filter answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// 400.
    BadRequest,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 503.
    ServiceUnavailable,
}

impl Reason {
    /// The `reason` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "BadRequest",
            Self::NotFound => "NotFound",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// The HTTP status code.
    pub fn code(self) -> u32 {
        match self {
            Self::BadRequest => 400,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::ServiceUnavailable => 503,
        }
    }
}

/// `Status.details`, in the order the apiserver writes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    /// `details.name`.
    pub name: Option<String>,
    /// `details.kind`.
    pub kind: Option<String>,
}

/// A failure `metav1.Status` body, `\n`-terminated: `details` (when given) sits between `reason`
/// and `code`, with only its non-empty members (`{}` when none).
pub fn status_body(reason: Reason, message: &str, details: Option<&Details>) -> String {
    let mut out = format!(
        "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\"message\":{},\"reason\":\"{}\",",
        json_string(message),
        reason.as_str()
    );
    if let Some(d) = details {
        let mut members = Vec::new();
        if let Some(name) = &d.name {
            members.push(format!("\"name\":{}", json_string(name)));
        }
        if let Some(kind) = &d.kind {
            members.push(format!("\"kind\":{}", json_string(kind)));
        }
        out.push_str(&format!("\"details\":{{{}}},", members.join(",")));
    }
    out.push_str(&format!("\"code\":{}}}\n", reason.code()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escaping_is_gos() {
        assert_eq!(json_string("plain"), r#""plain""#);
        assert_eq!(json_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(
            json_string("<script>&</script>"),
            r#""\u003cscript\u003e\u0026\u003c/script\u003e""#
        );
        assert_eq!(
            json_string("\n\r\t\u{8}\u{c}\u{0}\u{1f}"),
            r#""\n\r\t\b\f\u0000\u001f""#
        );
        assert_eq!(json_string("\u{7f}é\u{2028}"), "\"\u{7f}é\\u2028\"");
        // serde_json reads every escape back to the original.
        for s in ["<a href=\"x\">&amp;</a>", "\u{0}\u{1}x\u{2029}", "é\\"] {
            let back: String = serde_json::from_str(&json_string(s)).expect("valid JSON");
            assert_eq!(back, s);
        }
    }

    #[test]
    fn go_quote_matches_strconv_quote() {
        assert_eq!(go_quote("web"), r#""web""#);
        assert_eq!(go_quote("HTTP:web:80"), r#""HTTP:web:80""#);
        assert_eq!(go_quote("a\"b\\"), r#""a\"b\\""#);
        assert_eq!(go_quote("\u{0}\u{7f}\n\u{7}"), r#""\x00\x7f\n\a""#);
        assert_eq!(go_quote("é日本"), "\"é日本\"");
        assert_eq!(go_quote("\u{200b}\u{a0}"), r#""\u200b\u00a0""#);
        assert_eq!(go_quote("\u{fffd}"), "\"\u{fffd}\"");
    }

    #[test]
    fn status_bodies_are_the_apiservers() {
        assert_eq!(
            status_body(
                Reason::ServiceUnavailable,
                "no endpoints available for service \"web\"",
                None
            ),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"no endpoints available for service \\\"web\\\"\",\"reason\":\"ServiceUnavailable\",\"code\":503}\n"
        );
        assert_eq!(
            status_body(
                Reason::MethodNotAllowed,
                "the server does not allow this method on the requested resource",
                Some(&Details::default())
            ),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"the server does not allow this method on the requested resource\",\"reason\":\"MethodNotAllowed\",\"details\":{},\"code\":405}\n"
        );
        let details = Details {
            name: Some("ext".into()),
            kind: Some("endpoints".into()),
        };
        assert_eq!(
            status_body(
                Reason::NotFound,
                "endpoints \"ext\" not found",
                Some(&details)
            ),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"endpoints \\\"ext\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"ext\",\"kind\":\"endpoints\"},\"code\":404}\n"
        );
        let v: serde_json::Value =
            serde_json::from_str(&status_body(Reason::BadRequest, "a<b>&\"", None)).expect("JSON");
        assert_eq!(v["message"], "a<b>&\"");
        assert_eq!(v["code"], 400);
    }
}
