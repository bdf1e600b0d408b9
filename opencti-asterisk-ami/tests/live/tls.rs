//! AMI over TLS to the real Asterisk (its OpenSSL, port 5039), with the test CA that
//! start-asterisk.sh makes at every start: the certificate checked, a wrong CA and a
//! wrong name refused clearly, and a desk working over TLS.

use opencti_asterisk_ami::{AmiClient, AuthMethod, TlsConfig};
use opencti_core::{DesktopInterfaceExt, ErrorKind};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use super::pbx::{config, desk, local_agent_config, rundir, Pbx, AMI_SECRET};

const TLS_ADDRESS: &str = "127.0.0.1:5039";

fn tls(ca_file: std::path::PathBuf, server_name: Option<&str>) -> TlsConfig {
    TlsConfig {
        ca_file: Some(ca_file),
        server_name: server_name.map(str::to_owned),
        ..TlsConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_is_checked_and_a_desk_works_over_tls() {
    let Some(pbx) = Pbx::take().await else { return };
    let ca = rundir().join("keys/ca.pem");
    for (auth, name) in [
        (AuthMethod::default(), None),
        (AuthMethod::Plaintext, Some("localhost")),
    ] {
        let mut config = config();
        config.address = TLS_ADDRESS.into();
        config.tls = Some(tls(ca.clone(), name));
        config.auth = auth;
        let banner = AmiClient::check(&config)
            .await
            .unwrap_or_else(|e| panic!("TLS to Asterisk ({name:?}): {e}"));
        assert!(
            banner.to_string().contains("Asterisk Call Manager"),
            "{banner}"
        );
    }

    let mut config = local_agent_config(&[]);
    config.address = TLS_ADDRESS.into();
    config.tls = Some(tls(ca, None));
    let mut desk = desk("agent-1003", "Local/1003@agents", config).await;
    let call = desk.call_out("2000").await;
    desk.session
        .hangup(call)
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_ca_or_another_name_is_refused_clearly() {
    let Some(pbx) = Pbx::take().await else { return };
    // A CA Asterisk's certificate does not come from.
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "another CA");
    let other = params.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
    let other_ca =
        std::env::temp_dir().join(format!("opencti-other-ca-{}.pem", std::process::id()));
    std::fs::write(&other_ca, other.pem()).unwrap_or_else(|e| panic!("{e}"));

    let mut config = config();
    config.address = TLS_ADDRESS.into();
    config.tls = Some(tls(other_ca.clone(), None));
    let refused = AmiClient::check(&config)
        .await
        .err()
        .unwrap_or_else(|| panic!("a certificate from another CA must be refused"));
    assert_eq!(refused.kind(), ErrorKind::Unauthorized, "{refused}");
    assert!(refused.message().contains("UnknownIssuer"), "{refused}");
    assert!(!refused.to_string().contains(AMI_SECRET));
    let _ = std::fs::remove_file(&other_ca);

    config.tls = Some(tls(rundir().join("keys/ca.pem"), Some("pbx.example.com")));
    let refused = AmiClient::check(&config)
        .await
        .err()
        .unwrap_or_else(|| panic!("a certificate for another name must be refused"));
    assert_eq!(refused.kind(), ErrorKind::Unauthorized, "{refused}");
    assert!(refused.message().contains("pbx.example.com"), "{refused}");

    // TLS to the plain-text port is a link problem, named as such.
    config.address = super::pbx::AMI_ADDRESS.into();
    config.tls = Some(tls(rundir().join("keys/ca.pem"), None));
    let refused = AmiClient::check(&config)
        .await
        .err()
        .unwrap_or_else(|| panic!("TLS to the plain-text port must fail"));
    assert_eq!(refused.kind(), ErrorKind::LinkDown, "{refused}");
    drop(pbx);
}
