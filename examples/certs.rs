//! `certs`: makes a mesh CA and workload certificates for the mTLS demo, without openssl.
//!
//! ```text
//! certs DIR [--trust-domain cluster.local] [--credential NAME=HOST[,HOST]...]... NAMESPACE/SERVICE_ACCOUNT...
//! ```
//! Writes `DIR/ca.pem` (the CA certificate) and, per workload, `DIR/NS-SA/` in Istio's layout:
//! `cert-chain.pem` (a certificate whose only SAN is the SPIFFE URI
//! `spiffe://TRUST_DOMAIN/ns/NS/sa/SA`, usable as server and client), `key.pem`, and
//! `root-cert.pem` (the CA). Give a workload's directory to `sidecar --certs DIR`.
//!
//! `--credential NAME=HOST,…` writes a Gateway credential: `DIR/NAME.crt` (a server certificate
//! for the HOSTs), `DIR/NAME.key` and `DIR/NAME-ca.crt` (the CA), what a Gateway's
//! `credentialName: NAME` reads with `sidecar --credentials DIR`.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};

/// A CA that signs workload certificates.
pub struct MeshCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// One workload's identity in PEM: what `sidecar --certs` reads.
pub struct WorkloadPem {
    /// The leaf certificate (`cert-chain.pem`).
    pub cert_chain: String,
    /// Its private key (`key.pem`).
    pub key: String,
    /// The CA certificate (`root-cert.pem`).
    pub root: String,
}

impl MeshCa {
    /// A fresh self-signed CA named `name`.
    pub fn new(name: &str) -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::OrganizationName, name);
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(MeshCa { issuer })
    }

    /// The CA certificate in PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A workload certificate for `spiffe_id`, usable as server and client.
    pub fn workload(&self, spiffe_id: &str) -> Result<WorkloadPem, rcgen::Error> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(spiffe_id.try_into()?)];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        self.sign(params)
    }
}

impl MeshCa {
    /// `params` signed by this CA, with a fresh key, usable as server and client.
    fn sign(&self, mut params: CertificateParams) -> Result<WorkloadPem, rcgen::Error> {
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(WorkloadPem {
            cert_chain: cert.pem(),
            key: key.serialize_pem(),
            root: self.pem(),
        })
    }

    /// A server certificate for the DNS `names` (a Gateway's `serverCertificate`), usable as
    /// client certificate too.
    pub fn server(&self, names: &[&str]) -> Result<WorkloadPem, rcgen::Error> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("server"),
        );
        self.sign(params)
    }
}

impl WorkloadPem {
    /// Writes `cert-chain.pem`, `key.pem` and `root-cert.pem` into `dir` (created).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("cert-chain.pem"), &self.cert_chain)?;
        std::fs::write(dir.join("key.pem"), &self.key)?;
        std::fs::write(dir.join("root-cert.pem"), &self.root)
    }
}

#[allow(dead_code)] // The tests use this file as a module, without `main`.
fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let usage = "usage: certs DIR [--trust-domain DOMAIN] [--credential NAME=HOST[,HOST]...]... \
                 NAMESPACE/SERVICE_ACCOUNT...";
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("{usage}");
        return std::process::ExitCode::FAILURE;
    };
    let mut trust_domain = "cluster.local".to_owned();
    let mut workloads = Vec::new();
    let mut credentials = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--credential" {
            match args.next().as_deref().and_then(|c| c.split_once('=')) {
                Some((name, hosts)) if !name.is_empty() && !hosts.is_empty() => {
                    credentials.push((name.to_owned(), hosts.to_owned()));
                }
                _ => {
                    eprintln!("--credential takes NAME=HOST[,HOST]...\n{usage}");
                    return std::process::ExitCode::FAILURE;
                }
            }
            continue;
        }
        if arg == "--trust-domain" {
            match args.next() {
                Some(domain) => trust_domain = domain,
                None => {
                    eprintln!("{usage}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        } else if let Some((ns, sa)) = arg.split_once('/') {
            workloads.push((ns.to_owned(), sa.to_owned()));
        } else {
            eprintln!("not NAMESPACE/SERVICE_ACCOUNT: {arg}\n{usage}");
            return std::process::ExitCode::FAILURE;
        }
    }
    let made = (|| -> Result<(), Box<dyn std::error::Error>> {
        let ca = MeshCa::new("mesh demo CA")?;
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("ca.pem"), ca.pem())?;
        for (ns, sa) in &workloads {
            let id = format!("spiffe://{trust_domain}/ns/{ns}/sa/{sa}");
            let out = dir.join(format!("{ns}-{sa}"));
            ca.workload(&id)?.write(&out)?;
            println!("{id} -> {}", out.display());
        }
        for (name, hosts) in &credentials {
            let hosts: Vec<&str> = hosts.split(',').collect();
            let pem = ca.server(&hosts)?;
            std::fs::write(dir.join(format!("{name}.crt")), &pem.cert_chain)?;
            std::fs::write(dir.join(format!("{name}.key")), &pem.key)?;
            std::fs::write(dir.join(format!("{name}-ca.crt")), &pem.root)?;
            println!(
                "{} -> {}",
                hosts.join(","),
                dir.join(format!("{name}.crt")).display()
            );
        }
        Ok(())
    })();
    match made {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
