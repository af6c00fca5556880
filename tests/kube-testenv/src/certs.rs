//! Certificates and keys for the control plane, made with the openssl CLI:
//! one CA signs the apiserver serving certificate and the admin client
//! certificate (group system:masters); a separate EC key signs
//! service-account tokens.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Result};

pub struct Certs {
    pub ca_crt: PathBuf,
    pub ca_key: PathBuf,
    pub serving_crt: PathBuf,
    pub serving_key: PathBuf,
    pub admin_crt: PathBuf,
    pub admin_key: PathBuf,
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
}

fn openssl(step: &str, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .map_err(|e| Error::Openssl {
            step: step.into(),
            detail: format!("cannot run openssl ({e}); install it (apt-get install openssl)"),
        })?;
    if !out.status.success() {
        return Err(Error::Openssl {
            step: step.into(),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

fn genkey(step: &str, out: &Path) -> Result<()> {
    openssl(
        step,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            s(out),
        ],
    )
}

fn sign(
    dir: &Path,
    name: &str,
    subject: &str,
    ext: &str,
    ca_crt: &Path,
    ca_key: &Path,
) -> Result<(PathBuf, PathBuf)> {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let crt = dir.join(format!("{name}.crt"));
    let extfile = dir.join(format!("{name}.ext"));
    genkey(name, &key)?;
    std::fs::write(&extfile, ext)?;
    openssl(
        name,
        &["req", "-new", "-key", s(&key), "-subj", subject, "-out", s(&csr)],
    )?;
    openssl(
        name,
        &[
            "x509",
            "-req",
            "-in",
            s(&csr),
            "-CA",
            s(ca_crt),
            "-CAkey",
            s(ca_key),
            "-set_serial",
            &format!("{}", std::process::id() as u64 * 1000 + name.len() as u64),
            "-days",
            "7",
            "-extfile",
            s(&extfile),
            "-out",
            s(&crt),
        ],
    )?;
    Ok((crt, key))
}

pub fn generate(dir: &Path) -> Result<Certs> {
    std::fs::create_dir_all(dir)?;
    if dir.to_str().is_none() {
        return Err(Error::Openssl {
            step: "paths".into(),
            detail: format!("{} is not UTF-8", dir.display()),
        });
    }
    let ca_key = dir.join("ca.key");
    let ca_crt = dir.join("ca.crt");
    genkey("ca", &ca_key)?;
    openssl(
        "ca",
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            s(&ca_key),
            "-subj",
            "/CN=squall-testenv-ca",
            "-days",
            "7",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            s(&ca_crt),
        ],
    )?;
    let (serving_crt, serving_key) = sign(
        dir,
        "apiserver",
        "/CN=kube-apiserver",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n",
        &ca_crt,
        &ca_key,
    )?;
    let (admin_crt, admin_key) = sign(
        dir,
        "admin",
        "/O=system:masters/CN=squall-testenv-admin",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
        &ca_crt,
        &ca_key,
    )?;
    let sa_key = dir.join("sa.key");
    let sa_pub = dir.join("sa.pub");
    genkey("sa", &sa_key)?;
    openssl("sa", &["pkey", "-in", s(&sa_key), "-pubout", "-out", s(&sa_pub)])?;
    Ok(Certs {
        ca_crt,
        ca_key,
        serving_crt,
        serving_key,
        admin_crt,
        admin_key,
        sa_key,
        sa_pub,
    })
}

/// A kubeconfig that references the certificate files.
pub fn kubeconfig(server: &str, certs: &Certs) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: squall-testenv\n  cluster:\n    server: {server}\n    certificate-authority: {}\n\
         users:\n- name: admin\n  user:\n    client-certificate: {}\n    client-key: {}\n\
         contexts:\n- name: squall-testenv\n  context:\n    cluster: squall-testenv\n    user: admin\n    namespace: default\n\
         current-context: squall-testenv\n",
        certs.ca_crt.display(),
        certs.admin_crt.display(),
        certs.admin_key.display()
    )
}
