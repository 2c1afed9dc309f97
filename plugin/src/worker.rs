//! The instance's background threads: everything that talks to the authorization server without
//! blocking Mosquitto's only thread. One maintenance thread prefetches and refreshes the JWKS and
//! re-checks live sessions' tokens; on brokers with delayed basic auth (Mosquitto 2.1) a small
//! pool validates the tokens of waiting logins.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use oauth_core::{AccessToken, AuthError, Authenticator, Rejection, TokenDigest, TokenInfo};

/// Threads validating delayed logins, when the broker supports them: enough to overlap slow
/// authorization-server answers (200 cold logins against a 200 ms server take 2.5 s), few
/// enough to stay polite to it.
pub const LOGIN_THREADS: usize = 16;

/// A login waiting for its token to be validated.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    /// Distinguishes this login from a later one of the same client id.
    pub generation: u64,
    /// Address of the broker's client object.
    pub address: usize,
    /// MQTT client id (what the broker's completion call needs).
    pub client_id: String,
    /// MQTT username.
    pub username: Option<String>,
    /// The token.
    pub token: AccessToken,
    /// Clean session false.
    pub durable: bool,
}

/// Work for the maintenance thread.
enum Job {
    /// Fetch the JWKS now (start-up prefetch).
    RefreshKeys,
    /// Re-check these tokens; report the ones no longer valid.
    Revalidate(Vec<AccessToken>),
}

/// What the background threads report to the main thread.
#[derive(Debug)]
pub enum Report {
    /// This token is no longer valid (revoked, expired, key removed).
    Invalid(TokenDigest, Rejection),
    /// A revalidation round finished.
    RoundDone,
    /// A delayed login's token was validated.
    LoginChecked(PendingLogin, Result<TokenInfo, AuthError>),
}

/// Handle to the background threads; dropping it stops and joins them.
#[derive(Debug)]
pub struct Worker {
    jobs: Option<Sender<Job>>,
    logins: Option<Sender<PendingLogin>>,
    reports: Receiver<Report>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Worker {
    /// Starts the maintenance thread (which prefetches the JWKS) and `login_threads` login
    /// validators.
    pub fn start(auth: Arc<Authenticator>, login_threads: usize) -> std::io::Result<Self> {
        let (jobs, job_queue) = mpsc::channel::<Job>();
        let (logins, login_queue) = mpsc::channel::<PendingLogin>();
        let (report, reports) = mpsc::channel::<Report>();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(1 + login_threads);

        let (maintenance_auth, maintenance_report, stopped) =
            (Arc::clone(&auth), report.clone(), Arc::clone(&stop));
        threads.push(std::thread::Builder::new().name("oauth-worker".into()).spawn(move || {
            while let Ok(job) = job_queue.recv() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                maintain(&maintenance_auth, job, &maintenance_report, &stopped);
            }
        })?);

        let login_queue = Arc::new(Mutex::new(login_queue));
        for index in 0..login_threads {
            let (auth, report, queue, stopped) =
                (Arc::clone(&auth), report.clone(), Arc::clone(&login_queue), Arc::clone(&stop));
            threads.push(std::thread::Builder::new().name(format!("oauth-login-{index}")).spawn(
                move || {
                    loop {
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok(pending) = next else { break };
                        if stopped.load(Ordering::Relaxed) {
                            break;
                        }
                        let outcome = auth.validate(&pending.token);
                        if report.send(Report::LoginChecked(pending, outcome)).is_err() {
                            break;
                        }
                    }
                },
            )?);
        }

        let _ = jobs.send(Job::RefreshKeys);
        Ok(Self { jobs: Some(jobs), logins: Some(logins), reports, stop, threads })
    }

    /// Queues a revalidation round.
    pub fn revalidate(&self, tokens: Vec<AccessToken>) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Revalidate(tokens));
        }
    }

    /// Queues a delayed login; false when no login thread runs.
    pub fn validate_login(&self, pending: PendingLogin) -> bool {
        self.threads.len() > 1 && self.logins.as_ref().is_some_and(|l| l.send(pending).is_ok())
    }

    /// The next report, if one is waiting (never blocks).
    pub fn try_report(&self) -> Option<Report> {
        self.reports.try_recv().ok()
    }
}

fn maintain(auth: &Authenticator, job: Job, report: &Sender<Report>, stop: &AtomicBool) {
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
        self.logins.take();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                log::error!("a background thread panicked");
            }
        }
    }
}
