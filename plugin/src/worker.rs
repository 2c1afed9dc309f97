//! The instance's background threads: everything that talks to the authorization server without
//! blocking Mosquitto's only thread. A maintenance thread prefetches and refreshes the JWKS and
//! re-checks live sessions' tokens; a pool validates the tokens of delayed logins (Mosquitto
//! 2.1) and of logins postponed because the broker thread had waited long enough.
//!
//! Threads exist only while there is work: a maintenance thread per job, login threads started
//! as logins queue up and ended after [`IDLE_EXIT`] without one. While a process has a second
//! live thread, the kernel reference-counts shared file descriptors on every system call of
//! the broker's message loop (`oauth-bench thread-cost`: about 100 ns per `write` + `read`).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use oauth_core::policy;
use oauth_core::{
    AccessToken, AuthError, Authenticator, CertificateThumbprint, Rejection, TokenDigest,
    TokenInfo, UpstreamError,
};

/// Threads validating logins' tokens in the background: enough to overlap slow
/// authorization-server answers (200 cold logins against a 200 ms server take 2.5 s), few
/// enough to stay polite to it.
pub const LOGIN_THREADS: usize = 16;

/// How long a login thread waits for another login before it ends.
pub const IDLE_EXIT: Duration = Duration::from_secs(2);

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
    /// See [`Login::outlives_connection`](crate::instance::Login::outlives_connection).
    pub outlives_connection: bool,
    /// See [`Login::certificate`](crate::instance::Login::certificate): taken on the broker
    /// thread at login, where the client object is live.
    pub certificate: Option<CertificateThumbprint>,
    /// True when the broker waits for the answer (a delayed login); false when the login was
    /// refused for now and only the cached verdict matters, for the client's reconnect.
    pub answer_awaited: bool,
}

/// Work for the maintenance thread.
enum Job {
    /// Fetch the JWKS now (start-up prefetch).
    RefreshKeys,
    /// Re-check these tokens; report the ones no longer valid.
    Revalidate(Vec<policy::RoundToken>),
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

/// Logins waiting for a login thread, and how many threads serve them.
#[derive(Debug, Default)]
struct LoginQueue {
    pending: VecDeque<PendingLogin>,
    /// Login threads alive.
    live: usize,
    /// Login threads waiting for a login.
    idle: usize,
}

/// The background threads' end of the report channel. It also raises a flag, so that the
/// broker thread can tell with one atomic load whether a report waits.
#[derive(Debug, Clone)]
struct Reporter {
    channel: Sender<Report>,
    waiting: ReportFlag,
}

impl Reporter {
    /// False once the handle is gone.
    fn send(&self, report: Report) -> bool {
        let sent = self.channel.send(report).is_ok();
        self.waiting.0.store(true, Ordering::Release);
        sent
    }
}

/// Raised when a background thread has sent a report. The broker thread keeps a copy next to
/// the state its TICK reads (TICK comes with nearly every message under load on 2.0).
#[derive(Debug, Clone, Default)]
pub struct ReportFlag(Arc<AtomicBool>);

impl ReportFlag {
    /// True when a report may be waiting (one atomic load).
    #[inline]
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What every background thread shares with the handle.
#[derive(Debug)]
struct Shared {
    auth: Arc<Authenticator>,
    logins: Mutex<LoginQueue>,
    login_ready: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn logins(&self) -> MutexGuard<'_, LoginQueue> {
        self.logins.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Handle to the background threads; dropping it stops and joins them.
#[derive(Debug)]
pub struct Worker {
    shared: Arc<Shared>,
    report: Reporter,
    reports: Receiver<Report>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    started: AtomicUsize,
}

impl Worker {
    /// Prepares the threads (none runs yet) and, when keys are downloaded, starts the JWKS
    /// prefetch.
    pub fn start(auth: Arc<Authenticator>) -> std::io::Result<Self> {
        let (channel, reports) = mpsc::channel::<Report>();
        let report = Reporter { channel, waiting: ReportFlag::default() };
        let shared = Arc::new(Shared {
            auth,
            logins: Mutex::new(LoginQueue::default()),
            login_ready: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let worker = Self {
            shared,
            report,
            reports,
            threads: Mutex::new(Vec::new()),
            started: AtomicUsize::new(0),
        };
        if worker.shared.auth.downloads_keys() {
            worker.run_job(Job::RefreshKeys)?;
        }
        Ok(worker)
    }

    /// Starts a revalidation round on a maintenance thread.
    pub fn revalidate(&self, tokens: Vec<policy::RoundToken>) {
        if let Err(problem) = self.run_job(Job::Revalidate(tokens)) {
            log::warn!("cannot start the revalidation thread: {problem}");
            self.report.send(Report::RoundDone);
        }
    }

    /// Queues a login's token for validation; false when it cannot be validated in the
    /// background (no login threads, or none could be started).
    pub fn validate_login(&self, pending: PendingLogin) -> bool {
        let mut queue = self.shared.logins();
        // One more thread unless an idle one is free for this login.
        if queue.pending.len() >= queue.idle && queue.live < LOGIN_THREADS {
            let shared = Arc::clone(&self.shared);
            let report = self.report.clone();
            let started = self.spawn(format!("oauth-login-{}", queue.live), move || {
                serve_logins(&shared, &report);
            });
            match started {
                Ok(()) => queue.live += 1,
                Err(problem) if queue.live == 0 => {
                    log::warn!("cannot start a login thread ({problem}); validating in line");
                    return false;
                }
                Err(_) => {}
            }
        }
        queue.pending.push_back(pending);
        drop(queue);
        self.shared.login_ready.notify_one();
        true
    }

    /// Background threads currently running (for diagnostics and tests).
    pub fn running_threads(&self) -> usize {
        let threads = self.threads.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        threads.iter().filter(|thread| !thread.is_finished()).count()
    }

    /// Background threads started so far (for diagnostics and tests).
    pub fn started_threads(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }

    /// The flag raised when a report waits.
    pub fn report_flag(&self) -> ReportFlag {
        self.report.waiting.clone()
    }

    /// The reports waiting now (never blocks).
    pub fn take_reports(&self) -> impl Iterator<Item = Report> + '_ {
        // Cleared before draining: a report sent meanwhile raises it again.
        self.report.waiting.0.store(false, Ordering::Release);
        self.reports.try_iter()
    }

    fn run_job(&self, job: Job) -> std::io::Result<()> {
        let shared = Arc::clone(&self.shared);
        let report = self.report.clone();
        self.spawn("oauth-worker".to_owned(), move || {
            let round = matches!(job, Job::Revalidate(_));
            if catch_unwind(AssertUnwindSafe(|| maintain(&shared, job, &report))).is_err() {
                log::error!("internal error (panic) in a background job");
                if round {
                    // So that the next round can start.
                    report.send(Report::RoundDone);
                }
            }
        })
    }

    /// Spawns a thread, and joins the ones that have ended (so handles do not pile up).
    fn spawn(&self, name: String, body: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let handle = std::thread::Builder::new().name(name).spawn(body)?;
        self.started.fetch_add(1, Ordering::Relaxed);
        let mut threads = self.threads.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (ended, running): (Vec<_>, Vec<_>) =
            threads.drain(..).partition(JoinHandle::is_finished);
        *threads = running;
        threads.push(handle);
        drop(threads);
        ended.into_iter().for_each(join);
        Ok(())
    }
}

fn join(thread: JoinHandle<()>) {
    if thread.join().is_err() {
        log::error!("a background thread panicked");
    }
}

/// A login thread: validates queued logins until none arrives for [`IDLE_EXIT`].
fn serve_logins(shared: &Shared, report: &Reporter) {
    let mut queue = shared.logins();
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(pending) = queue.pending.pop_front() {
            drop(queue);
            let outcome = catch_unwind(AssertUnwindSafe(|| shared.auth.validate(&pending.token)))
                .unwrap_or_else(|_| {
                    log::error!("internal error (panic) validating a delayed login; refusing it");
                    Err(AuthError::Unavailable(UpstreamError::Transport("internal error".into())))
                });
            if !report.send(Report::LoginChecked(pending, outcome)) {
                queue = shared.logins();
                break;
            }
            queue = shared.logins();
            continue;
        }
        queue.idle += 1;
        let (next, wait) = shared
            .login_ready
            .wait_timeout(queue, IDLE_EXIT)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        queue = next;
        queue.idle -= 1;
        if wait.timed_out() && queue.pending.is_empty() {
            break;
        }
    }
    queue.live -= 1;
}

fn maintain(shared: &Shared, job: Job, report: &Reporter) {
    let auth = &shared.auth;
    match job {
        Job::RefreshKeys => {
            if let Err(problem) = auth.refresh_keys() {
                log::warn!("JWKS prefetch failed (retried when a token needs it): {problem}");
            }
        }
        Job::Revalidate(tokens) => {
            policy::run_revalidation_round(
                auth,
                &tokens,
                policy::RoundLimits::of(auth),
                || !shared.stop.load(Ordering::Relaxed),
                |digest, reason| {
                    report.send(Report::Invalid(digest, reason));
                },
            );
            report.send(Report::RoundDone);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.login_ready.notify_all();
        let threads = std::mem::take(
            &mut *self.threads.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        threads.into_iter().for_each(join);
    }
}
