//! The instance's background thread: everything that talks to the authorization server without
//! a client waiting on it (JWKS prefetch and refresh, re-checking live sessions' tokens), so
//! that none of it runs on Mosquitto's only thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;

use oauth_core::{AccessToken, AuthError, Authenticator, Rejection, TokenDigest};

/// Work for the background thread.
enum Job {
    /// Fetch the JWKS now (start-up prefetch).
    RefreshKeys,
    /// Re-check these tokens; report the ones no longer valid.
    Revalidate(Vec<AccessToken>),
}

/// What the background thread reports to the main thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// This token is no longer valid (revoked, expired, key removed).
    Invalid(TokenDigest, Rejection),
    /// A revalidation round finished.
    RoundDone,
}

/// Handle to the background thread; dropping it stops and joins the thread.
#[derive(Debug)]
pub struct Worker {
    jobs: Option<Sender<Job>>,
    reports: Receiver<Report>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread and asks it to prefetch the JWKS.
    pub fn start(auth: Arc<Authenticator>) -> std::io::Result<Self> {
        let (jobs, job_queue) = mpsc::channel::<Job>();
        let (report, reports) = mpsc::channel::<Report>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("oauth-worker".into()).spawn(move || {
            while let Ok(job) = job_queue.recv() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                run(&auth, job, &report, &stopped);
            }
        })?;
        let _ = jobs.send(Job::RefreshKeys);
        Ok(Self { jobs: Some(jobs), reports, stop, thread: Some(thread) })
    }

    /// Queues a revalidation round.
    pub fn revalidate(&self, tokens: Vec<AccessToken>) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Revalidate(tokens));
        }
    }

    /// The next report, if one is waiting (never blocks).
    pub fn try_report(&self) -> Option<Report> {
        match self.reports.try_recv() {
            Ok(report) => Some(report),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        }
    }
}

fn run(auth: &Authenticator, job: Job, report: &Sender<Report>, stop: &AtomicBool) {
    match job {
        Job::RefreshKeys => {
            if let Err(problem) = auth.refresh_keys() {
                log::warn!("JWKS prefetch failed (retried when a token needs it): {problem}");
            }
        }
        Job::Revalidate(tokens) => {
            if let Err(problem) = auth.refresh_keys() {
                log::warn!("JWKS refresh before revalidation failed: {problem}");
            }
            for token in tokens {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                match auth.revalidate(&token) {
                    Ok(_) => {}
                    Err(AuthError::Rejected(reason)) => {
                        let _ = report.send(Report::Invalid(token.digest(), reason));
                    }
                    Err(AuthError::Unavailable(problem)) => {
                        log::warn!("revalidation skipped a session: {problem}");
                    }
                }
            }
            let _ = report.send(Report::RoundDone);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.jobs.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("background thread panicked");
        }
    }
}
