//! Prompts that survive Ctrl-C and end of input. A reader thread turns
//! stdin into lines (then one end-of-input), a signal thread turns SIGINT
//! into an answer while a prompt waits; outside a prompt SIGINT ends the
//! command with exit code 130 after saying what goes on without it.

use super::out::EXIT_INTERRUPTED;
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// What the person at the prompt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A line, trimmed.
    Line(String),
    /// Standard input ended (closed, or not a terminal with nothing left).
    Eof,
    /// Ctrl-C.
    Interrupted,
}

/// Prompts on stderr, answered from stdin or by Ctrl-C.
pub struct Prompter {
    answers: Receiver<Answer>,
    prompting: Arc<AtomicBool>,
    /// Printed when Ctrl-C ends the command outside a prompt.
    on_interrupt: Arc<Mutex<String>>,
}

impl Prompter {
    /// Start reading stdin and catching SIGINT; returns once the handler is
    /// in place, so a Ctrl-C at the first prompt is an answer.
    pub fn new() -> anyhow::Result<Prompter> {
        let (tx, answers) = channel();
        let prompting = Arc::new(AtomicBool::new(false));
        let on_interrupt = Arc::new(Mutex::new(String::from("interrupted")));
        spawn_stdin_reader(tx.clone());
        spawn_sigint_handler(tx, prompting.clone(), on_interrupt.clone())?;
        Ok(Prompter {
            answers,
            prompting,
            on_interrupt,
        })
    }

    /// What to say if Ctrl-C ends the command outside a prompt.
    pub fn on_interrupt(&self, message: impl Into<String>) {
        *self.on_interrupt.lock().unwrap_or_else(|e| e.into_inner()) = message.into();
    }

    /// Print `question` on stderr and wait for the answer.
    pub fn ask(&self, question: &str) -> Answer {
        eprint!("{question}");
        self.prompting.store(true, Ordering::SeqCst);
        let answer = self.answers.recv().unwrap_or(Answer::Eof);
        self.prompting.store(false, Ordering::SeqCst);
        if !matches!(answer, Answer::Line(_)) {
            // Ctrl-C and end of input leave the cursor after the question.
            eprintln!();
        }
        answer
    }
}

fn spawn_stdin_reader(tx: Sender<Answer>) {
    std::thread::Builder::new()
        .name("ferry-stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            loop {
                let mut line = String::new();
                match lock.read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Answer::Eof);
                        return;
                    }
                    Ok(_) => {
                        if tx.send(Answer::Line(line.trim().to_owned())).is_err() {
                            return;
                        }
                    }
                }
            }
        })
        .expect("spawn the stdin reader");
}

fn spawn_sigint_handler(
    tx: Sender<Answer>,
    prompting: Arc<AtomicBool>,
    on_interrupt: Arc<Mutex<String>>,
) -> anyhow::Result<()> {
    let (ready_tx, ready_rx) = channel::<std::io::Result<()>>();
    std::thread::Builder::new()
        .name("ferry-sigint".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let mut sigint = match signal(SignalKind::interrupt()) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                while sigint.recv().await.is_some() {
                    if prompting.load(Ordering::SeqCst) {
                        let _ = tx.send(Answer::Interrupted);
                    } else {
                        let message = on_interrupt
                            .lock()
                            .map(|m| m.clone())
                            .unwrap_or_else(|e| e.into_inner().clone());
                        eprintln!("\n{message}");
                        std::process::exit(i32::from(EXIT_INTERRUPTED));
                    }
                }
            });
        })?;
    ready_rx
        .recv()
        .map_err(|_| anyhow::anyhow!("the Ctrl-C handler did not start"))??;
    Ok(())
}
