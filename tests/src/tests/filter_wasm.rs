//! The filter `.wasm` as an artifact: its import list equals `tests/golden/filter-imports.txt`
//! (a new import is an ABI change the shim must implement first) and it fits the 512 KiB budget (direct mode brought an HTML tokenizer and DEFLATE).

use crate::backend::filter_wasm;

const BUDGET: u64 = 512 * 1024;

fn wasm_bytes() -> Vec<u8> {
    let p = filter_wasm();
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build it with `./just wasm` (or set FILTER_WASM)",
            p.display()
        )
    })
}

/// `module.name` of every import, sorted.
fn imports(wasm: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload.expect("a valid wasm module");
        if let wasmparser::Payload::ImportSection(reader) = payload {
            for import in reader.into_imports() {
                let import = import.expect("a valid import");
                out.push(format!("{}.{}", import.module, import.name));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn filter_imports_golden() {
    let golden_path = crate::workspace_root().join("tests/golden/filter-imports.txt");
    let golden = std::fs::read_to_string(&golden_path).expect("tests/golden/filter-imports.txt");
    let want: Vec<&str> = golden.lines().filter(|l| !l.trim().is_empty()).collect();
    let got = imports(&wasm_bytes());
    let mut diff = String::new();
    for w in &want {
        if !got.iter().any(|g| g == w) {
            diff.push_str(&format!("-{w}\n"));
        }
    }
    for g in &got {
        if !want.contains(&g.as_str()) {
            diff.push_str(&format!("+{g}\n"));
        }
    }
    assert!(
        diff.is_empty(),
        "kproxy_filter.wasm imports differ from {} (- missing, + new; a new import must be \
         implemented in shim/src/host first):\n{diff}",
        golden_path.display()
    );
}

#[test]
fn filter_wasm_size() {
    let size = wasm_bytes().len() as u64;
    println!("kproxy_filter.wasm: {size} bytes (budget {BUDGET})");
    assert!(
        size <= BUDGET,
        "kproxy_filter.wasm is {size} bytes, over the {BUDGET}-byte budget"
    );
}
