//! Throwaway TLS material made with the `openssl` command, and Mosquitto's command-line clients
//! (`mosquitto_pub`/`mosquitto_sub`) as TLS clients with or without a client certificate.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `openssl` with `args` in `dir`; panics with its error output if it fails.
pub fn openssl(dir: &Path, args: &[impl AsRef<OsStr> + std::fmt::Debug]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A throwaway CA and a server certificate for localhost / 127.0.0.1 signed by it, in `dir`:
/// `ca.pem`, `ca.key`, `server.pem`, `server.key`.
pub fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=mosquitto-oauth test CA",
        ],
    );
    signed_certificate(
        dir,
        "server",
        "localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    );
}

/// A client certificate with common name `cn`, signed by the CA of [`make_certificates`]:
/// `<name>.pem` and `<name>.key` in `dir`.
pub fn client_certificate(dir: &Path, name: &str, cn: &str) {
    signed_certificate(
        dir,
        name,
        cn,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=clientAuth\n",
    );
}

/// The RFC 8705 thumbprint (SHA-256 of the DER) of certificate `<name>.pem` in `dir`, with the
/// DER written by `openssl` (independently of how the plugin encodes it).
pub fn certificate_thumbprint(dir: &Path, name: &str) -> oauth_core::CertificateThumbprint {
    let (pem, der) = (format!("{name}.pem"), format!("{name}.der"));
    openssl(dir, &["x509", "-in", &pem, "-outform", "DER", "-out", &der]);
    let der = std::fs::read(dir.join(der)).expect("DER certificate written");
    oauth_core::CertificateThumbprint::of_der(&der)
}

fn signed_certificate(dir: &Path, name: &str, cn: &str, extensions: &str) {
    let (key, csr, pem, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.cnf"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    std::fs::write(dir.join(&ext), extensions).expect("extension file can be written");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

/// Publishes one QoS 1 message with `mosquitto_pub` over TLS, presenting client certificate
/// `cert` (`<cert>.pem`/`.key` in `dir`) and, when given, a username and password. False when
/// the connection was refused.
pub fn publish_over_tls(
    port: u16,
    dir: &Path,
    cert: &str,
    credentials: Option<(&str, &str)>,
    topic: &str,
) -> bool {
    let (ok, text) = publish_with(port, dir, Some(cert), credentials, topic);
    assert!(ok || text.contains("not authorised") || text.contains("Not authorized"), "{text}");
    ok
}

/// Like [`publish_over_tls`] without a client certificate: (success, output).
pub fn publish_without_certificate(
    port: u16,
    dir: &Path,
    credentials: Option<(&str, &str)>,
    topic: &str,
) -> (bool, String) {
    publish_with(port, dir, None, credentials, topic)
}

fn publish_with(
    port: u16,
    dir: &Path,
    cert: Option<&str>,
    credentials: Option<(&str, &str)>,
    topic: &str,
) -> (bool, String) {
    let file = |name: String| dir.join(name).to_string_lossy().into_owned();
    let ca = file("ca.pem".to_owned());
    let port = port.to_string();
    let mut args = vec!["-h", "127.0.0.1", "-p", &port, "--cafile", &ca, "-q", "1", "-t", topic];
    args.extend(["-m", "over tls", "-i", cert.unwrap_or("no-certificate")]);
    let pair = cert.map(|cert| (file(format!("{cert}.pem")), file(format!("{cert}.key"))));
    if let Some((pem, key)) = &pair {
        args.extend(["--cert", pem, "--key", key]);
    }
    if let Some((username, password)) = credentials {
        args.extend(["-u", username, "-P", password]);
    }
    mosquitto_client("mosquitto_pub", &args)
}

/// Runs `mosquitto_pub`/`mosquitto_sub` with `args`; (success, stdout + stderr).
pub fn mosquitto_client(program: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}
