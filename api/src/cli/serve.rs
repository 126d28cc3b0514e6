//! `ferry serve`: the engine and the HTTP API in one process.

use crate::app;
use crate::config::Config;
use actix_web::web;
use anyhow::Context;
use std::process::ExitCode;

/// A runtime for workflow steps, separate from the HTTP workers, so a
/// CPU-heavy step never stalls request handling.
pub fn step_runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("ferry-steps")
        .enable_all()
        .build()
        .context("starting the step runtime")
}

pub fn run() -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let steps = step_runtime(config.step_threads)?;
    let bind = config.bind;
    let services = app::build(config, steps.handle().clone())?;
    actix_web::rt::System::new().block_on(async move {
        let report = app::start(&services).await?;
        tracing::info!(
            open = report.open,
            resumed = report.resumed,
            "engine started"
        );
        let state = web::Data::new(services.state);
        // Returns once a SIGTERM or SIGINT stopped the server gracefully.
        let served = crate::server::run(state.clone(), web::Data::new(services.jwt), bind)
            .await
            .context("HTTP server");
        app::leave_cluster(&state);
        served
    })?;
    Ok(ExitCode::SUCCESS)
}
