//! Arbitrary introspection answers.
//!
//! Every input is served as the `200 application/json` body of the introspection endpoint (a
//! small HTTP/1.1 server on a loopback port, started once), and a fixed token is logged in with
//! the cache disabled, so each run parses the input and applies the claim rules to it.
//!
//! Checks: nothing panics; the outcome is a session, a rejection or an upstream error.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Mutex, OnceLock};

use oauth_core::{Access, AccessToken, AuthError, Authenticator, Config, TokenSource, now_epoch};

/// The body the server answers with: the current fuzz input.
static BODY: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn authenticator() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}/introspect", listener.local_addr().expect("address"));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || serve(stream));
            }
        });
        let config = Config::from_pairs([
            ("oauth_mode", "introspect"),
            ("oauth_introspection_url", url.as_str()),
            ("oauth_client_id", "mosquitto"),
            ("oauth_client_secret", "fuzz-secret"),
            ("oauth_issuer", "https://idp.example.com"),
            ("oauth_audience", "mqtt-broker"),
            ("oauth_cache_ttl", "0"),
            ("oauth_cache_negative_ttl", "0"),
            ("oauth_http_timeout_ms", "5000"),
        ])
        .expect("valid config");
        Authenticator::new(config).expect("authenticator")
    })
}

/// Answers requests on one keep-alive connection until the client closes it.
fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream);
    loop {
        let mut content_length = 0usize;
        let mut line = String::new();
        // Request line, then headers up to the blank line.
        let mut first = true;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let trimmed = line.trim_end();
            if trimmed.is_empty() && !first {
                break;
            }
            first = false;
            if let Some((name, value)) = trimmed.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = BODY.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // One write: a separate head and body would meet Nagle and delayed ACKs (40 ms a run).
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(&body);
        if reader.get_mut().write_all(&answer).is_err() {
            return;
        }
    }
}

/// Runs one input through the checks; panics on a violation.
pub(crate) fn check(data: &[u8]) {
    let auth = authenticator();
    data.clone_into(&mut BODY.lock().unwrap_or_else(|p| p.into_inner()));
    let token = AccessToken::new(&b"opaque-fuzz-token-0123456789"[..]);
    match auth.login(&token, "dev1", Some("alice")) {
        Ok(session) => {
            assert_eq!(session.source(), TokenSource::Introspection);
            let now = now_epoch();
            for topic in ["a", "devices/dev1/x", "$SYS/x", "#"] {
                let _ = session.allows(Access::Write, topic, now);
                let _ = session.allows(Access::Read, topic, now);
                let _ = session.allows(Access::Subscribe, topic, now);
            }
        }
        Err(AuthError::Rejected(_) | AuthError::Unavailable(_)) => {}
    }
}
