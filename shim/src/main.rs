//! The `shim` binary: `kubectl proxy` with the request policy in a proxy-wasm filter.
//!
//! Thin glue: parse flags, print kubectl-style warnings and errors with kubectl's exit codes,
//! set up logging, and hand the settings to the server.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::SystemTime;

use shim::cli::{self, CliError, Command, klog_line};
use shim::kubeconfig::{Env, KubeconfigError};

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(e) => return report(&e),
    };
    let flags = match command {
        Command::Help(text) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Command::Run(flags) => flags,
    };
    init_tracing(flags.verbosity);
    let mut warnings = Vec::new();
    let resolved = cli::resolve_with_target(&flags, &Env::from_process(), &mut warnings);
    for warning in &warnings {
        eprintln!(
            "{}",
            klog_line(
                'W',
                warning.location,
                &warning.text,
                SystemTime::now(),
                std::process::id()
            )
        );
    }
    let (settings, target) = match resolved {
        Ok(resolved) => resolved,
        Err(e) => return report(&e),
    };
    if let Some(envoy) = &flags.envoy {
        return envoy_bootstrap(envoy, &settings, &target, flags.filter.as_deref());
    }
    if flags.print_plugin_config {
        println!("{}", settings.plugin_config);
        return ExitCode::SUCCESS;
    }
    match run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Binds and serves; `Starting to serve on <addr>` is printed by the server after binding.
fn run(settings: cli::Settings) -> anyhow::Result<()> {
    let bound = shim::server::bind(&settings)?;
    shim::server::serve(settings, bound)?;
    Ok(())
}

/// `shim envoy-bootstrap`: prints or writes the Envoy bootstrap for the resolved settings.
fn envoy_bootstrap(
    envoy: &shim::envoy::EnvoyFlags,
    settings: &cli::Settings,
    target: &shim::kubeconfig::Target,
    filter: Option<&std::path::Path>,
) -> ExitCode {
    let mut warn = |text: String| {
        let line = klog_line(
            'W',
            "envoy.rs:0",
            &text,
            SystemTime::now(),
            std::process::id(),
        );
        eprintln!("{line}");
    };
    let result = shim::envoy::plan(envoy, settings, target, filter, &mut warn)
        .and_then(|plan| shim::envoy::write(&plan, envoy.output.as_deref()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Prints `e` the way kubectl does and returns its exit code.
fn report(e: &CliError) -> ExitCode {
    match e {
        CliError::Usage(msg) => {
            eprintln!("Error: {msg}\nSee 'shim --help' for usage.");
        }
        CliError::Regex(_) => {
            eprintln!(
                "{}",
                klog_line(
                    'F',
                    "proxy_server.go:83",
                    &e.to_string(),
                    SystemTime::now(),
                    std::process::id()
                )
            );
        }
        CliError::Kubeconfig(k) if k.is_configuration_list() => eprintln!("{k}"),
        CliError::Kubeconfig(k @ KubeconfigError::Missing(_)) => eprintln!("Error: {k}"),
        CliError::PrefixConflict(_) | CliError::Kubeconfig(_) | CliError::Fatal(_) => {
            eprintln!("error: {e}");
        }
    }
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
}

/// Logs to stderr: warnings by default; kubectl's `-v=3` (filter decisions) and up enable info,
/// 6 debug, 8 trace. `RUST_LOG` overrides.
fn init_tracing(verbosity: u32) {
    let level = match verbosity {
        0..=2 => "warn",
        3..=5 => "info",
        6..=7 => "debug",
        _ => "trace",
    };
    // `-v` raises the shim's and the filter's (`wasm`) logs only: wasmtime and cranelift at
    // trace level write gigabytes while compiling the filter.
    let directives = format!("warn,shim={level},wasm={level}");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directives));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
