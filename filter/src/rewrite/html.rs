//! apimachinery `rewriteHTML` with golang.org/x/net/html's tokenizer (v0.57 behaviour).
//!
//! Only start and self-closing tags are rebuilt (`Token.String()`: lower-cased name, attributes
//! in order as `key="escaped value"`, duplicates after the first and empty keys dropped, `/>` for a
//! self-closing tag); every other token (text, raw text of script/style/title/textarea/xmp/iframe/
//! noembed/noframes/noscript/plaintext, end tags, comments, doctypes) is copied byte for byte. As in
//! Go, a tag cut off by the end of the body (`<a href="x`) is dropped.

use super::url;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Token {
    Error,
    Text,
    StartTag,
    EndTag,
    SelfClosingTag,
    Comment,
    Doctype,
}

type Span = (usize, usize);

/// Elements whose content the tokenizer reads as raw text.
const RAW_TAGS: [&str; 10] = [
    "iframe",
    "noembed",
    "noframes",
    "noscript",
    "plaintext",
    "script",
    "style",
    "textarea",
    "title",
    "xmp",
];

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t' | b'\x0c')
}

/// A port of `html.Tokenizer` over a complete buffer (the only error is EOF).
struct Tokenizer<'a> {
    buf: &'a [u8],
    raw: Span,
    data: Span,
    eof: bool,
    pending: [Span; 2],
    attrs: Vec<[Span; 2]>,
    raw_tag: Option<&'static str>,
}

impl<'a> Tokenizer<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Tokenizer {
            buf,
            raw: (0, 0),
            data: (0, 0),
            eof: false,
            pending: [(0, 0); 2],
            attrs: Vec::new(),
            raw_tag: None,
        }
    }

    fn read_byte(&mut self) -> u8 {
        match self.buf.get(self.raw.1) {
            Some(&c) => {
                self.raw.1 += 1;
                c
            }
            None => {
                self.eof = true;
                0
            }
        }
    }

    fn back(&mut self, n: usize) {
        self.raw.1 -= n;
    }

    fn skip_white_space(&mut self) {
        if self.eof {
            return;
        }
        loop {
            let c = self.read_byte();
            if self.eof {
                return;
            }
            if !is_space(c) {
                self.back(1);
                return;
            }
        }
    }

    fn read_raw_or_rcdata(&mut self) {
        if self.raw_tag == Some("script") {
            self.read_script();
            self.data.1 = self.raw.1;
            self.raw_tag = None;
            return;
        }
        loop {
            let c = self.read_byte();
            if self.eof {
                break;
            }
            if c != b'<' {
                continue;
            }
            let c = self.read_byte();
            if self.eof {
                break;
            }
            if c != b'/' {
                self.back(1);
                continue;
            }
            if self.read_raw_end_tag() || self.eof {
                break;
            }
        }
        self.data.1 = self.raw.1;
        self.raw_tag = None;
    }

    /// After `</`: whether the raw tag's end tag follows (the input is then backed up to `<`).
    fn read_raw_end_tag(&mut self) -> bool {
        let tag = self.raw_tag.unwrap_or_default().as_bytes();
        for &t in tag {
            let c = self.read_byte();
            if self.eof {
                return false;
            }
            if c != t && c != t.to_ascii_uppercase() {
                self.back(1);
                return false;
            }
        }
        let c = self.read_byte();
        if self.eof {
            return false;
        }
        if is_space(c) || c == b'/' || c == b'>' {
            self.back(3 + tag.len());
            return true;
        }
        self.back(1);
        false
    }

    /// The script data states of the HTML tokenizer, up to the `</script>` that ends the element.
    fn read_script(&mut self) {
        #[derive(Clone, Copy)]
        enum S {
            Data,
            LessThan,
            EndTagOpen,
            EscapeStart,
            EscapeStartDash,
            Escaped,
            EscapedDash,
            EscapedDashDash,
            EscapedLessThan,
            EscapedEndTagOpen,
            DoubleEscapeStart,
            DoubleEscaped,
            DoubleEscapedDash,
            DoubleEscapedDashDash,
            DoubleEscapedLessThan,
            DoubleEscapeEnd,
        }
        let mut state = S::Data;
        loop {
            state = match state {
                S::EndTagOpen | S::EscapedEndTagOpen => {
                    if self.read_raw_end_tag() || self.eof {
                        return;
                    }
                    match state {
                        S::EndTagOpen => S::Data,
                        _ => S::Escaped,
                    }
                }
                S::DoubleEscapeStart => {
                    self.back(1);
                    let mut next = S::DoubleEscaped;
                    for t in *b"script" {
                        let c = self.read_byte();
                        if self.eof {
                            return;
                        }
                        if c != t && c != t.to_ascii_uppercase() {
                            self.back(1);
                            next = S::Escaped;
                            break;
                        }
                    }
                    if let S::DoubleEscaped = next {
                        let c = self.read_byte();
                        if self.eof {
                            return;
                        }
                        if !(is_space(c) || c == b'/' || c == b'>') {
                            self.back(1);
                            next = S::Escaped;
                        }
                    }
                    next
                }
                S::DoubleEscapeEnd => {
                    if self.read_raw_end_tag() {
                        self.raw.1 += "</script>".len();
                        S::Escaped
                    } else if self.eof {
                        return;
                    } else {
                        S::DoubleEscaped
                    }
                }
                _ => {
                    let c = self.read_byte();
                    if self.eof {
                        return;
                    }
                    match (state, c) {
                        (S::Data, b'<') => S::LessThan,
                        (S::Data, _) => S::Data,
                        (S::LessThan, b'/') => S::EndTagOpen,
                        (S::LessThan, b'!') => S::EscapeStart,
                        (S::EscapeStart, b'-') => S::EscapeStartDash,
                        (S::EscapeStartDash, b'-') => S::EscapedDashDash,
                        (S::LessThan | S::EscapeStart | S::EscapeStartDash, _) => {
                            self.back(1);
                            S::Data
                        }
                        (S::Escaped, b'-') => S::EscapedDash,
                        (S::EscapedDash | S::EscapedDashDash, b'-') => S::EscapedDashDash,
                        (S::Escaped | S::EscapedDash | S::EscapedDashDash, b'<') => {
                            S::EscapedLessThan
                        }
                        (S::EscapedDashDash, b'>') => S::Data,
                        (S::Escaped | S::EscapedDash | S::EscapedDashDash, _) => S::Escaped,
                        (S::EscapedLessThan, b'/') => S::EscapedEndTagOpen,
                        (S::EscapedLessThan, c) if c.is_ascii_alphabetic() => S::DoubleEscapeStart,
                        (S::EscapedLessThan, _) => {
                            self.back(1);
                            S::Data
                        }
                        (S::DoubleEscaped, b'-') => S::DoubleEscapedDash,
                        (S::DoubleEscapedDash | S::DoubleEscapedDashDash, b'-') => {
                            S::DoubleEscapedDashDash
                        }
                        (
                            S::DoubleEscaped | S::DoubleEscapedDash | S::DoubleEscapedDashDash,
                            b'<',
                        ) => S::DoubleEscapedLessThan,
                        (S::DoubleEscapedDashDash, b'>') => S::Data,
                        (S::DoubleEscaped | S::DoubleEscapedDash | S::DoubleEscapedDashDash, _) => {
                            S::DoubleEscaped
                        }
                        (S::DoubleEscapedLessThan, b'/') => S::DoubleEscapeEnd,
                        (S::DoubleEscapedLessThan, _) => {
                            self.back(1);
                            S::DoubleEscaped
                        }
                        (
                            S::EndTagOpen
                            | S::EscapedEndTagOpen
                            | S::DoubleEscapeStart
                            | S::DoubleEscapeEnd,
                            _,
                        ) => state,
                    }
                }
            };
        }
    }

    /// After `<!--`.
    fn read_comment(&mut self) {
        let mut dashes = 0;
        let mut beginning = true;
        loop {
            let c = self.read_byte();
            if self.eof {
                return;
            }
            match c {
                b'-' => {
                    dashes += 1;
                    continue;
                }
                b'>' if dashes >= 2 || beginning => return,
                b'!' if dashes >= 2 => {
                    let c = self.read_byte();
                    if self.eof || c == b'>' {
                        return;
                    }
                    if c == b'-' {
                        dashes = 1;
                        beginning = false;
                        continue;
                    }
                }
                _ => {}
            }
            dashes = 0;
            beginning = false;
        }
    }

    fn read_until_close_angle(&mut self) {
        loop {
            let c = self.read_byte();
            if self.eof || c == b'>' {
                return;
            }
        }
    }

    /// After `<!`.
    fn read_markup_declaration(&mut self) -> Token {
        self.data.0 = self.raw.1;
        let mut c = [0u8; 2];
        for slot in &mut c {
            *slot = self.read_byte();
            if self.eof {
                return Token::Comment;
            }
        }
        if c == *b"--" {
            self.read_comment();
            return Token::Comment;
        }
        self.back(2);
        if self.read_doctype() {
            return Token::Doctype;
        }
        self.read_until_close_angle();
        Token::Comment
    }

    fn read_doctype(&mut self) -> bool {
        for t in *b"DOCTYPE" {
            let c = self.read_byte();
            if self.eof {
                self.raw.1 = self.data.0;
                self.eof = false;
                return false;
            }
            if c != t && c != t.to_ascii_lowercase() {
                self.raw.1 = self.data.0;
                return false;
            }
        }
        self.skip_white_space();
        if !self.eof {
            self.read_until_close_angle();
        }
        true
    }

    /// After `<` and a letter.
    fn read_start_tag(&mut self) -> Token {
        self.read_tag(true);
        if self.eof {
            return Token::Error;
        }
        let name = &self.buf[self.data.0..self.data.1];
        self.raw_tag = RAW_TAGS
            .iter()
            .find(|t| t.as_bytes().eq_ignore_ascii_case(name))
            .copied();
        let slash = self.raw.1 - 2;
        let last_value_end = self.attrs.last().map(|a| a[1].1);
        if self.buf[slash] == b'/' && last_value_end.is_none_or(|end| slash + 1 != end) {
            Token::SelfClosingTag
        } else {
            Token::StartTag
        }
    }

    fn read_tag(&mut self, save_attrs: bool) {
        self.attrs.clear();
        let mut seen: Vec<Vec<u8>> = Vec::new();
        self.read_tag_name();
        self.skip_white_space();
        if self.eof {
            return;
        }
        loop {
            let c = self.read_byte();
            if self.eof || c == b'>' {
                break;
            }
            self.back(1);
            self.read_tag_attr_key();
            self.read_tag_attr_val();
            let (start, end) = self.pending[0];
            let key = self.buf[start..end].to_ascii_lowercase();
            if save_attrs && start != end && !seen.contains(&key) {
                self.attrs.push(self.pending);
                seen.push(key);
            }
            self.skip_white_space();
            if self.eof {
                break;
            }
        }
    }

    fn read_tag_name(&mut self) {
        self.data.0 = self.raw.1 - 1;
        loop {
            let c = self.read_byte();
            if self.eof {
                self.data.1 = self.raw.1;
                return;
            }
            if is_space(c) {
                self.data.1 = self.raw.1 - 1;
                return;
            }
            if c == b'/' || c == b'>' {
                self.back(1);
                self.data.1 = self.raw.1;
                return;
            }
        }
    }

    fn read_tag_attr_key(&mut self) {
        self.pending[0].0 = self.raw.1;
        loop {
            let c = self.read_byte();
            if self.eof {
                self.pending[0].1 = self.raw.1;
                return;
            }
            if c == b'=' && self.pending[0].0 + 1 == self.raw.1 {
                continue;
            }
            if c == b'=' || is_space(c) || c == b'/' || c == b'>' {
                self.back(1);
                self.pending[0].1 = self.raw.1;
                return;
            }
        }
    }

    fn read_tag_attr_val(&mut self) {
        self.pending[1] = (self.raw.1, self.raw.1);
        self.skip_white_space();
        if self.eof {
            return;
        }
        let c = self.read_byte();
        if self.eof || c == b'/' {
            return;
        }
        if c != b'=' {
            self.back(1);
            return;
        }
        self.skip_white_space();
        if self.eof {
            return;
        }
        let quote = self.read_byte();
        if self.eof {
            return;
        }
        match quote {
            b'>' => self.back(1),
            b'\'' | b'"' => {
                self.pending[1].0 = self.raw.1;
                loop {
                    let c = self.read_byte();
                    if self.eof {
                        self.pending[1].1 = self.raw.1;
                        return;
                    }
                    if c == quote {
                        self.pending[1].1 = self.raw.1 - 1;
                        return;
                    }
                }
            }
            _ => {
                self.pending[1].0 = self.raw.1 - 1;
                loop {
                    let c = self.read_byte();
                    if self.eof {
                        self.pending[1].1 = self.raw.1;
                        return;
                    }
                    if is_space(c) {
                        self.pending[1].1 = self.raw.1 - 1;
                        return;
                    }
                    if c == b'>' {
                        self.back(1);
                        self.pending[1].1 = self.raw.1;
                        return;
                    }
                }
            }
        }
    }

    fn next(&mut self) -> Token {
        self.raw.0 = self.raw.1;
        self.data = (self.raw.1, self.raw.1);
        if self.eof {
            return Token::Error;
        }
        if let Some(tag) = self.raw_tag {
            if tag == "plaintext" {
                while !self.eof {
                    self.read_byte();
                }
                self.data.1 = self.raw.1;
            } else {
                self.read_raw_or_rcdata();
            }
            if self.data.1 > self.data.0 {
                return Token::Text;
            }
        }
        loop {
            let c = self.read_byte();
            if self.eof {
                break;
            }
            if c != b'<' {
                continue;
            }
            let c = self.read_byte();
            if self.eof {
                break;
            }
            let token = match c {
                b'a'..=b'z' | b'A'..=b'Z' => Token::StartTag,
                b'/' => Token::EndTag,
                b'!' | b'?' => Token::Comment,
                _ => {
                    self.back(1);
                    continue;
                }
            };
            let x = self.raw.1 - 2;
            if self.raw.0 < x {
                self.raw.1 = x;
                return Token::Text;
            }
            match token {
                Token::StartTag => return self.read_start_tag(),
                Token::EndTag => {
                    let c = self.read_byte();
                    if self.eof {
                        break;
                    }
                    if c == b'>' {
                        return Token::Comment;
                    }
                    if c.is_ascii_alphabetic() {
                        self.read_tag(false);
                        return if self.eof {
                            Token::Error
                        } else {
                            Token::EndTag
                        };
                    }
                    self.back(1);
                    self.read_until_close_angle();
                    return Token::Comment;
                }
                _ => {
                    if c == b'!' {
                        return self.read_markup_declaration();
                    }
                    self.back(1);
                    self.read_until_close_angle();
                    return Token::Comment;
                }
            }
        }
        if self.raw.0 < self.raw.1 {
            return Token::Text;
        }
        Token::Error
    }
}

/// Windows-1252 replacements for numeric references 0x80..=0x9F.
const WINDOWS_1252: [u16; 32] = [
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
    0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
];

/// The 106 references HTML also accepts without `;` (Go's complete list of them).
const LEGACY: &str = "Aacute=Á aacute=á Acirc=Â acirc=â acute=´ AElig=Æ aelig=æ Agrave=À \
agrave=à AMP=& amp=& Aring=Å aring=å Atilde=Ã atilde=ã Auml=Ä auml=ä brvbar=¦ Ccedil=Ç \
ccedil=ç cedil=¸ cent=¢ COPY=© copy=© curren=¤ deg=° divide=÷ Eacute=É eacute=é Ecirc=Ê \
ecirc=ê Egrave=È egrave=è ETH=Ð eth=ð Euml=Ë euml=ë frac12=½ frac14=¼ frac34=¾ GT=> gt=> \
Iacute=Í iacute=í Icirc=Î icirc=î iexcl=¡ Igrave=Ì igrave=ì iquest=¿ Iuml=Ï iuml=ï laquo=« \
LT=< lt=< macr=¯ micro=µ middot=· nbsp=\u{a0} not=¬ Ntilde=Ñ ntilde=ñ Oacute=Ó oacute=ó \
Ocirc=Ô ocirc=ô Ograve=Ò ograve=ò ordf=ª ordm=º Oslash=Ø oslash=ø Otilde=Õ otilde=õ Ouml=Ö \
ouml=ö para=¶ plusmn=± pound=£ QUOT=\" quot=\" raquo=» REG=® reg=® sect=§ shy=\u{ad} sup1=¹ \
sup2=² sup3=³ szlig=ß THORN=Þ thorn=þ times=× Uacute=Ú uacute=ú Ucirc=Û ucirc=û Ugrave=Ù \
ugrave=ù uml=¨ Uuml=Ü uuml=ü Yacute=Ý yacute=ý yen=¥ yuml=ÿ";

/// Common references that need their `;`.
const SEMICOLON_ONLY: &str = "apos=' hellip=… mdash=— ndash=– lsquo=‘ rsquo=’ sbquo=‚ ldquo=“ \
rdquo=” bdquo=„ bull=• trade=™ euro=€ larr=← rarr=→ uarr=↑ darr=↓ harr=↔ dagger=† Dagger=‡ \
permil=‰ lsaquo=‹ rsaquo=› thinsp=\u{2009} ensp=\u{2002} emsp=\u{2003} zwnj=\u{200c} \
zwj=\u{200d} lrm=\u{200e} rlm=\u{200f} minus=− hearts=♥ check=✓ cross=✗ star=☆ rArr=⇒ lArr=⇐ \
hArr=⇔ infin=∞ ne=≠ le=≤ ge=≥ asymp=≈ sum=∑ prod=∏ radic=√ prime=′ Prime=″ oline=‾ frasl=⁄ \
loz=◊ spades=♠ clubs=♣ diams=♦ circ=ˆ tilde=˜ fnof=ƒ alpha=α beta=β gamma=γ delta=δ pi=π \
sigma=σ mu=μ lambda=λ Omega=Ω";

fn lookup(table: &str, name: &[u8]) -> Option<char> {
    table.split(' ').find_map(|entry| {
        let (n, c) = entry.split_once('=')?;
        (n.as_bytes() == name).then(|| c.chars().next())?
    })
}

/// A character reference at the start of `s` (which starts with `&`), attribute-value rules.
enum Reference {
    /// Not a reference: a literal `&`.
    None,
    /// Decoded to this character, from this many bytes.
    Char(char, usize),
    /// `&name;` not in this module's tables: kept as written, this many bytes.
    Unknown(usize),
}

/// Go `unescapeEntity(s, true)` with the reduced tables.
fn reference(s: &[u8]) -> Reference {
    if s.len() <= 1 {
        return Reference::None;
    }
    if s[1] == b'#' {
        let hex = matches!(s.get(2), Some(b'x' | b'X'));
        let start = if hex { 3 } else { 2 };
        let mut i = start;
        let mut x: u32 = 0;
        while let Some(&c) = s.get(i) {
            let d = match (hex, c) {
                (_, b'0'..=b'9') => c - b'0',
                (true, b'a'..=b'f') => c - b'a' + 10,
                (true, b'A'..=b'F') => c - b'A' + 10,
                _ => break,
            };
            if x <= 0x10FFFF {
                x = x * if hex { 16 } else { 10 } + u32::from(d);
            }
            i += 1;
        }
        if i == start {
            return Reference::None;
        }
        if s.get(i) == Some(&b';') {
            i += 1;
        }
        let c = match x {
            0x80..=0x9F => char::from_u32(u32::from(WINDOWS_1252[(x - 0x80) as usize])),
            _ => char::from_u32(x).filter(|&c| c != '\0'),
        };
        return Reference::Char(c.unwrap_or(char::REPLACEMENT_CHARACTER), i);
    }
    let mut i = 1;
    while let Some(&c) = s.get(i) {
        i += 1;
        if c.is_ascii_alphanumeric() {
            continue;
        }
        if c != b';' {
            i -= 1;
        }
        break;
    }
    let name = &s[1..i];
    match name.strip_suffix(b";") {
        _ if name.is_empty() => Reference::None,
        Some(base) => match lookup(LEGACY, base).or_else(|| lookup(SEMICOLON_ONLY, base)) {
            Some(c) => Reference::Char(c, i),
            None => Reference::Unknown(i),
        },
        None if s.get(i) == Some(&b'=') => Reference::None,
        None => lookup(LEGACY, name).map_or(Reference::None, |c| Reference::Char(c, i)),
    }
}

/// An attribute value as the tokenizer returns it (NUL replaced, newlines normalised, references
/// decoded), plus the byte ranges of unknown references kept as written.
fn attr_value(raw: &[u8]) -> (Vec<u8>, Vec<Span>) {
    let mut s = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            0 => s.extend_from_slice("\u{fffd}".as_bytes()),
            b'\r' => {
                s.push(b'\n');
                if raw.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            c => s.push(c),
        }
        i += 1;
    }
    let mut out = Vec::with_capacity(s.len());
    let mut unknown = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'&' {
            out.push(s[i]);
            i += 1;
            continue;
        }
        match reference(&s[i..]) {
            Reference::None => {
                out.push(b'&');
                i += 1;
            }
            Reference::Char(c, n) => {
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                i += n;
            }
            Reference::Unknown(n) => {
                let start = out.len();
                out.extend_from_slice(&s[i..i + n]);
                unknown.push((start, out.len()));
                i += n;
            }
        }
    }
    (out, unknown)
}

/// Go html `escape`: `&'<>"` and carriage return.
fn escape(s: &[u8], out: &mut Vec<u8>) {
    for &c in s {
        match c {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'\'' => out.extend_from_slice(b"&#39;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'"' => out.extend_from_slice(b"&#34;"),
            b'\r' => out.extend_from_slice(b"&#13;"),
            _ => out.push(c),
        }
    }
}

/// apimachinery `atomsToAttrs`: which attributes of which elements hold URLs.
fn is_url_attr(tag: &[u8], key: &[u8]) -> bool {
    let attrs: &[&str] = match tag {
        b"a" | b"area" | b"base" | b"link" => &["href"],
        b"applet" => &["codebase"],
        b"audio" | b"embed" | b"script" | b"source" => &["src"],
        b"blockquote" | b"del" | b"ins" | b"q" => &["cite"],
        b"body" => &["background"],
        b"button" => &["formaction"],
        b"command" => &["icon"],
        b"form" => &["action"],
        b"frame" | b"iframe" => &["longdesc", "src"],
        b"head" => &["profile"],
        b"html" => &["manifest"],
        b"img" => &["longdesc", "src", "usemap"],
        b"input" => &["src", "usemap", "formaction"],
        b"object" => &["classid", "codebase", "data", "usemap"],
        b"video" => &["poster", "src"],
        _ => &[],
    };
    attrs.iter().any(|a| a.as_bytes() == key)
}

/// Lower-cases ASCII letters and replaces NUL bytes (Go `TagName`/`TagAttr` keys).
fn tag_text(raw: &[u8], out: &mut Vec<u8>) {
    for &c in raw {
        if c == 0 {
            out.extend_from_slice("\u{fffd}".as_bytes());
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
}

/// Writes a start or self-closing tag as Go's `Token.String()` does, URL attributes rewritten.
fn render_tag(
    z: &Tokenizer<'_>,
    self_closing: bool,
    rewrite: &dyn Fn(url::GoUrl) -> Vec<u8>,
    out: &mut Vec<u8>,
) {
    let mut name = Vec::new();
    tag_text(&z.buf[z.data.0..z.data.1], &mut name);
    out.push(b'<');
    out.extend_from_slice(&name);
    for [key, val] in &z.attrs {
        let start = out.len() + 1;
        out.push(b' ');
        tag_text(&z.buf[key.0..key.1], out);
        let key_range = start..out.len();
        out.extend_from_slice(b"=\"");
        let (mut value, unknown) = attr_value(&z.buf[val.0..val.1]);
        if unknown.is_empty()
            && is_url_attr(&name, &out[key_range])
            && let Some(u) = url::parse(&value)
        {
            value = rewrite(u);
        }
        let mut at = 0;
        for (s, e) in unknown {
            escape(&value[at..s], out);
            out.extend_from_slice(&value[s..e]);
            at = e;
        }
        escape(&value[at..], out);
        out.push(b'"');
    }
    out.extend_from_slice(if self_closing { b"/>" } else { b">" });
}

/// apimachinery `rewriteHTML` over a whole document.
pub(crate) fn rewrite_html(body: &[u8], rewrite: &dyn Fn(url::GoUrl) -> Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 8);
    let mut z = Tokenizer::new(body);
    loop {
        match z.next() {
            Token::Error => return out,
            t @ (Token::StartTag | Token::SelfClosingTag) => {
                render_tag(&z, t == Token::SelfClosingTag, rewrite, &mut out);
            }
            Token::Text | Token::EndTag | Token::Comment | Token::Doctype => {
                out.extend_from_slice(&z.buf[z.raw.0..z.raw.1]);
            }
        }
    }
}
