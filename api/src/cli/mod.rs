//! The command line: `serve`, `sample`, `demo`, `token`, `verify`, `export`,
//! `download`, `rehydrate`, `workflows`, `audit-verify`. Each subcommand
//! lives in its own file; `out.rs` holds where output goes and the exit
//! codes (0 ok, 1 refused or failed, 2 usage, 3 server unreachable).

mod client;
mod console_link;
mod demo;
mod download;
mod export;
mod out;
mod prompt;
mod rehydrate;
mod sample;
mod serve;
mod token;
mod verify;
mod workflows;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Durable tenant export and rehydration"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the workflow engine (FERRY_BIND, FERRY_DATA_DIR).
    Serve,
    /// Create a realistic sample tenant in the embedded tenant store.
    Sample {
        /// The tenant's id.
        #[arg(long)]
        tenant: String,
        /// Size: row counts grow linearly with it.
        #[arg(long, default_value_t = 1)]
        scale: u32,
        /// Seed of the generator (another seed, other rows).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Replace the tenant if it exists.
        #[arg(long)]
        overwrite: bool,
    },
    /// Sample a tenant, export it in every profile, download and verify
    /// every bundle, then rehydrate it (dry run, replace, verify, rollback).
    Demo {
        /// The sample tenant's id (replaced if it exists).
        #[arg(long, default_value = "demo")]
        tenant: String,
        /// Size of the sample (row counts grow linearly with it).
        #[arg(long, default_value_t = 1)]
        scale: u32,
    },
    /// Print a bearer token for local use.
    Token {
        /// The tenant the token is for.
        #[arg(long)]
        tenant: String,
        /// tenant_admin | platform_admin.
        #[arg(long, default_value = "tenant_admin")]
        role: String,
        /// Who the token names (the audit log's actor).
        #[arg(long, default_value = "admin")]
        sub: String,
        /// The holder's email (where export mails go).
        #[arg(long)]
        email: Option<String>,
        /// Hours until the token expires.
        #[arg(long, default_value_t = 24)]
        ttl_hours: u64,
    },
    /// Print a one-time sign-in link to the web console.
    ConsoleLink {
        /// The tenant the console acts on.
        #[arg(long)]
        tenant: String,
        /// tenant_admin, or platform_admin (every tenant).
        #[arg(long, default_value = "tenant_admin")]
        role: String,
        /// Who signs in (recorded in the audit log).
        #[arg(long, default_value = "admin")]
        sub: String,
        /// How long the link may wait to be opened.
        #[arg(long, default_value_t = 15)]
        ttl_minutes: u64,
    },
    /// Check a bundle's signature and every checksum, offline.
    Verify {
        /// The bundle file (.zip).
        bundle: PathBuf,
        /// The server's public key (default: <data>/keys/signing.pub).
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Submit an export through the API (wait for it with --wait; download
    /// it with --output).
    Export(export::ExportArgs),
    /// Download a finished export's bundle, checked against its checksum.
    Download(download::DownloadArgs),
    /// List, inspect, cancel and resume the tenant's workflows.
    #[command(subcommand)]
    Workflows(workflows::WorkflowsCommand),
    /// Rehydrate the tenant from a bundle or a stored export: preview, typed
    /// confirmation, progress.
    Rehydrate(rehydrate::RehydrateArgs),
    /// Recompute the audit log's hash chain, against its latest signed
    /// anchor (`<data>/audit-anchor.json`).
    AuditVerify,
}

fn init_tracing(default: &str) {
    crate::telemetry::init_logging(default);
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs its work; the other commands print their own story.
    init_tracing(match cli.command {
        Command::Serve => "info,sled=warn,actix_server=warn",
        _ => "warn",
    });
    let result = match cli.command {
        Command::Serve => serve::run(),
        Command::Sample {
            tenant,
            scale,
            seed,
            overwrite,
        } => sample::run(&tenant, scale, seed, overwrite),
        Command::Demo { tenant, scale } => demo::run(&tenant, scale),
        Command::Token {
            tenant,
            role,
            sub,
            email,
            ttl_hours,
        } => token::run(&tenant, &role, &sub, email, ttl_hours),
        Command::ConsoleLink {
            tenant,
            role,
            sub,
            ttl_minutes,
        } => console_link::run(&tenant, &role, &sub, ttl_minutes),
        Command::Verify { bundle, public_key } => verify::run(&bundle, public_key.as_deref()),
        Command::Export(args) => export::run(args),
        Command::Download(args) => download::run(args),
        Command::Workflows(cmd) => workflows::run(cmd),
        Command::Rehydrate(args) => rehydrate::run(args),
        Command::AuditVerify => verify::audit(),
    };
    match result {
        Ok(code) => code,
        Err(e) => ExitCode::from(out::report(&e)),
    }
}
