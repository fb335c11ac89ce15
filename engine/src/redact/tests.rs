//! The redaction cases, one group per rule, with the false positives each must not make.
//! Long because it is a table; a new rule adds its group here.

use super::*;

// Every secret below is FAKE and built at run time from pieces, so that no secret
// scanner finds a real-looking key in this file.

/// Deterministic pseudo-random text over `alphabet` (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_DIGITS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn fake_from(alphabet: &str, n: usize, seed: u64) -> String {
    let chars: Vec<char> = alphabet.chars().collect();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..n).map(|_| *rng.pick(&chars)).collect()
}

/// Random letters and digits with all three classes (as real keys have).
fn fake(n: usize, seed: u64) -> String {
    (0..)
        .map(|k| fake_from(ALNUM, n, seed + 1000 * k))
        .find(|s| char_classes(s) == 3)
        .expect("some seed mixes the classes")
}

fn text(input: &str) -> String {
    redact(input, None).text
}

fn kinds(r: &Redaction) -> Vec<(&'static str, usize)> {
    r.kinds.iter().map(|(k, n)| (*k, *n)).collect()
}

/// (input, expected output) pairs for `redact(input, None)`.
fn secret_corpus() -> Vec<(String, String)> {
    let aws_id = format!("AKIA{}", fake_from(UPPER_DIGITS, 16, 1));
    let aws_sts = format!("AS{}{}", "IA", fake_from(UPPER_DIGITS, 16, 2));
    let aws_secret = format!("{}/{}+{}", fake(20, 3), fake(9, 4), fake(9, 5));
    assert_eq!(aws_secret.len(), 40);
    let body36 = fake(36, 6);
    let jwt = format!(
        "eyJ{}.eyJ{}.{}",
        fake(30, 7),
        fake(60, 8),
        fake(43, 9).replace('a', "-")
    );
    let pem_body = format!("{}\n{}\n{}==", fake(64, 10), fake(64, 11), fake(30, 12));
    let pem = |label: &str| {
        let label = format!("{label} {}", "PRIVATE KEY");
        let label = label.trim_start();
        format!("-----BEGIN {label}-----\n{pem_body}\n-----END {label}-----")
    };
    vec![
        (
            format!("aws_access_key_id = {aws_id}"),
            "aws_access_key_id = <redacted:aws-access-key>".into(),
        ),
        (
            format!("{{\"AccessKeyId\": \"{aws_sts}\"}}"),
            "{\"AccessKeyId\": \"<redacted:aws-access-key>\"}".into(),
        ),
        (
            format!("AWS_SECRET_ACCESS_KEY={aws_secret}\n"),
            "AWS_SECRET_ACCESS_KEY=<redacted:aws-secret-key>\n".into(),
        ),
        (
            format!("  secretAccessKey: '{aws_secret}',"),
            "  secretAccessKey: '<redacted:aws-secret-key>',".into(),
        ),
        (
            format!("GITHUB_TOKEN=gh{}_{body36}", "p"),
            "GITHUB_TOKEN=<redacted:github-token>".into(),
        ),
        (
            format!("git clone https://x-access-token:gh{}_{body36}@github.com/o/r", "s"),
            "git clone https://x-access-token:<redacted:github-token>@github.com/o/r".into(),
        ),
        (
            format!("tokens = [\"gh{}_{body36}\", 'gh{}_{body36}', gh{}_{body36}]", "o", "u", "r"),
            "tokens = [\"<redacted:github-token>\", '<redacted:github-token>', <redacted:github-token>]".into(),
        ),
        (
            format!("pat: github{}_{}_{}", "_pat", fake(22, 13), fake(59, 14)),
            "pat: <redacted:github-token>".into(),
        ),
        (
            format!("CI_TOKEN: gl{}-{}", "pat", fake(20, 15)),
            "CI_TOKEN: <redacted:gitlab-token>".into(),
        ),
        (
            format!("slack = \"xo{}-{}-{}-{}\"", "xb", "1234567890", "0987654321", fake(24, 16)),
            "slack = \"<redacted:slack-token>\"".into(),
        ),
        (
            format!(
                "curl -X POST https://hooks.slack.com/services/T{}/B{}/{}",
                fake_from(UPPER_DIGITS, 8, 17),
                fake_from(UPPER_DIGITS, 10, 18),
                fake(24, 19)
            ),
            "curl -X POST https://hooks.slack.com/services/<redacted:slack-webhook>".into(),
        ),
        (
            format!("stripe.api_key = \"sk_{}_{}\"", "live", fake(24, 20)),
            "stripe.api_key = \"<redacted:stripe-key>\"".into(),
        ),
        (
            format!("const restricted = 'rk_{}_{}';", "live", fake(24, 21)),
            "const restricted = '<redacted:stripe-key>';".into(),
        ),
        (
            format!("<script src=\"https://maps.googleapis.com/maps/api/js?key=AI{}{}\">", "za", fake(35, 22)),
            "<script src=\"https://maps.googleapis.com/maps/api/js?key=<redacted:google-api-key>\">".into(),
        ),
        (
            format!("client = OpenAI(api_key=\"sk-{}\")", fake(48, 23)),
            "client = OpenAI(api_key=\"<redacted:openai-key>\")".into(),
        ),
        (
            format!("OPENAI_API_KEY=sk-{}-{}_{}", "proj", fake(40, 24), fake(30, 25)),
            "OPENAI_API_KEY=<redacted:openai-key>".into(),
        ),
        (
            format!("anthropic = Anthropic(api_key='sk-{}-api03-{}-{}AA')", "ant", fake(80, 26), fake(12, 27)),
            "anthropic = Anthropic(api_key='<redacted:anthropic-key>')".into(),
        ),
        (
            format!("login(token=\"hf_{}\")", fake(34, 28)),
            "login(token=\"<redacted:huggingface-token>\")".into(),
        ),
        (
            format!("//registry.npmjs.org/:_authToken=npm_{}", fake(36, 29)),
            "//registry.npmjs.org/:_authToken=<redacted:npm-token>".into(),
        ),
        (
            format!("twine upload -p pypi-{}{}", "AgEIcHlwaS5vcmc", fake(70, 30)),
            "twine upload -p <redacted:pypi-token>".into(),
        ),
        (
            format!("Cookie: session={jwt}; Path=/"),
            "Cookie: session=<redacted:jwt>; Path=/".into(),
        ),
        (
            format!("headers = {{\"Authorization\": \"Bearer {jwt}\"}}"),
            "headers = {\"Authorization\": \"Bearer <redacted:jwt>\"}".into(),
        ),
        (
            format!("-H 'Authorization: Bearer {}'", fake(40, 31)),
            "-H 'Authorization: Bearer <redacted:bearer-token>'".into(),
        ),
        (
            format!("key:\n{}\nrest", pem("RSA")),
            format!(
                "key:\n-----BEGIN RSA {pk}-----\n<redacted:private-key>\n-----END RSA {pk}-----\nrest",
                pk = "PRIVATE KEY"
            ),
        ),
        (
            pem("OPENSSH"),
            format!(
                "-----BEGIN OPENSSH {pk}-----\n<redacted:private-key>\n-----END OPENSSH {pk}-----",
                pk = "PRIVATE KEY"
            ),
        ),
        (
            pem("EC"),
            format!(
                "-----BEGIN EC {pk}-----\n<redacted:private-key>\n-----END EC {pk}-----",
                pk = "PRIVATE KEY"
            ),
        ),
        (
            pem(""),
            format!(
                "-----BEGIN {pk}-----\n<redacted:private-key>\n-----END {pk}-----",
                pk = "PRIVATE KEY"
            ),
        ),
        (
            pem("ENCRYPTED"),
            format!(
                "-----BEGIN ENCRYPTED {pk}-----\n<redacted:private-key>\n-----END ENCRYPTED {pk}-----",
                pk = "PRIVATE KEY"
            ),
        ),
        (
            pem("PGP").replace("KEY-----", "KEY BLOCK-----"),
            format!(
                "-----BEGIN PGP {pk} BLOCK-----\n<redacted:private-key>\n-----END PGP {pk} BLOCK-----",
                pk = "PRIVATE KEY"
            ),
        ),
        (
            // A service-account JSON: the key sits in one string with `\n` escapes.
            format!(
                "{{\"type\": \"service_account\", \"private_key\": \"{}\"}}",
                pem("").replace('\n', "\\n")
            ),
            format!(
                "{{\"type\": \"service_account\", \"private_key\": \"-----BEGIN {pk}-----\\n<redacted:private-key>\\n-----END {pk}-----\"}}",
                pk = "PRIVATE KEY"
            ),
        ),
        (
            // Cut by the context window before its END line.
            format!("-----BEGIN RSA {}-----\n{}", "PRIVATE KEY", fake(64, 32)),
            format!("-----BEGIN RSA {}-----\n<redacted:private-key>", "PRIVATE KEY"),
        ),
        (
            format!("DATABASE_URL=postgres://admin:{}@db.internal:5432/app", "S3cr3t!pw"),
            "DATABASE_URL=postgres://admin:<redacted:url-password>@db.internal:5432/app".into(),
        ),
        (
            format!("redis = \"rediss://:{}@cache:6380/0\"", fake(16, 33)),
            "redis = \"rediss://:<redacted:url-password>@cache:6380/0\"".into(),
        ),
        (
            format!("amqp://guest:{}@broker/vhost", "p@ss:w0rd"),
            "amqp://guest:<redacted:url-password>@broker/vhost".into(),
        ),
        // Secret-named assignments, one per style.
        (
            format!("password = \"{}\"", "hunter2-Xk9"),
            "password = \"<redacted:password>\"".into(),
        ),
        (
            format!("db.connect(user='app', passwd='{}')", "Tr0ub4dor&3"),
            "db.connect(user='app', passwd='<redacted:password>')".into(),
        ),
        (
            format!("const apiKey = \"{}\";", fake(32, 34)),
            "const apiKey = \"<redacted:secret>\";".into(),
        ),
        (
            format!("  \"client_secret\": \"{}\",", fake(40, 35)),
            "  \"client_secret\": \"<redacted:secret>\",".into(),
        ),
        (
            format!("auth_token = '{}'  # rotate monthly", fake(24, 36)),
            "auth_token = '<redacted:secret>'  # rotate monthly".into(),
        ),
        (
            format!("export AUTH_TOKEN={}", fake(24, 37)),
            "export AUTH_TOKEN=<redacted:secret>".into(),
        ),
        (
            format!("DB_PASSWORD={}\n", "x7Gq2mPz9w"),
            "DB_PASSWORD=<redacted:password>\n".into(),
        ),
        (
            format!("config[:password] => '{}'", "n0t-s0-s3cret!"),
            "config[:password] => '<redacted:password>'".into(),
        ),
        (
            format!("secret := \"{}\"", fake(20, 38)),
            "secret := \"<redacted:secret>\"".into(),
        ),
        (
            format!("'credentials' => '{}',", fake(20, 39)),
            "'credentials' => '<redacted:secret>',".into(),
        ),
        (
            // Many services use UUIDs as API keys; under a secret name it goes.
            "api_key = \"550e8400-e29b-41d4-a716-446655440000\"".into(),
            "api_key = \"<redacted:secret>\"".into(),
        ),
        (
            format!("os.environ[\"API_KEY\"] = \"{}\"", fake(32, 40)),
            "os.environ[\"API_KEY\"] = \"<redacted:secret>\"".into(),
        ),
        (
            format!("Server=db;User Id=sa;Password={};", "Pa55w0rd!x"),
            "Server=db;User Id=sa;Password=<redacted:password>;".into(),
        ),
        (
            format!(
                "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={}==;",
                fake(86, 41)
            ),
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=<redacted:secret>;".into(),
        ),
        (
            format!("SECRET_KEY = 'django-insecure-{}'", fake(40, 42)),
            "SECRET_KEY = '<redacted:secret>'".into(),
        ),
    ]
}

#[test]
fn every_fake_secret_is_redacted_with_its_kind() {
    for (input, expected) in secret_corpus() {
        let r = redact(&input, None);
        assert_eq!(r.text, expected, "input: {input}");
        assert!(r.count >= 1, "input: {input}");
        let placeholders = expected.matches(PLACEHOLDER_PREFIX).count();
        assert_eq!(r.count, placeholders, "input: {input}");
        for (kind, n) in &r.kinds {
            assert_eq!(expected.matches(&placeholder(kind)).count(), *n, "{input}");
        }
    }
}

#[test]
fn rules_cover_every_kind() {
    let seen: std::collections::BTreeSet<&str> = secret_corpus()
        .iter()
        .flat_map(|(input, _)| redact(input, None).kinds.into_keys())
        .collect();
    let all: std::collections::BTreeSet<&str> = TOKEN_RULES
        .iter()
        .chain(CONTEXT_RULES.iter())
        .map(|r| r.kind)
        .chain(["private-key", "url-password", "password", "secret"])
        .collect();
    // sendgrid is covered by its own test below.
    let missing: Vec<_> = all.difference(&seen).collect();
    assert_eq!(missing, vec![&"sendgrid-key"]);
    let sg = format!("SG.{}.{}", fake(22, 43), fake(43, 44));
    assert_eq!(text(&sg), "<redacted:sendgrid-key>");
}

#[test]
fn ordinary_code_is_left_alone() {
    let cases = [
        "password = os.environ[\"PW\"]",
        "password = os.environ.get(\"DB_PASSWORD\", \"\")",
        "token = get_token()",
        "token = self.session.refresh_token()",
        "api_key: str",
        "def login(password: str, token: Optional[str] = None) -> Session:",
        "const token = process.env.GITHUB_TOKEN;",
        "const apiKey = import.meta.env.VITE_API_KEY",
        "let token = std::env::var(\"TOKEN\")?;",
        "token := os.Getenv(\"TOKEN\")",
        "self.password = password",
        "secret = settings.SECRET_KEY",
        "password = None",
        "auth: null",
        "password = \"\"",
        "api_key = \"<your-api-key>\"",
        "password = \"changeme\"",
        "token = \"xxxxxxxxxxxxxxxx\"",
        "API_KEY=${API_KEY}",
        "password: \"{{ vault_db_password }}\"",
        "token: ${{ secrets.GITHUB_TOKEN }}",
        "max_tokens = 4096",
        "tokenizer = \"bert-base-uncased\"",
        "token_type = \"Bearer\"",
        "grant_type = \"client_credentials\"",
        "auth_method = \"client_secret_basic\"",
        "token_url = \"https://oauth2.example.com/token\"",
        "password_file = \"/run/secrets/db_password\"",
        "auth_header = \"X-Api-Key\"",
        "password_hash = \"$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW\"",
        "\"author\": \"Jane Doe\",",
        "authority: login.microsoftonline.com",
        "if password == \"\":",
        "fn auth(token: &str) -> Result<Token, AuthError> {",
        "match token { Token::Ident(name) => name, _ => return None }",
        "id = \"550e8400-e29b-41d4-a716-446655440000\"",
        "let request_id = Uuid::parse_str(\"67e55044-10b1-426f-9247-bb680e5fe0c8\")?;",
        "- [ ] task-list: finish the sk-learn port and the risk-assessment",
        "<div class=\"sk-fading-circle-container-wrapper\">",
        "checksum = \"5a7f4ec0b5b6a1e8c2d9f3b4e6a8c0d2f4b6a8c0e2d4f6a8b0c2d4e6f8a0b2c4\"",
        "\"integrity\": \"sha512-Qm5LW2m3p8xZtYJ7fV9E3lK0aRkq1n3s5u7w9y1A3C5E7G9I1K3M5O7Q9S1U3W5Y7a9c1e3g5i7k9m1o3q5s7u9w==\"",
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
        "https://user@example.com/path, http://localhost:8080/, git@github.com:org/repo.git",
        "ssh://git@github.com/org/repo.git",
        "Set the password to something strong: at least twelve characters.",
        "[auth]\nprovider = \"github\"\nscopes = [\"repo\", \"read:org\"]",
        "keyboard = \"QWERTYUIOP1234\"",
        "key = \"user:1234:profile\"",
    ];
    for case in cases {
        let r = redact(case, None);
        assert_eq!(r.text, case);
        assert_eq!(r.count, 0, "{case}");
    }
}

#[test]
fn base64_data_is_left_alone() {
    // A choice: inline images and other blobs are not secrets; only a token shape
    // inside one (vanishingly rare in random base64) would be redacted.
    let blob: String = (0..4000)
        .map(|i| {
            let t = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            t[(i * 7919 + i / 64) % 64] as char
        })
        .collect();
    let img = format!("<img src=\"data:image/png;base64,{blob}=\">");
    assert_eq!(text(&img), img);
    let css = format!("background: url(data:image/png;base64,{blob});");
    assert_eq!(text(&css), css);
}

#[test]
fn config_files_treat_unquoted_values_as_literals() {
    let yaml = format!("db:\n  password: {}\n  user: app\n", "hunter22");
    // In code, `hunter22` would be a variable; in YAML it is the password.
    assert_eq!(
        redact(&yaml, Some("deploy/values.yaml")).text,
        "db:\n  password: <redacted:password>\n  user: app\n"
    );
    assert_eq!(redact(&yaml, Some("src/app.py")).text, yaml);
    let placeholder = "db:\n  password: ${DB_PASSWORD}\n";
    assert_eq!(redact(placeholder, Some("values.yml")).text, placeholder);
}

#[test]
fn env_files_redact_every_value() {
    let env = format!(
        "# local settings\nPORT=3000\nexport NODE_ENV=production\nEMPTY=\nQUOTED_EMPTY=\"\"\n\
         REF=${{OTHER}}\nSECRET=\"{}\" # rotate\nTOKEN=gh{}_{}\r\nPLACE=<your-key>\n",
        "abc",
        "p",
        fake(36, 45)
    );
    let r = redact(&env, Some("/home/u/project/.env"));
    assert_eq!(
        r.text,
        "# local settings\nPORT=<redacted:env-value>\nexport NODE_ENV=<redacted:env-value>\n\
         EMPTY=\nQUOTED_EMPTY=\"\"\nREF=${OTHER}\nSECRET=\"<redacted:env-value>\" # rotate\n\
         TOKEN=<redacted:github-token>\r\nPLACE=<your-key>\n"
    );
    assert_eq!(kinds(&r), vec![("env-value", 3), ("github-token", 1)]);
    let url = format!(
        "DATABASE_URL=postgres://app:{}@db.internal/app\nMIXED=\"abc gh{}_{}\"\n",
        "S3cr3t",
        "p",
        fake(36, 55)
    );
    assert_eq!(
        redact(&url, Some(".env")).text,
        "DATABASE_URL=<redacted:env-value>\n\
         MIXED=\"<redacted:env-value> <redacted:github-token>\"\n"
    );
    for path in [".env.local", "config/prod.env", ".envrc", "credentials"] {
        assert_eq!(
            redact("A=b", Some(path)).text,
            "A=<redacted:env-value>",
            "{path}"
        );
    }
    // Templates are meant to be committed: scanned like config, not wholesale.
    assert_eq!(redact("PORT=3000", Some(".env.example")).text, "PORT=3000");

    let aws = format!(
        "[default]\naws_access_key_id = AKIA{}\naws_secret_access_key = {}/{}\nregion = eu-west-1\n",
        fake_from(UPPER_DIGITS, 16, 46),
        fake(20, 47),
        fake(19, 48)
    );
    assert_eq!(
        redact(&aws, Some("/home/u/.aws/credentials")).text,
        "[default]\naws_access_key_id = <redacted:aws-access-key>\n\
         aws_secret_access_key = <redacted:aws-secret-key>\nregion = <redacted:env-value>\n"
    );
    let pypirc = format!(
        "[pypi]\n  username = __token__\n  password = pypi-{}\n",
        fake(80, 49)
    );
    assert_eq!(
        redact(&pypirc, Some(".pypirc")).text,
        "[pypi]\n  username = <redacted:env-value>\n  password = <redacted:pypi-token>\n"
    );
    let npmrc = format!(
        "registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken={}\n",
        fake(30, 50)
    );
    assert_eq!(
        redact(&npmrc, Some(".npmrc")).text,
        "registry=<redacted:env-value>\n//registry.npmjs.org/:_authToken=<redacted:env-value>\n"
    );
    let netrc = format!(
        "machine api.example.com\n  login bot\n  password {}\n",
        "s3cr3t-pw"
    );
    assert_eq!(
        redact(&netrc, Some("/home/u/.netrc")).text,
        "machine api.example.com\n  login bot\n  password <redacted:password>\n"
    );
}

#[test]
fn private_key_files_are_redacted_whole() {
    let key = format!(
        "-----BEGIN OPENSSH {}-----\n{}\n",
        "PRIVATE KEY",
        fake(70, 51)
    );
    for path in [
        "/home/u/.ssh/id_ed25519",
        "id_rsa",
        "certs/server.key",
        "putty.ppk",
    ] {
        let r = redact(&key, Some(path));
        assert_eq!(r.text, "<redacted:private-key>");
        assert_eq!(kinds(&r), vec![("private-key", 1)]);
        assert_eq!(redact(&r.text, Some(path)).count, 0);
    }
    assert_eq!(redact("", Some("id_rsa")).count, 0);
    // The public half is not a secret.
    let public = format!("ssh-ed25519 {} u@host", fake(68, 52));
    assert_eq!(redact(&public, Some("id_ed25519.pub")).text, public);
}

#[test]
fn counts_and_kinds_add_up() {
    let input = format!(
        "a = AKIA{}\nb = AKIA{}\npassword = \"{}\"\n",
        fake_from(UPPER_DIGITS, 16, 53),
        fake_from(UPPER_DIGITS, 16, 54),
        "Xk9pQ2mZ7rT4"
    );
    let r = redact(&input, None);
    assert_eq!(r.count, 3);
    assert_eq!(kinds(&r), vec![("aws-access-key", 2), ("password", 1)]);
    assert!(!r.text.contains("AKIA"));
}

#[test]
fn key_words_are_split_sensibly() {
    assert_eq!(split_words("APIKey"), ["api", "key"]);
    assert_eq!(split_words("client_secret"), ["client", "secret"]);
    assert_eq!(split_words("x-access-token"), ["x", "access", "token"]);
    assert_eq!(split_words("dbPassword2"), ["db", "password2"]);
    assert_eq!(classify_key("DB_PASSWORD"), Some(KeyClass::Password));
    assert_eq!(classify_key("apiKey"), Some(KeyClass::Secret));
    assert_eq!(classify_key("GITHUB_TOKEN"), Some(KeyClass::Secret));
    assert_eq!(classify_key("max_tokens"), None);
    assert_eq!(classify_key("monkey"), None);
    assert_eq!(classify_key("token_url"), None);
    assert_eq!(classify_key("author"), None);
    assert_eq!(classify_key("secretary"), None);
}

/// Random text, weighted towards the fragments the rules look for.
fn random_text(rng: &mut Rng) -> String {
    let fragments: &[&str] = &[
        "AKIA",
        "ASIA",
        "ghp_",
        "github_pat_",
        "glpat-",
        "xoxb-",
        "sk_live_",
        "AIza",
        "sk-",
        "sk-ant-",
        "sk-proj-",
        "hf_",
        "npm_",
        "pypi-",
        "eyJ",
        ".",
        "password",
        "token",
        "api_key",
        "secret",
        "Bearer ",
        "auth",
        "=",
        ":",
        "=>",
        ":=",
        "\"",
        "'",
        "`",
        " ",
        "\n",
        "\r\n",
        "\t",
        "@",
        "://",
        "https",
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----",
        "-----",
        "\\n",
        "${",
        "}",
        "(",
        "[",
        "]",
        "<",
        ">",
        "<redacted:",
        "#",
        ",",
        ";",
        "/",
        "+",
        "-",
        "_",
        "é",
        "日本",
        "🦀",
        "\u{200b}",
        "\u{0301}",
        "ß",
        "Ω",
        "\0",
        "export ",
        "KEY=",
    ];
    let mut s = String::new();
    for _ in 0..rng.below(40) {
        match rng.below(3) {
            0 => s.push_str(rng.pick::<&str>(fragments)),
            1 => {
                let n = rng.below(50);
                let seed = rng.next();
                s.push_str(&fake_from(ALNUM, n.max(2), seed));
            }
            _ => {
                let c = char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('?');
                s.push(c);
            }
        }
    }
    s
}

#[test]
fn random_input_never_panics_and_redaction_is_idempotent() {
    let paths = [
        None,
        Some(".env"),
        Some("config.yaml"),
        Some("src/main.rs"),
        Some(".netrc"),
        Some("id_rsa"),
        Some("/é/日本/.npmrc"),
        Some(""),
        Some("/"),
        Some("é.env"),
    ];
    let mut rng = Rng(0x5EED_CA1B);
    for i in 0..10_000 {
        let input = random_text(&mut rng);
        let path = paths[i % paths.len()];
        let once = redact(&input, path);
        let twice = redact(&once.text, path);
        assert_eq!(twice.text, once.text, "input {input:?} path {path:?}");
        assert_eq!(twice.count, 0, "input {input:?} path {path:?}");
        assert_eq!(once.count, once.kinds.values().sum::<usize>());
        assert_eq!(
            once.count == 0,
            once.text == input,
            "input {input:?} path {path:?}"
        );
    }
    // And every secret of the corpus, padded with random text on both sides.
    for (secret, _) in secret_corpus() {
        for _ in 0..20 {
            let input = format!("{}{secret}{}", random_text(&mut rng), random_text(&mut rng));
            let once = redact(&input, None);
            assert_eq!(redact(&once.text, None).count, 0, "input {input:?}");
        }
    }
}

#[test]
fn one_megabyte_is_fast() {
    // Mostly ordinary code with a few secrets, like a large prompt.
    let mut block = String::from(
        "def handler(event, context):\n    token = get_token()\n    \
         headers = {\"Content-Type\": \"application/json\", \"X-Trace\": str(uuid4())}\n    \
         for i, item in enumerate(items):\n        total += item.price * 1.2  # vat\n    \
         return {\"statusCode\": 200, \"body\": json.dumps(total)}\n\n",
    );
    block.push_str("let café = \"日本語のテキスト\"; // ünïcödé\n");
    let mut input = String::new();
    let mut i = 0u64;
    while input.len() < 1 << 20 {
        input.push_str(&block);
        if i % 50 == 0 {
            input.push_str(&format!("api_key = \"{}\"\n", fake(32, 60 + i)));
        }
        i += 1;
    }
    let started = std::time::Instant::now();
    let r = redact(&input, None);
    let elapsed = started.elapsed();
    eprintln!(
        "redact: {} bytes, {} secrets, {elapsed:?}",
        input.len(),
        r.count
    );
    // One secret per 50 blocks, each found once: the outcome, not the time, is asserted
    // (the regex engine is linear in the input; speed is a benchmark's business).
    assert_eq!(r.count as u64, i.div_ceil(50), "{elapsed:?}");
}
