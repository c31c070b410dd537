//! `--www`: Go's `http.FileServer(http.Dir(DIR))` for the path the filter routed as `static`
//! (kubectl-proxy.md §2.8): `index.html`, the `./` and `sub/` redirects, Go's directory listing,
//! `Content-Type` by extension or sniffed, `Last-Modified` and Go's precondition order, single
//! and multipart byte ranges, and Go's error texts. Every method is served; the query only rides along on redirects.
//!
//! [`serve`] is synchronous (run it on a blocking thread) and never leaves the root: the path is
//! percent-decoded and cleaned before it is joined. It must not apply any request policy.

use std::fs::{self, File};
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use http::Method;
use http::header::HeaderMap;

use crate::host::HeaderList;

use conditional::Verdict;
use ranges::{ByteRange, RangeError};

mod conditional;
mod ranges;

/// A complete static-file response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticReply {
    /// The status code.
    pub status: u16,
    /// Headers, lowercase names, in Go's (sorted) order.
    pub headers: HeaderList,
    /// The body (empty for `HEAD`).
    pub body: Vec<u8>,
}

impl StaticReply {
    fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.as_bytes().to_vec(), value.into()));
        self
    }

    fn finish(mut self) -> Self {
        self.headers.sort_by(|a, b| a.0.cmp(&b.0));
        self
    }
}

/// Go's `http.Error`: the message plus `\n`, `text/plain`, `nosniff`.
fn go_error(status: u16, text: &str) -> StaticReply {
    let mut r = StaticReply::new(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header("x-content-type-options", "nosniff");
    r.body = format!("{text}\n").into_bytes();
    r.finish()
}

/// `404 page not found`.
pub fn not_found() -> StaticReply {
    go_error(404, "404 page not found")
}

/// `500 Internal Server Error`.
pub fn internal_error() -> StaticReply {
    go_error(500, "500 Internal Server Error")
}

/// Go's `toHTTPError`.
fn io_error(e: &io::Error) -> StaticReply {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => not_found(),
        io::ErrorKind::PermissionDenied => go_error(403, "403 Forbidden"),
        _ => internal_error(),
    }
}

/// `localRedirect`: 301 with a relative `Location` (query kept), no body.
fn redirect(to: &str, query: Option<&str>) -> StaticReply {
    let location = match query {
        Some(q) if !q.is_empty() => format!("{to}?{q}"),
        _ => to.to_owned(),
    };
    StaticReply::new(301).header("location", location).finish()
}

/// Go's `path.Clean` for a rooted path.
pub fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// Serves `target` (the filter's `:path`: raw path below the prefix, maybe with a query) from `root`.
pub fn serve(root: &Path, target: &str, method: &Method, headers: &HeaderMap) -> StaticReply {
    let (raw_path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let decoded = percent_encoding::percent_decode_str(raw_path).collect::<Vec<u8>>();
    let Ok(mut upath) = String::from_utf8(decoded) else {
        return not_found();
    };
    if !upath.starts_with('/') {
        upath.insert(0, '/');
    }
    if upath.contains('\0') {
        return not_found();
    }
    if upath.ends_with("/index.html") {
        return redirect("./", query);
    }
    let name = clean(&upath);
    let full = join(root, &name);
    let mut file = match File::open(&full) {
        Ok(f) => f,
        Err(e) => return io_error(&e),
    };
    let mut meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return io_error(&e),
    };
    let base = name.rsplit('/').next().unwrap_or_default();
    if meta.is_dir() {
        if !upath.ends_with('/') {
            return redirect(&format!("{base}/"), query);
        }
    } else if upath.ends_with('/') {
        return redirect(&format!("../{base}"), query);
    }
    let mut served_name = base.to_owned();
    if meta.is_dir() {
        let index = full.join("index.html");
        if let Ok(f) = File::open(&index)
            && let Ok(m) = f.metadata()
        {
            file = f;
            meta = m;
            served_name = "index.html".to_owned();
        }
    }
    let modified = meta.modified().ok().filter(|t| *t > UNIX_EPOCH);
    if meta.is_dir() {
        if conditional::modified_since_fails(method, headers, modified) {
            return not_modified_reply(modified);
        }
        return listing(&full, modified, method);
    }
    serve_content(file, meta.len(), &served_name, modified, method, headers)
}

fn join(root: &Path, cleaned: &str) -> PathBuf {
    let rel = std::ffi::OsStr::from_bytes(cleaned.trim_start_matches('/').as_bytes());
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

fn not_modified_reply(modified: Option<SystemTime>) -> StaticReply {
    with_last_modified(StaticReply::new(304), modified).finish()
}

/// Go's `dirList`.
fn listing(dir: &Path, modified: Option<SystemTime>, method: &Method) -> StaticReply {
    let Ok(entries) = fs::read_dir(dir) else {
        return go_error(500, "Error reading directory");
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| {
            let mut name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                name.push('/');
            }
            name
        })
        .collect();
    names.sort();
    let mut body = String::from(
        "<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>\n",
    );
    for name in &names {
        body.push_str(&format!(
            "<a href=\"{}\">{}</a>\n",
            html_escape(&href(name)),
            html_escape(name)
        ));
    }
    body.push_str("</pre>\n");
    let mut r = StaticReply::new(200)
        .header("content-length", body.len().to_string())
        .header("content-type", "text/html; charset=utf-8");
    if let Some(t) = modified {
        r = r.header("last-modified", httpdate::fmt_http_date(t));
    }
    if method != Method::HEAD {
        r.body = body.into_bytes();
    }
    r.finish()
}

/// `url.URL{Path: name}.String()`: path escaping, `./` before a colon in the first segment.
fn href(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    match out.find(':') {
        Some(i) if !out[..i].contains('/') => format!("./{out}"),
        _ => out,
    }
}

/// Go's `htmlReplacer`.
fn html_escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Go's `serveContent` for a regular file.
fn serve_content(
    mut file: File,
    size: u64,
    name: &str,
    modified: Option<SystemTime>,
    method: &Method,
    headers: &HeaderMap,
) -> StaticReply {
    let use_range = match conditional::check(method, headers, modified) {
        Verdict::Failed => return with_last_modified(StaticReply::new(412), modified).finish(),
        Verdict::NotModified => return not_modified_reply(modified),
        Verdict::Serve(use_range) => use_range,
    };
    let content_type = match by_extension(name) {
        Some(t) => t.to_owned(),
        None => {
            let mut head = vec![0u8; 512.min(usize::try_from(size).unwrap_or(512))];
            if file.read_exact(&mut head).is_err() || file.seek(SeekFrom::Start(0)).is_err() {
                return internal_error();
            }
            sniff(&head).to_owned()
        }
    };
    let range = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .filter(|_| use_range)
        .unwrap_or_default();
    let mut ranges = match ranges::parse(range, size) {
        Ok(r) => r,
        Err(e) => return range_not_satisfiable(e, size),
    };
    if ranges.iter().map(|(_, len)| len).sum::<u64>() > size {
        ranges.clear();
    }
    let mut read = |(start, len): ByteRange| -> io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.seek(SeekFrom::Start(start))?;
        (&mut file).take(len).read_to_end(&mut buf)?;
        Ok(buf)
    };
    let head = method == Method::HEAD;
    let mut r = match ranges.as_slice() {
        [] => StaticReply::new(200).header("content-type", content_type),
        [one] => StaticReply::new(206)
            .header("content-range", ranges::content_range(*one, size))
            .header("content-type", content_type),
        many => {
            let mut parts = Vec::with_capacity(many.len());
            for range in many {
                // HEAD only needs the lengths: frame empty payloads of the right size
                let bytes = if head {
                    vec![0; usize::try_from(range.1).unwrap_or(0)]
                } else {
                    match read(*range) {
                        Ok(b) => b,
                        Err(_) => return internal_error(),
                    }
                };
                parts.push((*range, bytes));
            }
            let boundary = ranges::boundary();
            let mut r = StaticReply::new(206).header(
                "content-type",
                format!("multipart/byteranges; boundary={boundary}"),
            );
            r.body = ranges::multipart(&boundary, &content_type, size, &parts);
            r
        }
    };
    let len = match ranges.as_slice() {
        [] => size,
        [(_, len)] => *len,
        _ => r.body.len() as u64,
    };
    r = with_last_modified(
        r.header("accept-ranges", "bytes")
            .header("content-length", len.to_string()),
        modified,
    );
    if head {
        r.body.clear();
    } else if ranges.len() < 2 {
        let whole = ranges.first().copied().unwrap_or((0, size));
        match read(whole) {
            Ok(b) => r.body = b,
            Err(_) => return internal_error(),
        }
    }
    r.finish()
}

fn with_last_modified(r: StaticReply, modified: Option<SystemTime>) -> StaticReply {
    match modified {
        Some(t) => r.header("last-modified", httpdate::fmt_http_date(t)),
        None => r,
    }
}

/// `416` with Go's error text, and `Content-Range: bytes */SIZE` when nothing overlapped.
fn range_not_satisfiable(e: RangeError, size: u64) -> StaticReply {
    let (text, overlap) = match e {
        RangeError::Invalid => ("invalid range", false),
        RangeError::NoOverlap => ("invalid range: failed to overlap", true),
    };
    let mut r = go_error(416, text);
    if overlap {
        r = r
            .header("content-range", format!("bytes */{size}"))
            .finish();
    }
    r
}

/// Go's built-in `mime` table plus the common `/etc/mime.types` entries.
fn by_extension(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "avif" => "image/avif",
        "css" => "text/css; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "gif" => "image/gif",
        "htm" | "html" => "text/html; charset=utf-8",
        "ico" => "image/vnd.microsoft.icon",
        "jpeg" | "jpg" => "image/jpeg",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "md" => "text/markdown; charset=utf-8",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        "webp" => "image/webp",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "xml" => "text/xml; charset=utf-8",
        "yaml" | "yml" => "application/yaml",
        _ => return None,
    })
}

/// A small part of Go's `DetectContentType`: HTML, XML, PDF, PNG, GIF, JPEG, text or binary.
fn sniff(data: &[u8]) -> &'static str {
    let trimmed = data
        .iter()
        .position(|b| !b" \t\n\x0c\r".contains(b))
        .map_or(&[][..], |i| &data[i..]);
    let lower: Vec<u8> = trimmed
        .iter()
        .take(14)
        .map(u8::to_ascii_lowercase)
        .collect();
    for tag in [
        &b"<!doctype html"[..],
        b"<html",
        b"<head",
        b"<body",
        b"<script",
        b"<!--",
        b"<p",
        b"<div",
    ] {
        if lower.starts_with(tag)
            && trimmed
                .get(tag.len())
                .is_some_and(|b| *b == b' ' || *b == b'>')
        {
            return "text/html; charset=utf-8";
        }
    }
    if trimmed.starts_with(b"<?xml") {
        return "text/xml; charset=utf-8";
    }
    if data.starts_with(b"%PDF-") {
        return "application/pdf";
    }
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        return "image/png";
    }
    if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
        return "image/gif";
    }
    if data.starts_with(b"\xff\xd8\xff") {
        return "image/jpeg";
    }
    let binary = data.iter().any(|&b| {
        b <= 0x08 || b == 0x0b || (0x0e..=0x1a).contains(&b) || (0x1c..=0x1f).contains(&b)
    });
    if binary {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    }
}

#[cfg(test)]
mod tests;
