use super::*;

fn p(name: &str) -> Purpose {
    name.parse().expect("purpose")
}

#[test]
fn overrides_inherit_from_policy_table() {
    let c = Config::parse(
        "[policy]\nmax_ttl = \"30d\"\ndefault_ttl = \"7d\"\n\n[purpose.ci]\npassphrase = \"optional\"\ndefault_ttl = \"1h\"\n",
        Path::new("c.toml"),
    )
    .expect("parses");
    assert_eq!(c.policy(&p("ci")).max_ttl(), Span::from_days(30));
    assert_eq!(c.policy(&p("ci")).default_ttl(), Span::from_secs(3600));
    assert_eq!(c.policy(&p("ci")).passphrase(), PassphraseRule::Optional);
    assert_eq!(c.policy(&p("other")).passphrase(), PassphraseRule::Required);
    assert_eq!(c.policy(&p("other")).default_ttl(), Span::from_days(7));
}

#[test]
fn errors_name_the_line() {
    let e =
        Config::parse("[policy]\n\nmax_ttl = \"forever\"\n", Path::new("c.toml")).expect_err("bad");
    assert!(e.to_string().contains("line 3"), "{e}");
    assert!(e.to_string().contains("policy.max_ttl"), "{e}");
    let e = Config::parse("[policy]\nmax_tll = \"1d\"\n", Path::new("c.toml"))
        .expect_err("unknown key");
    assert!(e.to_string().contains("line 2"), "{e}");
    let e = Config::parse("[purpose.BAD]\n", Path::new("c.toml")).expect_err("bad purpose");
    assert!(e.to_string().contains("line 1"), "{e}");
    let e =
        Config::parse("[policy]\ndefault_ttl = \"400d\"\n", Path::new("c.toml")).expect_err("ttl");
    assert!(e.to_string().contains("longer than max_ttl"), "{e}");
}

#[test]
fn algorithm_rules() {
    let policy = Policy::default();
    let purpose = p("x");
    assert!(policy.check_algorithm(&purpose, Algorithm::Ed25519).is_ok());
    assert!(
        policy
            .check_algorithm(&purpose, Algorithm::Rsa { bits: 8192 })
            .is_ok()
    );
    assert!(matches!(
        policy.check_algorithm(&purpose, Algorithm::Rsa { bits: 2048 }),
        Err(PolicyError::RsaTooSmall { .. })
    ));
}

#[test]
fn passphrase_strength() {
    let policy = Policy::default();
    let purpose = p("personal");
    let weak = Passphrase::new("password1".into());
    let err = policy
        .check_passphrase(&purpose, "key", &weak, &[])
        .expect_err("weak");
    assert!(!err.to_string().contains("password1"), "{err}");
    let strong = Passphrase::new("plum-Vortex-carpet-71-tundra".into());
    policy
        .check_passphrase(&purpose, "key", &strong, &[])
        .expect("strong");
    let empty = Passphrase::new(String::new());
    assert!(
        policy
            .check_passphrase(&purpose, "key", &empty, &[])
            .is_err()
    );
}

/// Every value error `apply` reports, in the order it checks them, each naming its
/// key, line and reason; and the values it takes, inherits and derives.
#[test]
fn apply_errors_and_values_are_pinned() {
    let cases = [
        "[policy]\nalgorithms = [\"ed25519\", \"rot13\"]\n",
        "[policy]\nalgorithms = []\n",
        "[policy]\ndefault_algorithm = \"rot13\"\n",
        "[policy]\ndefault_algorithm = \"rsa-2048\"\n",
        "[policy]\nmin_rsa_bits = 1024\n",
        "[policy]\ndefault_ttl = \"soon\"\n",
        "[policy]\nmax_ttl = \"1x\"\n",
        "[policy]\nwarn_within = \"\"\n",
        "[policy]\npassphrase = \"maybe\"\n",
        "[policy]\nmin_passphrase_strength = 5\n",
        "[policy]\nmin_kdf_rounds = 0\n",
        "[policy]\nmin_kdf_rounds = 1001\n",
        "[policy]\nmax_ttl = \"1d\"\n",
        "[policy]\n\nmax_ttl = \"1d\"\ndefault_ttl = \"2d\"\n",
        "[policy]\nalgorithms = [\"ed25519\"]\ndefault_algorithm = \"rsa-4096\"\n",
        "[purpose.ci]\nmin_rsa_bits = 1024\n",
        // Several errors at once: the first in checking order is reported.
        "[policy]\nmin_kdf_rounds = 0\nalgorithms = []\nmin_rsa_bits = 1\n",
    ];
    let got: Vec<String> = cases
        .iter()
        .map(|text| match Config::parse(text, Path::new("c.toml")) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        })
        .collect();
    assert_eq!(got.join("\n"), APPLY_ERRORS);

    let c = Config::parse(
        "[policy]\nalgorithms = [\"rsa-4096\", \"ecdsa-p256\"]\nmin_rsa_bits = 4096\nmax_ttl = \"10d\"\ndefault_ttl = \"10d\"\nwarn_within = \"2d\"\npassphrase = \"optional\"\nmin_passphrase_strength = 0\nmin_kdf_rounds = 32\n\n[purpose.ci]\ndefault_algorithm = \"ecdsa-p256\"\ndefault_ttl = \"1h\"\n",
        Path::new("c.toml"),
    )
    .expect("parses");
    let d = c.defaults();
    // The default algorithm falls back to the first allowed one.
    assert_eq!(d.default_algorithm(), Algorithm::Rsa { bits: 4096 });
    assert_eq!(d.default_ttl(), Span::from_days(10));
    assert_eq!(d.max_ttl(), Span::from_days(10));
    assert_eq!(d.warn_within(), Span::from_days(2));
    assert_eq!(d.passphrase(), PassphraseRule::Optional);
    assert_eq!(d.min_passphrase_strength(), 0);
    assert_eq!(d.min_kdf_rounds(), 32);
    assert!(matches!(
        d.check_algorithm(&p("x"), Algorithm::Ed25519),
        Err(PolicyError::AlgorithmNotAllowed { .. })
    ));
    let ci = c.policy(&p("ci"));
    assert_eq!(ci.default_algorithm(), Algorithm::EcdsaP256);
    assert_eq!(ci.default_ttl(), Span::from_secs(3600));
    assert_eq!(ci.min_kdf_rounds(), 32);
    assert!(matches!(
        ci.check_algorithm(&p("x"), Algorithm::Rsa { bits: 3072 }),
        Err(PolicyError::RsaTooSmall { .. })
    ));
}

const APPLY_ERRORS: &str = concat!(
    "invalid config c.toml line 2: policy.algorithms: unknown algorithm \"rot13\": expected one of ed25519, rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384\n",
    "invalid config c.toml line 2: policy.algorithms: must name at least one algorithm\n",
    "invalid config c.toml line 2: policy.default_algorithm: unknown algorithm \"rot13\": expected one of ed25519, rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384\n",
    "invalid config c.toml line 2: policy.default_algorithm: keyvault cannot generate this algorithm\n",
    "invalid config c.toml line 2: policy.min_rsa_bits: must be at least 2048\n",
    "invalid config c.toml line 2: policy.default_ttl: invalid duration \"soon\": a unit must follow a number, e.g. 90d\n",
    "invalid config c.toml line 2: policy.max_ttl: invalid duration \"1x\": expected a number followed by s, m, h, d or w, e.g. 90d\n",
    "invalid config c.toml line 2: policy.warn_within: invalid duration \"\": empty\n",
    "invalid config c.toml line 2: policy.passphrase: expected \"required\" or \"optional\"\n",
    "invalid config c.toml line 2: policy.min_passphrase_strength: must be 0 to 4\n",
    "invalid config c.toml line 2: policy.min_kdf_rounds: must be 1 to 1000\n",
    "invalid config c.toml line 2: policy.min_kdf_rounds: must be 1 to 1000\n",
    "invalid config c.toml line 2: policy.default_ttl: default_ttl 90d is longer than max_ttl 1d\n",
    "invalid config c.toml line 4: policy.default_ttl: default_ttl 2d is longer than max_ttl 1d\n",
    "invalid config c.toml line 3: policy.default_algorithm: is not in algorithms\n",
    "invalid config c.toml line 2: purpose.ci.min_rsa_bits: must be at least 2048\n",
    "invalid config c.toml line 3: policy.algorithms: must name at least one algorithm",
);
